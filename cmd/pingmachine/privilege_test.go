package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHeldCapabilities(t *testing.T) {
	status := func(inh, prm, eff, amb string) string {
		return "Name:\tpingmachine\nCapInh:\t" + inh + "\nCapPrm:\t" + prm + "\nCapEff:\t" + eff +
			"\nCapBnd:\t000001ffffffffff\nCapAmb:\t" + amb + "\n"
	}
	const none, raw = "0000000000000000", "0000000000002000"
	tests := []struct {
		name    string
		threads map[string]string // thread id -> status; "" for a thread that exited
		want    string
	}{
		{"none held, bounding set full", map[string]string{"1": status(none, none, none, none), "2": status(none, none, none, none)}, ""},
		{"one thread holds", map[string]string{"1": status(none, none, none, none), "2": status(none, raw, raw, none)},
			"CapPrm=" + raw + " CapEff=" + raw + " on 1 of 2 threads"},
		{"ambient and inheritable", map[string]string{"7": status(raw, raw, raw, raw)},
			"CapInh=" + raw + " CapPrm=" + raw + " CapEff=" + raw + " CapAmb=" + raw + " on 1 of 1 threads"},
		{"a thread exited while read", map[string]string{"1": status(none, none, none, none), "2": ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for id, st := range tt.threads {
				if err := os.Mkdir(filepath.Join(dir, id), 0o755); err != nil {
					t.Fatal(err)
				}
				if st != "" {
					if err := os.WriteFile(filepath.Join(dir, id, "status"), []byte(st), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := heldCapabilities(dir)
			if err != nil || got != tt.want {
				t.Errorf("heldCapabilities = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("no task directory", func(t *testing.T) {
		if _, err := heldCapabilities(filepath.Join(t.TempDir(), "task")); err == nil || !strings.Contains(err.Error(), "checking the capabilities dropped") {
			t.Errorf("err %v, want one that says what failed", err)
		}
	})
	t.Run("unreadable status", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "1", "status"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := heldCapabilities(dir); err == nil {
			t.Error("no error for a status that cannot be read")
		}
	})
	t.Run("this process", func(t *testing.T) {
		if _, err := heldCapabilities("/proc/self/task"); err != nil {
			t.Error(err)
		}
	})
}
