// Package live is the daemon's state in memory: every order file the watcher found,
// valid or not, and the last result of each as the store writes it. Its View is what
// view.Read gives of the base directory, made without reading a file, so that the
// daemon's pages cost nothing per order on disk; its Observer (the metrics) hears of
// every round and of every order that goes away.
package live

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"pingmachine/orders"
	"pingmachine/store"
	"pingmachine/store/view"
)

// Observer hears of what the State learns. Its methods run on the store's writing
// goroutines and on the watcher's: they must return at once.
type Observer interface {
	// Round reports a round the store took for the order o, the version that runs.
	Round(o *orders.Order, r store.Result, last store.LastResult)
	// Gone reports that an order went away: deleted, expired, or its invalid file
	// removed. Round is not called for it after, unless it comes back.
	Gone(id string)
}

// Counts sums up the orders.
type Counts struct {
	Active  int    // valid orders being pinged
	Invalid int    // files that are not valid orders (a previous valid version may run on)
	Expired uint64 // orders expired since the start
}

// State is the daemon's live state. It is the store's Observer (store.Options.Observer),
// hears of the watcher's findings through Handler and Invalid, and is safe for
// concurrent use.
//
// A round written takes the lock only to read: it never waits for a View, nor a View
// for it. The orders' comings and goings, rare, take it to write.
type State struct {
	base string
	obs  Observer

	mu      sync.RWMutex
	entries map[string]*entry
	sorted  []string // the ids in order
	expired atomic.Uint64
}

// entry is what the State knows of one order file. The fields but result are written
// with State.mu held to write.
type entry struct {
	running *orders.Order // the version the scheduler runs, nil if none
	order   *orders.Order // the file's version: nil when it is not a valid order
	err     error         // why it is not
	result  atomic.Pointer[result]
}

// result is what last_result holds; nil in an entry until it is known.
type result struct {
	last *store.LastResult // nil when there is none
	err  error             // it cannot be read
}

// New returns the State of the base directory base (absolute), telling obs (nil: no
// one) of rounds and of orders that go away.
func New(base string, obs Observer) *State {
	return &State{base: base, obs: obs, entries: make(map[string]*entry)}
}

// get returns the entry of id, made if new. s.mu is held to write.
func (s *State) get(id string) *entry {
	e := s.entries[id]
	if e == nil {
		e = &entry{}
		s.entries[id] = e
		i, _ := slices.BinarySearch(s.sorted, id)
		s.sorted = slices.Insert(s.sorted, i, id)
	}
	return e
}

// Handler returns the orders.Handler that keeps the State and passes everything on to
// next, the scheduler.
func (s *State) Handler(next orders.Handler) orders.Handler {
	return &handler{s: s, next: next}
}

type handler struct {
	s    *State
	next orders.Handler
}

// Update records the order before the scheduler prepares its output, so that the
// store's Found finds its entry.
func (h *handler) Update(o *orders.Order) {
	h.s.mu.Lock()
	e := h.s.get(o.ID)
	e.running, e.order, e.err = o, o, nil
	h.s.mu.Unlock()
	h.next.Update(o)
}

// Remove forgets the order once the scheduler has archived its output: from then on the
// store writes no round of it.
func (h *handler) Remove(id string, why orders.Reason) {
	h.next.Remove(id, why)
	if why == orders.Expired {
		h.s.expired.Add(1)
	}
	h.s.forget(id)
}

func (h *handler) Scanned(ids map[string]bool) { h.next.Scanned(ids) }

func (s *State) forget(id string) {
	s.mu.Lock()
	_, known := s.entries[id]
	if known {
		delete(s.entries, id)
		i, _ := slices.BinarySearch(s.sorted, id)
		s.sorted = slices.Delete(s.sorted, i, i+1)
	}
	s.mu.Unlock()
	if known && s.obs != nil {
		s.obs.Gone(id)
	}
}

// Invalid records a file that is not a valid order (orders.Options.Invalid); a nil err
// says that such a file went away. A previous valid version goes on running. An order
// never valid has its last_result read once here, as view.Read would show it: the store
// never prepares its output.
func (s *State) Invalid(id string, err error) {
	if err == nil {
		s.forget(id)
		return
	}
	s.mu.Lock()
	e := s.get(id)
	e.order, e.err = nil, err
	known := e.result.Load() != nil
	s.mu.Unlock()
	if known {
		return
	}
	r, rerr := store.ReadLastResult(filepath.Join(s.base, "output", filepath.FromSlash(id), "last_result"))
	switch {
	case rerr == nil:
		s.Found(id, &r, nil)
	case !errors.Is(rerr, fs.ErrNotExist):
		s.Found(id, nil, rerr)
	}
}

// Found records what an order's last_result holds (store.Observer).
func (s *State) Found(id string, last *store.LastResult, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.entries[id]; e != nil {
		e.result.Store(&result{last: last, err: err})
	}
}

// Written records a round (store.Observer) and tells the Observer.
func (s *State) Written(r store.Result, last store.LastResult, err error) {
	s.mu.RLock()
	e := s.entries[r.ID]
	var running *orders.Order
	if e != nil {
		running = e.running
		if err == nil {
			// last_result holds what it held when it could not be written.
			e.result.Store(&result{last: &last})
		}
	}
	s.mu.RUnlock()
	if running != nil && s.obs != nil {
		s.obs.Round(running, r, last)
	}
}

// Counts returns the numbers of orders.
func (s *State) Counts() Counts {
	c := Counts{Expired: s.expired.Load()}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.entries {
		if e.running != nil {
			c.Active++
		}
		if e.err != nil {
			c.Invalid++
		}
	}
	return c
}

// View returns the state as view.Read would read the base directory now: every order
// file, valid or not, with its last result, and the daemon running. It shares the
// orders with the State; they must not be changed.
func (s *State) View() *view.View {
	v := &view.View{
		Base: s.base, Time: time.Now(),
		Daemon: view.Daemon{Lock: filepath.Join(s.base, ".lock"), Running: true},
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v.Orders = make([]view.Order, len(s.sorted))
	// One allocation for every result: a View's results are its own.
	results := make([]store.LastResult, 0, len(s.sorted))
	for i, id := range s.sorted {
		e := s.entries[id]
		o := view.Order{ID: id, Order: e.order, Err: e.err}
		if r := e.result.Load(); r != nil {
			o.ResultErr = r.err
			if r.last != nil {
				results = append(results, *r.last)
				o.Result = &results[len(results)-1]
			}
		}
		v.Orders[i] = o
	}
	return v
}
