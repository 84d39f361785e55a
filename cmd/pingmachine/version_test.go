package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"testing"
)

func TestDevelVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []debug.BuildSetting
		want     string
	}{
		{"no vcs", nil, "devel"},
		{"clean", []debug.BuildSetting{{Key: "vcs.revision", Value: "c4351c9d0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-01T19:00:00Z"}, {Key: "vcs.modified", Value: "false"}},
			"devel c4351c9d0123 2026-12-01T19:00:00Z"},
		{"modified", []debug.BuildSetting{{Key: "vcs.revision", Value: "c4351c9d0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}},
			"devel c4351c9d0123 modified"},
		{"short revision", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "devel abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := develVersion(tc.settings); got != tc.want {
				t.Errorf("develVersion = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionFlag runs --version in-process: a test binary has no version set at link
// time, so it must not claim one.
func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, nil, &stdout, &stderr); code != exitOK {
			t.Errorf("%s: exit %d, stderr %q", arg, code, stderr.String())
		}
		if got := stdout.String(); !bytes.HasPrefix([]byte(got), []byte("pingmachine devel")) {
			t.Errorf("%s printed %q, want pingmachine devel...", arg, got)
		}
	}
}
