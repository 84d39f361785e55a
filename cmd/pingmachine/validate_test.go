package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pingmachine/orders"
)

// parserErrors are order files with each kind of problem the parser finds.
var parserErrors = []struct{ name, data string }{
	{"not YAML", "user: alice\nstep: 300: 20\n"},
	{"tab indentation", "user: alice\nfping:\n\thost: x\n"},
	{"empty", ""},
	{"a list", "- user: alice\n"},
	{"required keys missing", "task: x\n"},
	{"user a list", "user: [a, b]\nstep: 300\npings: 20\nprobe: fping\nfping: {host: h}\n"},
	{"step not a number", "user: u\nstep: abc\npings: 20\nprobe: fping\nfping: {host: h}\n"},
	{"step out of range", "user: u\nstep: 86401\npings: 20\nprobe: fping\nfping: {host: h}\n"},
	{"pings do not fit the step", "user: u\nstep: 3\npings: 5\nprobe: fping\nfping: {host: h}\n"},
	{"unknown probe", "user: u\nstep: 300\npings: 20\nprobe: tcpping\n"},
	{"probe mapping missing", "user: u\nstep: 300\npings: 20\nprobe: fping\n"},
	{"host an option", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: -x\n"},
	{"ipv6 against the literal", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n  ipv6: true\n"},
	{"source of the other family", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n  source_ip: 2001:db8::1\n"},
	{"interface with a slash", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: h\n  interface: eth0/1\n"},
	{"interval too long", "user: u\nstep: 10\npings: 5\nprobe: fping\nfping:\n  host: h\n  interval: 3000\n"},
	{"httping without a URL scheme", "user: u\nstep: 300\npings: 5\nprobe: httping\nhttping:\n  url: example.com\n"},
	{"httping proxy", "user: u\nstep: 300\npings: 5\nprobe: httping\nhttping:\n  url: https://example.com/\n  proxy: nowhere\n"},
	{"httping codes", "user: u\nstep: 300\npings: 5\nprobe: httping\nhttping:\n  url: https://example.com/\n  http_codes_as_failure: 403,abc\n"},
	{"sping host with a space", "user: u\nstep: 300\npings: 5\nprobe: sping\nsping:\n  host: 'a b'\n"},
	{"pping flags", "user: u\nstep: 300\npings: 5\nprobe: pping\npping:\n  host: 1-ff00:0:110,[192.0.2.1]\n  flags: \"a\\x01\"\n"},
	{"duplicate key", "user: u\nstep: 300\npings: 20\nuser: v\nprobe: fping\nfping: {host: h}\n"},
	{"tags a list", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping: {host: h}\ntags: [a]\n"},
	{"several problems", "user: alice\nstep: abc\npings: 2000\nprobe: fping\nfping:\n  host: -x\n  interface: a/b\ntags: [x]\n"},
}

// TestValidateParserErrors: validate prints, byte for byte, the message the parser gives
// (the text the daemon logs, as orders' tests show), naming a file outside the base
// directory by its path and one in orders/ as the daemon names it.
func TestValidateParserErrors(t *testing.T) {
	elsewhere := t.TempDir()
	base := t.TempDir()
	for _, tt := range parserErrors {
		t.Run(tt.name, func(t *testing.T) {
			id := "team/" + strings.ReplaceAll(tt.name, " ", "-")
			inside := filepath.Join(base, "orders", id)
			outside := filepath.Join(elsewhere, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			for _, path := range []string{inside, outside} {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for file, name := range map[string]string{inside: "orders/" + id, outside: outside} {
				_, want := orders.Parse(name, id, []byte(tt.data))
				if want == nil {
					t.Fatalf("%q parses", tt.data)
				}
				stdout, stderr, code := runMain(t, "validate", "--basedir", base, file)
				if code != exitInvalid || stdout != "" || stderr != want.Error()+"\n" {
					t.Errorf("validate %s: exit %d, stdout %q, stderr\n%q\nwant exit 1 and\n%q", file, code, stdout, stderr, want.Error()+"\n")
				}
			}
		})
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good", "user: u\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n")
	tmp := write(".ansible_tmp.yaml", "user: u\nstep: 60\npings: 5\nprobe: httping\nhttping:\n  url: https://example.com/\n")
	bad := write("bad", "user: u\nstep: 60\npings: two\nprobe: fping\nfping:\n  host: 192.0.2.1\n")
	refused := write(`base/orders/back\slash`, "user: u\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Files too large for an order are not read whole: the parser never sees them.
	large := write("large", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping: {host: h}\n#"+strings.Repeat("x", orders.MaxSize)+"\n")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		args   []string
		exit   int
		stderr string
	}{
		{[]string{good}, 0, ""},
		{[]string{good, tmp}, 0, ""},
		{[]string{bad}, 1, bad + `: line 3: pings: expected a whole number of pings, got "two"` + "\n"},
		{[]string{good, bad, tmp, fifo, large, missing, dir}, 1, bad + `: line 3: pings: expected a whole number of pings, got "two"` + "\n" +
			fifo + ": not a regular file but a named pipe (FIFO)\n" +
			large + ": larger than the 65536 bytes an order may have\n" +
			missing + ": stat " + missing + ": no such file or directory\n" +
			dir + ": a directory, not an order file\n"},
		{[]string{"-b", filepath.Join(dir, "base"), refused}, 1, `orders/back\slash: a backslash in the order id: the store takes none in the paths it writes` + "\n"},
		{[]string{refused, "-b", filepath.Join(dir, "base")}, 1, `orders/back\slash: a backslash in the order id: the store takes none in the paths it writes` + "\n"},
		{[]string{refused}, 0, ""}, // elsewhere than below the base directory, the id does not matter
		{[]string{"--", "-b"}, 1, "-b: stat -b: no such file or directory\n"},
		{[]string{}, 2, "pingmachine validate: no FILE to validate\nusage: pingmachine validate [-b DIR] FILE ...\n"},
		{[]string{"--bogus", good}, 2, "flag provided but not defined: -bogus\nusage: pingmachine validate [-b DIR] FILE ...\n"},
	}
	for _, tt := range tests {
		stdout, stderr, code := runMain(t, append([]string{"validate"}, tt.args...)...)
		if tt.exit == 2 {
			stderr, _, _ = strings.Cut(stderr, "\n  -b")
			stderr, _, _ = strings.Cut(stderr, "Checks order files")
		}
		if code != tt.exit || stdout != "" || stderr != tt.stderr {
			t.Errorf("validate %q: exit %d, stdout %q, stderr\n%q\nwant exit %d and\n%q", tt.args, code, stdout, stderr, tt.exit, tt.stderr)
		}
	}
}
