package rrdfmt

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
)

// crashEnv names the file a child test process updates until it is killed.
const crashEnv = "RRDFMT_CRASH_FILE"

// TestCrashChild is the child of TestKillDuringUpdate; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return
	}
	last := lastUpdate(t, path, LP64)
	for i := int64(1); ; i++ {
		u := Update{Time: time.Unix(last+i*7, 0), Values: []string{strconv.FormatInt(i%6, 10), "0.05", "0.01", "0.02"}}
		if err := UpdateFile(path, LP64, u); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKillDuringUpdate kills a process that updates a file as fast as it can, at random
// moments, and checks each time that rrdtool still reads the file and that updating it
// goes on. rrdfmt never changes a file's length and writes the header last, in one call.
func TestKillDuringUpdate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "main.rrd")
	spec := pingmachineSpec(60*time.Second, 2, time.Unix(1_699_999_980, 0))
	if err := Create(path, spec); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 15 {
		child := exec.Command(os.Args[0], "-test.run", "^TestCrashChild$", "-test.count=1")
		child.Env = append(os.Environ(), crashEnv+"="+path)
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		rrdtest.Run(t, "info", path)
		if _, err := ReadInfo(path, LP64); err != nil {
			t.Fatalf("round %d: after kill -9: %v", round, err)
		}
	}
	if lastUpdate(t, path, LP64) <= spec.Start.Unix() {
		t.Fatal("the killed processes never updated the file")
	}
	dump := rrdtest.Run(t, "dump", path)
	if len(dump) < 1000 {
		t.Errorf("dump after the kills is too short: %q", dump)
	}
}
