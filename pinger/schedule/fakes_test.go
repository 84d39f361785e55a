package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/pinger/adapter"
	"pingmachine/store"
	"pingmachine/store/storetest"
)

// The fakes below stand in for the engine, the program runner, the store and the
// resolver. The tests run inside a testing/synctest bubble, so their sleeps and the
// scheduler's timers run on a fake clock.

// submitted is what the fake engine saw of a round.
type submitted struct {
	target    netip.Addr
	source    netip.Addr
	iface     string
	start     time.Time
	count     int
	gap       time.Duration
	timeout   time.Duration
	submitted time.Time
}

// fakeEngine ends each round when its last ping's timeout has passed, with the RTTs
// that rtt gives, and ends every pending round with pinger.ErrClosed when its run
// context is done, as the real engine does.
type fakeEngine struct {
	mu        sync.Mutex
	closed    bool
	pending   map[*pinger.Round]bool
	rounds    []submitted
	rtt       func(target netip.Addr, ping int) time.Duration // nil: 1 ms for every ping
	submitErr error                                           // returned by Submit
	sendErr   error                                           // reported in Round.Err
	// stall, if set, runs in Submit before the round is taken, on the caller's
	// goroutine: a scheduler that stops there stands for a process that does not run.
	stall    func(r *pinger.Round)
	released []string      // "v6 source interface" of each Release
	quit     chan struct{} // closed when the engine stops
}

func (e *fakeEngine) Submit(r *pinger.Round) error {
	e.mu.Lock()
	stall := e.stall
	e.mu.Unlock()
	if stall != nil {
		stall(r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return pinger.ErrClosed
	}
	if e.submitErr != nil {
		return e.submitErr
	}
	e.rounds = append(e.rounds, submitted{
		target: r.Target, source: r.Source, iface: r.Interface, start: r.Start,
		count: r.Count, gap: r.Gap, timeout: r.Timeout, submitted: time.Now(),
	})
	if e.pending == nil {
		e.pending = make(map[*pinger.Round]bool)
	}
	e.pending[r] = true
	end := r.Start.Add(time.Duration(r.Count-1)*r.Gap + r.Timeout)
	go func() {
		select {
		case <-time.After(time.Until(end)):
		case <-e.quit:
			return
		}
		e.mu.Lock()
		if !e.pending[r] {
			e.mu.Unlock()
			return
		}
		delete(e.pending, r)
		r.RTTs = make([]time.Duration, r.Count)
		for i := range r.RTTs {
			r.RTTs[i] = time.Millisecond
			if e.rtt != nil {
				r.RTTs[i] = e.rtt(r.Target, i)
			}
		}
		r.Err = e.sendErr
		e.mu.Unlock()
		r.Done(r)
	}()
	return nil
}

func (e *fakeEngine) Release(v6 bool, source netip.Addr, iface string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.released = append(e.released, fmt.Sprintf("%v %v %s", v6, source, iface))
}

func (e *fakeEngine) run(ctx context.Context) {
	<-ctx.Done()
	close(e.quit)
	e.mu.Lock()
	e.closed = true
	var cut []*pinger.Round
	for r := range e.pending {
		cut = append(cut, r)
	}
	clear(e.pending)
	e.mu.Unlock()
	for _, r := range cut {
		r.RTTs = make([]time.Duration, r.Count)
		for i := range r.RTTs {
			r.RTTs[i] = pinger.Lost
		}
		r.Err = pinger.ErrClosed
		r.Done(r)
	}
}

func (e *fakeEngine) seen() []submitted {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.rounds)
}

func (e *fakeEngine) set(f func(e *fakeEngine)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

// fakeStore records what the scheduler asks of the store.
type fakeStore struct {
	mu         sync.Mutex
	prepared   []store.Series
	results    []store.Result
	archived   []string
	reconciled []map[string]bool
	writeErr   error
	prepareErr error
	archiveErr error
}

func (s *fakeStore) Prepare(se store.Series) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prepared = append(s.prepared, se)
	var last time.Time
	for _, r := range s.results {
		if r.ID == se.ID && r.Time.After(last) {
			last = r.Time
		}
	}
	return last, s.prepareErr
}

func (s *fakeStore) Write(r store.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return s.writeErr
	}
	s.results = append(s.results, r)
	return nil
}

func (s *fakeStore) Archive(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archived = append(s.archived, id)
	return s.archiveErr
}

func (s *fakeStore) Reconcile(present map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconciled = append(s.reconciled, present)
}

func (s *fakeStore) written() []store.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.results)
}

