package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// debArchs are the architectures `make deb` builds, with the qemu-user program that runs
// each one's binary here ("" for this machine's own).
var debArchs = map[string]string{"amd64": "", "armhf": "qemu-arm-static", "arm64": "qemu-aarch64-static"}

// repoRoot is the repository's top directory, seen from this package's.
const repoRoot = "../.."

// debs runs `make deb` once per test run into buildDir/dist and returns the packages by
// Debian architecture.
var debs = sync.OnceValues(func() (map[string]string, error) { return makeDebs(filepath.Join(buildDir, "dist")) })

func makeDebs(dist string) (map[string]string, error) {
	out, err := exec.Command("make", "-s", "-C", repoRoot, "deb", "DIST="+dist).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("make deb: %v\n%s", err, out)
	}
	found := make(map[string]string)
	for arch := range debArchs {
		matches, err := filepath.Glob(filepath.Join(dist, "pingmachine_*_"+arch+".deb"))
		if err != nil || len(matches) != 1 {
			return nil, fmt.Errorf("make deb made %d packages for %s in %s, want 1 (%v)", len(matches), arch, dist, err)
		}
		found[arch] = matches[0]
	}
	return found, nil
}

// needDebs returns the packages, failing the test if they could not be built.
func needDebs(t *testing.T) map[string]string {
	t.Helper()
	pkgs, err := debs()
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// command runs name with args and returns its combined output, failing the test unless
// it exits 0.
func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debField reads a field of a package's control file.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	return strings.TrimSpace(command(t, "dpkg-deb", "--field", deb, field))
}

// TestDebReproducible builds the packages a second time and compares the bytes.
func TestDebReproducible(t *testing.T) {
	first := needDebs(t)
	second, err := makeDebs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for arch, deb := range first {
		a, errA := os.ReadFile(deb)
		b, errB := os.ReadFile(second[arch])
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two builds of the same commit differ (%d and %d bytes)", arch, len(a), len(b))
		}
	}
}

// TestDebLintian runs Debian's own checker on the three packages: no error is allowed.
// Its one warning, initial-upload-closes-no-bugs, is about uploads to Debian's archive
// (which close an "intent to package" bug), not about the package.
func TestDebLintian(t *testing.T) {
	pkgs := needDebs(t)
	args := []string{"--fail-on", "error"}
	for _, deb := range pkgs {
		args = append(args, deb)
	}
	out, err := exec.Command("lintian", args...).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") {
			t.Error(line)
		}
	}
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
}

