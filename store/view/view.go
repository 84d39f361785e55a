// Package view is the store's view of a base directory: every order file below
// orders/, valid or not, the last result of each in output/<id>/last_result, and
// whether a daemon holds the base directory's lock. It reads files only and writes
// nothing, so it works while the daemon runs and while it is stopped. The status and
// check subcommands are built on it.
package view

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/orders"
	"pingmachine/store"
)

// View is a base directory as it was read at one time.
type View struct {
	Base   string    // the base directory, absolute
	Time   time.Time // when it was read: ages are taken from it
	Orders []Order   // the order files, valid or not, sorted by id
	Daemon Daemon
}

// Order is one order file and its last result.
type Order struct {
	ID    string
	Order *orders.Order // nil when the file is not a valid order
	// Err says why the file is not a valid order, as the daemon logs it: an
	// *orders.Error names the file, line and key.
	Err error
	// Result is the last round written, nil when there is none yet or it cannot be read
	// (ResultErr).
	Result    *store.LastResult
	ResultErr error
}

// Daemon says whether a daemon runs on the base directory, that is holds its .lock.
type Daemon struct {
	Lock    string // the lock file
	Running bool
	Err     error // why it cannot be told
}

// State sums up an order for an operator.
type State string

const (
	OK         State = "ok"         // a result no older than two steps
	Stale      State = "stale"      // no result for more than two steps
	NoResult   State = "no_result"  // valid, but no round was written yet
	Unreadable State = "unreadable" // last_result cannot be read (ResultErr)
	Invalid    State = "invalid"    // the order file is not a valid order (Err)
)

// Read reads the base directory. With prefixes it reads only the orders they select
// (see Selects); without, all of them. It fails only when the base directory cannot be
// read: every other problem is in the View.
func Read(base string, prefixes ...string) (*View, error) {
	base, err := filepath.Abs(base)
	if err != nil {
		return nil, fmt.Errorf("reading the base directory: %w", err)
	}
	if fi, err := os.Stat(base); err != nil {
		return nil, fmt.Errorf("reading the base directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("reading the base directory: %s is not a directory", base)
	}
	v := &View{Base: base, Time: time.Now(), Daemon: daemon(base)}
	if len(prefixes) == 0 {
		prefixes = []string{""}
	}
	seen := make(map[string]bool)
	for _, p := range prefixes {
		orders.Walk(base, strings.TrimRight(p, "/"), func(id string, o *orders.Order, err error) {
			if !seen[id] {
				seen[id] = true
				v.Orders = append(v.Orders, Order{ID: id, Order: o, Err: err})
			}
		})
	}
	slices.SortFunc(v.Orders, func(a, b Order) int { return strings.Compare(a.ID, b.ID) })
	// On every processor, as orders.Walk reads the orders: a status of many orders is
	// mostly system calls.
	var wg sync.WaitGroup
	running := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range v.Orders {
		running <- struct{}{}
		wg.Go(func() {
			v.Orders[i].readResult(base)
			<-running
		})
	}
	wg.Wait()
	return v, nil
}

// readResult reads the order's last result, if it has one.
func (o *Order) readResult(base string) {
	r, err := store.ReadLastResult(filepath.Join(base, "output", filepath.FromSlash(o.ID), "last_result"))
	switch {
	case err == nil:
		o.Result = &r
	case !errors.Is(err, fs.ErrNotExist):
		o.ResultErr = err
	}
}

// Selects reports whether an order id is selected by a prefix: the id itself, or a
// directory above it ("team" and "team/" select "team/a" but not "teamwork/a"). The
// empty prefix selects every id.
func Selects(prefix, id string) bool {
	prefix = strings.TrimRight(prefix, "/")
	return prefix == "" || id == prefix || strings.HasPrefix(id, prefix+"/")
}

// daemon tells whether a process holds base/.lock, by asking for a shared lock, which
// the daemon's exclusive one refuses, and letting go of it at once. Shared, so that two
// readers at once do not take each other for a daemon. A daemon that starts in that
// instant finds the lock taken and exits, as if another ran (systemd starts it again).
// The file is opened for reading only and never made.
func daemon(base string) Daemon {
	d := Daemon{Lock: filepath.Join(base, ".lock")}
	f, err := os.OpenFile(d.Lock, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return d // no daemon ever ran here
	}
	if err != nil {
		d.Err = err
		return d
	}
	defer f.Close()
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		d.Running = true
	case err != nil:
		d.Err = fmt.Errorf("locking %s: %w", d.Lock, err)
	}
	return d
}

// Step is the order's step, or that of its last result when the file is not a valid
// order; zero when neither is known.
func (o *Order) Step() time.Duration {
	switch {
	case o.Order != nil:
		return o.Order.Step
	case o.Result != nil:
		return o.Result.Step
	}
	return 0
}

// Age is how long before now the last result was written, in whole seconds as
// last_result has its times, so that a limit of whole seconds is met or passed whatever
// the fraction of the second; zero without a result.
func (o *Order) Age(now time.Time) time.Duration {
	if o.Result == nil {
		return 0
	}
	return now.Truncate(time.Second).Sub(o.Result.Updated)
}

// State sums the order up at the time now. An order is stale when its last result is
// older than two steps: a round was missed and the next one is late.
func (o *Order) State(now time.Time) State {
	switch {
	case o.Err != nil:
		return Invalid
	case o.ResultErr != nil:
		return Unreadable
	case o.Result == nil:
		return NoResult
	case o.Age(now) > 2*o.Step():
		return Stale
	}
	return OK
}

// LossPercent is the share of the last result's pings that were lost.
func (o *Order) LossPercent() float64 {
	if o.Result == nil {
		return 0
	}
	return float64(o.Result.Loss) * 100 / float64(o.Result.Pings)
}

// Via is the interface and source address the order pings from, each empty when the
// order leaves it to the system.
func (o *Order) Via() (iface, source string) {
	switch {
	case o.Order == nil:
	case o.Order.FPing != nil:
		if o.Order.FPing.Source.IsValid() {
			source = o.Order.FPing.Source.String()
		}
		return o.Order.FPing.Interface, source
	case o.Order.SCION != nil:
		return o.Order.SCION.Interface, o.Order.SCION.Source
	case o.Order.DNS != nil && o.Order.DNS.Source.IsValid():
		return "", o.Order.DNS.Source.String()
	case o.Order.TCP != nil:
		if o.Order.TCP.Source.IsValid() {
			source = o.Order.TCP.Source.String()
		}
		return o.Order.TCP.Interface, source
	}
	return "", ""
}
