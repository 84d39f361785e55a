package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"pingmachine/pinger/pingtest"
)

// loopbackOrder is an order for the role's inventory that pings 127.0.0.1.
func loopbackOrder(pings int) map[string]any {
	return map[string]any{"user": "ansibletest", "step": 10, "pings": pings, "probe": "fping", "fping": map[string]any{"host": "127.0.0.1"}}
}

// TestAnsibleRole applies deploy/ansible's role to this machine with ansible-playbook -c
// local, service management off (systemd is not running here) and a base directory of
// its own: the package is installed, the flags and orders written, a changed inventory
// updates the orders, an order taken out of it is removed, an invalid one is refused with
// the validator's message, and a second run changes nothing.
func TestAnsibleRole(t *testing.T) {
	pingtest.RequireRoot(t)
	deb := needDebs(t)["amd64"]
	claimMachine(t)

	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	managed := filepath.Join(base, "orders/ansible")
	systemdDir := filepath.Join(dir, "systemd")
	if err := os.Mkdir(systemdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	playbook := filepath.Join(dir, "play.yml")
	if err := os.WriteFile(playbook, []byte("- hosts: all\n  gather_facts: false\n  roles: [pingmachine]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	roles, err := filepath.Abs(filepath.Join(repoRoot, "deploy/ansible/roles"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{
		"ansible_python_interpreter": "/usr/bin/python3", // Debian's, which has python3-apt
		"pingmachine_version":        strings.TrimSuffix(strings.TrimPrefix(filepath.Base(deb), "pingmachine_"), "_amd64.deb"),
		"pingmachine_deb_dir":        filepath.Dir(deb),
		"pingmachine_cache_dir":      filepath.Join(dir, "cache"),
		"pingmachine_basedir":        base,
		"pingmachine_systemd_dir":    systemdDir,
		"pingmachine_manage_service": false,
		"pingmachine_telegraf":       "127.0.0.1:8094",
		"pingmachine_orders":         map[string]any{"lo-a": loopbackOrder(3), "lo-b": loopbackOrder(4)},
		"pingmachine_host_orders":    map[string]any{"lo-host": loopbackOrder(2)},
	}
	recap := regexp.MustCompile(`localhost\s*: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)`)
	// play runs the role with vars and returns its output, its exit status and the
	// recap's changed count.
	play := func() (string, int, string) {
		t.Helper()
		data, err := json.Marshal(vars)
		if err != nil {
			t.Fatal(err)
		}
		varsFile := filepath.Join(dir, "vars.json")
		if err := os.WriteFile(varsFile, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ansible-playbook", "-c", "local", "-i", "localhost,", "-e", "@"+varsFile, playbook)
		cmd.Env = append(os.Environ(), "ANSIBLE_ROLES_PATH="+roles, "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0")
		stdout, stderr, code := runCmd(t, cmd)
		out := stdout + stderr
		m := recap.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("ansible-playbook printed no recap (exit %d):\n%s", code, out)
		}
		return out, code, m[1]
	}
	// orderFiles returns the managed orders as the validator and the daemon read them.
	orderFiles := func() map[string]string {
		t.Helper()
		entries, err := os.ReadDir(managed)
		if err != nil {
			t.Fatal(err)
		}
		files := make(map[string]string)
		for _, e := range entries {
			path := filepath.Join(managed, e.Name())
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = string(data)
			if out, err := exec.Command(pkgBinary, "validate", "-b", base, path).CombinedOutput(); err != nil {
				t.Errorf("the role wrote an invalid order %s: %v\n%s", e.Name(), err, out)
			}
		}
		return files
	}

	// An order written by someone else is not the role's to remove.
	manual := filepath.Join(base, "orders/manual")
	if err := os.MkdirAll(filepath.Dir(manual), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manual, []byte("user: x\nstep: 10\npings: 1\nprobe: fping\nfping:\n  host: 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// What the role refuses before it changes anything.
	for _, tc := range []struct {
		key   string
		value any
		want  string
	}{
		{"pingmachine_version", "", "set pingmachine_version"},
		{"pingmachine_host_orders", map[string]any{"../escape": loopbackOrder(1)}, "pingmachine order name '../escape'"},
		{"pingmachine_host_orders", map[string]any{".hidden": loopbackOrder(1)}, "pingmachine order name '.hidden'"},
	} {
		good := vars[tc.key]
		vars[tc.key] = tc.value
		if out, code, changed := play(); code == 0 || changed != "0" || !strings.Contains(out, tc.want) {
			t.Errorf("%s=%v: exit %d, changed=%s, want a failure saying %q:\n%s", tc.key, tc.value, code, changed, tc.want, out)
		}
		vars[tc.key] = good
	}
	if installed(t) != "" || exists(managed) {
		t.Fatal("a refused run installed the package or made the managed orders' directory")
	}

	out, code, changed := play()
	if code != 0 || changed == "0" {
		t.Fatalf("first run: exit %d, changed=%s:\n%s", code, changed, out)
	}
	if got := installed(t); got != "install ok installed" {
		t.Errorf("after the role the package is %q", got)
	}
	if defaults, err := os.ReadFile(pkgDefaults); err != nil || !strings.Contains(string(defaults), `PINGMACHINE_OPTS="--basedir `+base+` --telegraf 127.0.0.1:8094"`) {
		t.Errorf("%s: %v\n%s", pkgDefaults, err, defaults)
	}
	files := orderFiles()
	if len(files) != 3 || !strings.Contains(files["lo-a"], "pings: 3\n") || !strings.Contains(files["lo-host"], "pings: 2\n") {
		t.Errorf("after the first run the managed orders are %v", files)
	}
	for _, unit := range []string{"pingmachine-orders-refresh.service", "pingmachine-orders-refresh.timer", "pingmachine.service.d/basedir.conf"} {
		if !exists(filepath.Join(systemdDir, unit)) {
			t.Errorf("the role wrote no %s", unit)
		}
	}
	verify := exec.Command("systemd-analyze", "verify", filepath.Join(systemdDir, "pingmachine-orders-refresh.service"), filepath.Join(systemdDir, "pingmachine-orders-refresh.timer"))
	if out, err := verify.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify of the refresh timer: %v\n%s", err, out)
	}

	if out, code, changed := play(); code != 0 || changed != "0" {
		t.Errorf("second run: exit %d, changed=%s, want 0 and 0:\n%s", code, changed, out)
	}

	vars["pingmachine_orders"] = map[string]any{"lo-a": loopbackOrder(5)}
	if out, code, changed := play(); code != 0 || changed == "0" {
		t.Fatalf("run with lo-a changed and lo-b removed: exit %d, changed=%s:\n%s", code, changed, out)
	}
	files = orderFiles()
	if len(files) != 2 || !strings.Contains(files["lo-a"], "pings: 5\n") || files["lo-host"] == "" {
		t.Errorf("after lo-a changed and lo-b was removed the managed orders are %v", files)
	}
	if !exists(manual) {
		t.Errorf("the role removed %s, which it does not manage", manual)
	}

	vars["pingmachine_orders"] = map[string]any{"lo-a": loopbackOrder(5), "too-many": loopbackOrder(20)}
	out, code, _ = play()
	if code == 0 || !strings.Contains(out, "20 pings do not fit a step of 10 s") {
		t.Errorf("an invalid order: exit %d, want a failure with the validator's message:\n%s", code, out)
	}
	if after := orderFiles(); len(after) != len(files) || after["lo-a"] != files["lo-a"] || after["lo-host"] != files["lo-host"] {
		t.Errorf("the refused run changed the orders from %v to %v", files, after)
	}
}

// TestAnsibleExample checks the example playbook with ansible-playbook --syntax-check and
// every order of the example inventory, as each unit would get it, with the validator.
func TestAnsibleExample(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(repoRoot, "deploy/ansible")
	command(t, "ansible-playbook", "--syntax-check", "-i", filepath.Join(dir, "inventory.yml"), filepath.Join(dir, "site.yml"))
	var inventory struct {
		Meta struct {
			HostVars map[string]struct {
				Orders     map[string]any `json:"pingmachine_orders"`
				HostOrders map[string]any `json:"pingmachine_host_orders"`
			} `json:"hostvars"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal([]byte(command(t, "ansible-inventory", "-i", filepath.Join(dir, "inventory.yml"), "--list")), &inventory); err != nil {
		t.Fatal(err)
	}
	if len(inventory.Meta.HostVars) < 3 {
		t.Fatalf("the example inventory has %d units, want a few", len(inventory.Meta.HostVars))
	}
	for host, vars := range inventory.Meta.HostVars {
		orders := make(map[string]any)
		for name, order := range vars.Orders {
			orders[name] = order
		}
		for name, order := range vars.HostOrders {
			orders[name] = order
		}
		if len(orders) == 0 {
			t.Errorf("%s has no orders", host)
		}
		for name, order := range orders {
			// JSON is YAML, and the order parser reads YAML.
			data, err := json.Marshal(order)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "validate", file).CombinedOutput(); err != nil {
				t.Errorf("%s's order %s is invalid: %v\n%s", host, name, err, out)
			}
		}
	}
}