// TestDebBinaries runs each package's binary (the ARM ones under qemu-user): it prints
// the package's version and validates orders with the daemon's parser.
func TestDebBinaries(t *testing.T) {
	pkgs := needDebs(t)
	valid := filepath.Join(repoRoot, "testdata/demo/orders/localhost-v4")
	invalid := filepath.Join(t.TempDir(), "bad-step")
	if err := os.WriteFile(invalid, []byte("user: x\nstep: 2\npings: 20\nprobe: fping\nfping:\n  host: 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for arch, emulator := range debArchs {
		t.Run(arch, func(t *testing.T) {
			deb := pkgs[arch]
			root := t.TempDir()
			command(t, "dpkg-deb", "-x", deb, root)
			bin := filepath.Join(root, "usr/bin/pingmachine")
			if file := command(t, "file", "-b", bin); !strings.Contains(file, map[string]string{"amd64": "x86-64", "armhf": "ARM, EABI5", "arm64": "ARM aarch64"}[arch]) {
				t.Errorf("the %s package's binary is %s", arch, file)
			}
			run := func(args ...string) (string, string, int) {
				if emulator == "" {
					return runCmd(t, exec.Command(bin, args...))
				}
				return runCmd(t, exec.Command(emulator, append([]string{bin}, args...)...))
			}
			want := strings.TrimSuffix(debField(t, deb, "Version"), "-1")
			for _, tc := range []struct {
				args   []string
				code   int
				stdout string
				stderr string
			}{
				{[]string{"--version"}, exitOK, "pingmachine " + want + "\n", ""},
				{[]string{"validate", valid}, exitOK, "", ""},
				{[]string{"validate", invalid}, exitInvalid, "", "20 pings do not fit a step of 2 s"},
			} {
				stdout, stderr, code := run(tc.args...)
				if code != tc.code || stdout != tc.stdout && tc.stdout != "" || !strings.Contains(stderr, tc.stderr) {
					t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q",
						tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
				}
			}
		})
	}
}

// The package's paths on an installed machine.
const (
	pkgBase     = "/var/lib/pingmachine"
	pkgBinary   = "/usr/bin/pingmachine"
	pkgDefaults = "/etc/default/pingmachine"
	pkgUnit     = "/lib/systemd/system/pingmachine.service"
	pkgEnabled  = "/etc/systemd/system/multi-user.target.wants/pingmachine.service"
)

// cleanMachine removes what the package and the tests leave: the package (purged), and
// the system user, which a purge keeps as Debian's practice is.
func cleanMachine(t *testing.T) {
	t.Helper()
	if installed(t) != "" {
		command(t, "dpkg", "--purge", "pingmachine")
	}
	if exec.Command("getent", "passwd", "pingmachine").Run() == nil {
		command(t, "deluser", "--quiet", "--system", "pingmachine")
	}
	if exec.Command("getent", "group", "pingmachine").Run() == nil {
		command(t, "delgroup", "--quiet", "--system", "pingmachine")
	}
}

// testMarker says that the pingmachine package and user on this machine were put there by
// these tests, so that a run killed half-way is cleaned up by the next one, while a real
// installation, with its orders and results, is never purged by a test.
const testMarker = "/var/tmp/pingmachine-package-test"

// claimMachine makes the machine ready for a test that installs the package, and has it
// cleaned up after the test. It fails rather than purge an installation it did not make.
func claimMachine(t *testing.T) {
	t.Helper()
	if !exists(testMarker) {
		userExists := exec.Command("getent", "passwd", "pingmachine").Run() == nil
		if st := installed(t); st != "" || userExists || exists(pkgBase) {
			t.Fatalf("pingmachine is on this machine, and not from these tests (package status %q, user pingmachine: %v, %s there: %v): "+
				"they would purge it with its orders and results; run them on a machine without it", st, userExists, pkgBase, exists(pkgBase))
		}
	}
	if err := os.WriteFile(testMarker, []byte("pingmachine's package tests installed pingmachine here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cleanMachine(t)
	t.Cleanup(func() {
		cleanMachine(t)
		os.Remove(testMarker)
	})
}

// installed returns the package's dpkg status ("install ok installed", "deinstall ok
// config-files", ...), or "" if dpkg does not know it.
func installed(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "pingmachine").Output()
	if err != nil {
		return ""
	}
	if s := string(out); s != "unknown ok not-installed" {
		return s
	}
	return ""
}

// TestDebInstall installs the amd64 package on this machine with dpkg, checks what its
// maintainer scripts made, runs the daemon from it as the pingmachine user, removes it
// (the data stays), purges it (the data goes), and leaves the machine as it found it.
func TestDebInstall(t *testing.T) {
	pingtest.RequireRoot(t)
	deb := needDebs(t)["amd64"]
	version := debField(t, deb, "Version")
	claimMachine(t)

	out := command(t, "dpkg", "-i", deb)
	systemd := exists("/run/systemd/system")
	if !systemd && !strings.Contains(out, "systemd is not running, so the daemon was not started") {
		t.Errorf("dpkg -i without systemd running does not say the daemon was not started:\n%s", out)
	}
	if got := installed(t); got != "install ok installed" {
		t.Fatalf("after dpkg -i the package is %q", got)
	}
	checkInstalled(t, version)
	postinstWithoutSetcap(t, version)
	for _, script := range []string{"postinst", "postrm"} {
		path := "/var/lib/dpkg/info/pingmachine." + script
		if _, stderr, code := runCmd(t, exec.Command(path, "bogus")); code != 1 || !strings.Contains(stderr, script+" called with unknown argument 'bogus'") {
			t.Errorf("%s bogus: exit %d, stderr %q", script, code, stderr)
		}
	}

	// Installing again (as an upgrade does) keeps what an administrator changed.
	if err := os.Chmod(pkgBase, os.ModeSetgid|0o775); err != nil {
		t.Fatal(err)
	}
	command(t, "dpkg", "-i", deb)
	if fi, err := os.Stat(pkgBase); err != nil || fi.Mode()&(os.ModeSetgid|os.ModePerm) != os.ModeSetgid|0o775 {
		t.Errorf("reinstalling changed the mode of %s an administrator set: %v %v", pkgBase, fi.Mode(), err)
	}
	if err := os.Chmod(pkgBase, 0o755); err != nil {
		t.Fatal(err)
	}

	if systemd {
		// The package started the daemon; this test runs it itself.
		command(t, "systemctl", "stop", "pingmachine.service")
	}
	runInstalledDaemon(t)

	command(t, "dpkg", "--remove", "pingmachine")
	if got := installed(t); got != "deinstall ok config-files" {
		t.Errorf("after dpkg -r the package is %q", got)
	}
	for path, want := range map[string]bool{
		pkgBinary: false, pkgUnit: false, pkgDefaults: true, // a removed package keeps its conffiles
		pkgBase + "/orders/pkgtest/loopback":             true,
		pkgBase + "/output/pkgtest/loopback/last_result": true,
	} {
		if exists(path) != want {
			t.Errorf("after dpkg -r: %s exists: %v, want %v", path, !want, want)
		}
	}

	command(t, "dpkg", "--purge", "pingmachine")
	if got := installed(t); got != "" {
		t.Errorf("after dpkg -P the package is %q", got)
	}
	for _, path := range []string{pkgBase, pkgDefaults, pkgEnabled, "/var/lib/systemd/deb-systemd-helper-enabled/pingmachine.service.dsh-also"} {
		if exists(path) {
			t.Errorf("after dpkg -P %s is still there", path)
		}
	}
	if exec.Command("getent", "passwd", "pingmachine").Run() != nil {
		t.Error("dpkg -P removed the system user pingmachine, which Debian's practice keeps")
	}
	cleanMachine(t)
	if exec.Command("getent", "passwd", "pingmachine").Run() == nil || exec.Command("getent", "group", "pingmachine").Run() == nil {
		t.Error("the user or group pingmachine is still there after the clean-up")
	}
}

// checkInstalled checks what dpkg -i made: the files, the user, the base directory and
// the binary's capability.
func checkInstalled(t *testing.T, version string) {
	t.Helper()
	passwd := strings.Split(strings.TrimSpace(command(t, "getent", "passwd", "pingmachine")), ":")
	if len(passwd) != 7 || passwd[5] != pkgBase || !strings.HasSuffix(passwd[6], "nologin") {
		t.Errorf("user pingmachine: %v, want home %s and no login shell", passwd, pkgBase)
	}
	uid, gid := passwd[2], passwd[3]
	if n := 0; len(passwd) == 7 {
		fmt.Sscan(uid, &n)
		if n >= 1000 || n == 0 {
			t.Errorf("pingmachine's uid %d is not a system user's", n)
		}
	}
	for _, dir := range []string{pkgBase, pkgBase + "/orders"} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatalf("the package made no %s: %v", dir, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fmt.Sprint(st.Uid) != uid || fmt.Sprint(st.Gid) != gid || fi.Mode().Perm() != 0o755 || !fi.IsDir() {
			t.Errorf("%s: owner %d:%d mode %v, want %s:%s drwxr-xr-x", dir, st.Uid, st.Gid, fi.Mode(), uid, gid)
		}
	}
	if caps := command(t, "getcap", pkgBinary); !strings.Contains(caps, "cap_net_raw=ep") {
		t.Errorf("getcap %s: %q, want cap_net_raw=ep", pkgBinary, caps)
	}
	if got := command(t, pkgBinary, "--version"); got != "pingmachine "+strings.TrimSuffix(version, "-1")+"\n" {
		t.Errorf("%s --version: %q, package version %s", pkgBinary, got, version)
	}
	if conf := command(t, "dpkg-query", "-W", "-f", "${Conffiles}", "pingmachine"); !strings.Contains(conf, pkgDefaults+" ") {
		t.Errorf("%s is not a conffile: %q", pkgDefaults, conf)
	}
	if !exists(pkgEnabled) {
		t.Errorf("the unit is not enabled for the next boot with systemd (%s)", pkgEnabled)
	}
	if out, err := exec.Command("systemd-analyze", "verify", pkgUnit).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", pkgUnit, err, out)
	}
	if man := command(t, "sh", "-c", "zcat /usr/share/man/man8/pingmachine.8.gz | MANWIDTH=120 man -l - 2>/dev/null || zcat /usr/share/man/man8/pingmachine.8.gz"); !strings.Contains(man, "validate [") {
		t.Errorf("the man page lacks the usage of validate:\n%s", man)
	}
	for _, doc := range []string{"copyright", "changelog.Debian.gz", "README.md.gz"} {
		if !exists("/usr/share/doc/pingmachine/" + doc) {
			t.Errorf("no /usr/share/doc/pingmachine/%s", doc)
		}
	}
}

// runInstalledDaemon starts the installed daemon as its unit would, with the flags of
// /etc/default/pingmachine, as the user pingmachine (the capability comes from the file),
// and waits for a loopback order's result.
func runInstalledDaemon(t *testing.T) {
	t.Helper()
	order := filepath.Join(pkgBase, "orders/pkgtest/loopback")
	if err := os.MkdirAll(filepath.Dir(order), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(order, []byte("user: pkgtest\nstep: 2\npings: 2\nprobe: fping\nfping:\n  host: 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	daemon := exec.Command("sh", "-c", ". "+pkgDefaults+" && exec setpriv --reuid=pingmachine --regid=pingmachine --init-groups "+
		pkgBinary+" --basedir "+pkgBase+" $PINGMACHINE_OPTS")
	daemon.Stderr = &stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	defer func() {
		daemon.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("the daemon did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
		}
	}()

	result := filepath.Join(pkgBase, "output/pkgtest/loopback/last_result")
	deadline := time.Now().Add(20 * time.Second)
	for !exists(result) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20 s; the daemon said:\n%s", result, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	last, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(last), "loss: 0\n") {
		t.Errorf("the loopback order lost pings:\n%s", last)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", daemon.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	uid := strings.TrimSpace(command(t, "id", "-u", "pingmachine"))
	for _, want := range []string{"Uid:\t" + uid + "\t" + uid + "\t" + uid, "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000"} {
		if !strings.Contains(string(status), want+"\n") && !strings.Contains(string(status), want+"\t") {
			t.Errorf("the daemon's /proc status lacks %q:\n%s", want, status)
		}
	}
	if !strings.Contains(stderr.String(), "mode=raw") {
		t.Errorf("the daemon did not open a raw ICMP socket with the file's capability:\n%s", stderr.String())
	}
}

// postinstWithoutSetcap runs the installed postinst again (as dpkg-reconfigure does) where
// setcap is missing and where it fails: the package stays configured and says why the
// binary has no capability.
func postinstWithoutSetcap(t *testing.T, version string) {
	t.Helper()
	for _, tc := range []struct {
		name   string
		setcap string // the setcap script on PATH; "" for none
		want   string
	}{
		{"missing", "", "setcap is missing (install libcap2-bin"},
		{"failing", "#!/bin/sh\necho 'Operation not supported' >&2\nexit 1\n", "could not set cap_net_raw on /usr/bin/pingmachine"},
	} {
		t.Run("setcap "+tc.name, func(t *testing.T) {
			bin := t.TempDir()
			// Every program of the system's PATH but setcap.
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if e.Name() != "setcap" && !exists(filepath.Join(bin, e.Name())) {
						os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(bin, e.Name()))
					}
				}
			}
			if tc.setcap != "" {
				if err := os.WriteFile(filepath.Join(bin, "setcap"), []byte(tc.setcap), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("/var/lib/dpkg/info/pingmachine.postinst", "configure", version)
			// deb-systemd-helper works only when dpkg runs the script.
			cmd.Env = append(os.Environ(), "PATH="+bin, "DPKG_MAINTSCRIPT_PACKAGE=pingmachine", "DPKG_MAINTSCRIPT_NAME=postinst")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("postinst configure with setcap %s: %v, said:\n%s\nwant %q", tc.name, err, out, tc.want)
			}
		})
	}
}

// TestDebVersion runs deploy/debian/version.sh on a repository of its own through the
// life of a project, and checks that each version sorts after the one before, as dpkg
// compares them.
func TestDebVersion(t *testing.T) {
	repo := t.TempDir()
	script, err := filepath.Abs(filepath.Join(repoRoot, "deploy/debian/version.sh"))
	if err != nil {
		t.Fatal(err)
	}
	git := func(date string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date, "TZ=Europe/Zurich")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	commit := func(date string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(repo, "file"), []byte(date), 0o644); err != nil {
			t.Fatal(err)
		}
		git(date, "add", "file")
		git(date, "commit", "-q", "-m", date)
		return git(date, "rev-parse", "--short", "HEAD")
	}
	if out, err := exec.Command("sh", script, repo).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a git repository") {
		t.Errorf("version.sh outside a git repository: %v, %q", err, out)
	}
	git("", "init", "-q")
	var previous string
	for _, tc := range []struct {
		name string
		step func() string // changes the repository and returns the version wanted
	}{
		{"no tag", func() string { return "0.0~git20260102030405." + commit("2026-01-02T04:04:05+01:00") }},
		{"a later commit the same day", func() string { return "0.0~git20260102030406." + commit("2026-01-02T04:04:06+01:00") }},
		{"uncommitted edits", func() string {
			h := git("", "rev-parse", "--short", "HEAD")
			os.WriteFile(filepath.Join(repo, "file"), []byte("edited"), 0o644)
			return "0.0~git20260102030406." + h + "+dirty"
		}},
		{"a release", func() string { commit("2026-02-01T00:00:00Z"); git("", "tag", "v1.2.0"); return "1.2.0" }},
		{"after a release", func() string { return "1.2.0+git20260203000000." + commit("2026-02-03T00:00:00Z") }},
		{"a release candidate", func() string { commit("2026-03-01T00:00:00Z"); git("", "tag", "v1.3.0-rc1"); return "1.3.0~rc1" }},
		{"the release", func() string { git("", "tag", "v1.3.0"); return "1.3.0" }},
	} {
		want := tc.step()
		out, err := exec.Command("sh", script, repo).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("%s: version.sh printed %q (%v), want %q", tc.name, got, err, want)
		}
		if previous != "" && exec.Command("dpkg", "--compare-versions", previous+"-1", "lt", want+"-1").Run() != nil {
			t.Errorf("%s: dpkg does not sort %s-1 after %s-1", tc.name, want, previous)
		}
		previous = want
	}
}