func (s *fakeStore) set(f func(s *fakeStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// fakeResolver answers from addrs, or with err, or waits for its context when block is
// set, as a lookup that does not come back would.
type fakeResolver struct {
	mu      sync.Mutex
	addrs   map[string][]netip.Addr
	err     error
	block   bool
	lookups []string // "network host"
	active  int      // lookups under way now
	most    int      // the most under way at once
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.lookups = append(r.lookups, network+" "+host)
	r.active++
	r.most = max(r.most, r.active)
	block, err, addrs := r.block, r.err, r.addrs[host]
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active--
		r.mu.Unlock()
	}()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return addrs, nil
}

func (r *fakeResolver) set(f func(r *fakeResolver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *fakeResolver) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lookups)
}

// toolRun is what the fake runner saw of a program run.
type toolRun struct {
	argv     []string
	round    adapter.Round
	started  time.Time
	deadline time.Time
}

// fakeRunner answers each run with run(ctx), by default at once with every ping
// answered in 2 ms.
type fakeRunner struct {
	mu   sync.Mutex
	runs []toolRun
	run  func(ctx context.Context, r adapter.Round) adapter.Result
}

func (f *fakeRunner) Run(ctx context.Context, t adapter.Tool, r adapter.Round, deadline time.Time) adapter.Result {
	f.mu.Lock()
	f.runs = append(f.runs, toolRun{argv: t.Argv(r), round: r, started: time.Now(), deadline: deadline})
	run := f.run
	f.mu.Unlock()
	if run == nil {
		return adapter.Result{RTTs: rtts(r.Pings, 2*time.Millisecond)}
	}
	return run(ctx, r)
}

func (f *fakeRunner) seen() []toolRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

func (f *fakeRunner) set(run func(ctx context.Context, r adapter.Round) adapter.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.run = run
}

// rtts is n pings, each d (pinger.Lost for lost).
func rtts(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// world is a Scheduler running against fakes, inside a synctest bubble.
type world struct {
	t        *testing.T
	engine   *fakeEngine
	tcp      *fakeTCP
	store    *fakeStore
	resolver *fakeResolver
	runner   *fakeRunner
	log      *storetest.LogBuffer
	s        *Scheduler
	stop     context.CancelFunc
	stopped  chan struct{}
}

// newWorld starts a Scheduler and its fake engine; call it inside synctest.Test. The
// scheduler is stopped at the end of the test if the test did not stop it.
func newWorld(t *testing.T) *world {
	w := &world{
		t: t, engine: &fakeEngine{quit: make(chan struct{})}, tcp: &fakeTCP{quit: make(chan struct{})}, store: &fakeStore{}, log: &storetest.LogBuffer{},
		resolver: &fakeResolver{addrs: map[string][]netip.Addr{}}, runner: &fakeRunner{},
		stopped: make(chan struct{}),
	}
	w.s = New(Config{
		Engine: w.engine, TCP: w.tcp, Runner: w.runner, Store: w.store, Resolver: w.resolver,
		HTTPing: "/usr/bin/httping", SCIONDir: "/opt/scion", Writers: 2,
		Logger: newTestLogger(w.log),
	})
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	go w.engine.run(ctx)
	go w.tcp.run(ctx)
	go func() {
		w.s.Run(ctx)
		close(w.stopped)
	}()
	t.Cleanup(w.shutdown)
	return w
}

// shutdown stops the scheduler and waits until Run has returned.
func (w *world) shutdown() {
	w.stop()
	<-w.stopped
}

// sleepUntil advances the fake clock to t and lets every goroutine settle.
func sleepUntil(t time.Time) {
	time.Sleep(time.Until(t))
}

// order parses an order file's text, as the watcher would.
func order(t *testing.T, id, text string) *orders.Order {
	t.Helper()
	o, err := orders.Parse("orders/"+id, id, []byte(text))
	if err != nil {
		t.Fatalf("test order %s: %v", id, err)
	}
	return o
}

// icmpOrder is an ICMP order; extra lines go below fping:.
func icmpOrder(t *testing.T, id, host string, step, pings int, extra ...string) *orders.Order {
	t.Helper()
	text := fmt.Sprintf("user: test\nstep: %d\npings: %d\nprobe: fping\nfping:\n  host: %s\n", step, pings, host)
	for _, e := range extra {
		text += "  " + e + "\n"
	}
	return order(t, id, text)
}

// firstStart is where an order loaded at start-up has its first round, when the orders
// loaded with it (and it) send rate pings a second; the rate of o alone if not given.
func firstStart(o *orders.Order, now time.Time, rate ...float64) time.Time {
	return slotAfter(now, o.Step, placeOf(o, append(rate, pingRate(o))[0]), time.Time{})
}

// placeOf is where in each step the rounds of an order start, at a packet rate.
func placeOf(o *orders.Order, rate float64) time.Duration {
	q := grid
	if gap, _ := o.Timing(); o.FPing != nil && o.FPing.Interval == 0 {
		q = quantum(rate, gap)
	}
	return phaseOf(o.ID, o.Step).Truncate(q)
}

func newTestLogger(b *storetest.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
