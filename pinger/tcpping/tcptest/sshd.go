package tcptest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// SSHD is the path of OpenSSH's server (Debian's openssh-server).
const SSHD = "/usr/sbin/sshd"

// StartSSHD starts a real sshd on 127.0.0.1 on a free port, with a configuration and a
// host key of its own in a temporary directory, and stops it when the test ends. It
// returns the address it listens on. sshd checks that it runs as root; the test fails if
// sshd or ssh-keygen is missing.
func StartSSHD(t testing.TB) netip.AddrPort {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sshd needs root")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("tcptest: ssh-keygen: %v: %s", err, out)
	}
	// sshd refuses to start without its privilege separation directory, which the
	// package's service would create.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("tcptest: %v", err)
	}
	port := FreePort(t)
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf("HostKey %s\nListenAddress 127.0.0.1\nPidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n", key)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatalf("tcptest: %v", err)
	}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", cfg, "-p", fmt.Sprint(port))
	log, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatalf("tcptest: %v", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcptest: starting %s: %v", SSHD, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("tcptest: sshd exited: %v: %s", err, out)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcptest: sshd does not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcptest: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
