package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks the shipped unit with systemd's own verifier and for the
// hardening the deployment relies on.
func TestSystemdUnit(t *testing.T) {
	bin := build(t)
	unit, err := os.ReadFile("pingmachine.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/pingmachine",
		"AmbientCapabilities=CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_RAW", "User=pingmachine",
		"ExecStart=/usr/local/bin/pingmachine --basedir /var/lib/pingmachine", "ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("the unit lacks %q", line)
		}
	}
	// Verify a copy that starts the binary under test: systemd checks that it exists.
	dir := t.TempDir()
	copy := filepath.Join(dir, "pingmachine.service")
	os.WriteFile(copy, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/pingmachine", bin)), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", copy).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify (make test installs systemd): %v\n%s", err, out)
	}
}