// TestBuildDebRefuses gives deploy/debian/build-deb.sh what it cannot build from.
func TestBuildDebRefuses(t *testing.T) {
	bin := build(t)
	script := filepath.Join(repoRoot, "deploy/debian/build-deb.sh")
	out := t.TempDir()
	noExec := filepath.Join(out, "unit-without-execstart.service")
	if err := os.WriteFile(noExec, []byte("[Unit]\nDescription=x\n[Service]\nExecStart=/opt/pingmachine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	epoch := "SOURCE_DATE_EPOCH=1767225600"
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"too few arguments", []string{epoch}, []string{"amd64", bin, "1.0", out}, 2, "usage: SOURCE_DATE_EPOCH=..."},
		{"unknown architecture", []string{epoch}, []string{"i386", bin, "1.0", out, bin}, 2, "unknown architecture i386"},
		{"no binary", []string{epoch}, []string{"amd64", filepath.Join(out, "none"), "1.0", out, bin}, 2, "no binary " + filepath.Join(out, "none")},
		{"no host binary", []string{epoch}, []string{"amd64", bin, "1.0", out, filepath.Join(out, "none")}, 2, "no binary " + filepath.Join(out, "none")},
		{"no SOURCE_DATE_EPOCH", nil, []string{"amd64", bin, "1.0", out, bin}, 2, "set SOURCE_DATE_EPOCH"},
		{"a unit it cannot rewrite", []string{epoch, "UNIT_SOURCE=" + noExec}, []string{"amd64", bin, "1.0", out, bin}, 1, "has no ExecStart=/usr/local/bin/pingmachine line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(script, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			if tc.env == nil {
				cmd.Env = slices.DeleteFunc(os.Environ(), func(v string) bool { return strings.HasPrefix(v, "SOURCE_DATE_EPOCH=") })
			}
			stdout, stderr, code := runCmd(t, cmd)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, tc.code, tc.want)
			}
		})
	}
	if debs, _ := filepath.Glob(filepath.Join(out, "*.deb")); len(debs) != 0 {
		t.Errorf("refused builds left %v", debs)
	}
}
