// Package schedule is pingmachine's step clock: it turns orders into rounds, hands each
// round to its probe (the ICMP engine, the TCP engine, or an external program through an
// adapter) at its place in the step, and hands each finished round to the store.
//
// One rule covers every probe: a round is written exactly when it was measured to the
// end for the order version it started with. A round cut short by shutdown, or whose
// order was removed or changed in what it measures (probe, target, step, pings) while it
// ran, is dropped and never written as loss. Rounds that could not be measured at all
// for a reason that lies with the target (a host that does not resolve, a route the
// engine refuses) are written as full loss, with the reason logged once.
//
// The scheduler talks to its probes, the store and the resolver through the small
// interfaces below. Its clock is the time package's; its tests run it inside a
// testing/synctest bubble, where that clock is a fake one that moves only when every
// goroutine waits.
package schedule

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/pinger/adapter"
	"pingmachine/pinger/dnsping"
	"pingmachine/pinger/tcpping"
	"pingmachine/store"
)

// Engine measures ICMP rounds: *pinger.Engine. It must be stopped by the context that
// stops the Scheduler, so that it ends every round it holds (with pinger.ErrClosed).
type Engine interface {
	Submit(r *pinger.Round) error
	// Release says that no order pings from (family, source, interface) any more, so
	// that its sockets can be closed.
	Release(v6 bool, source netip.Addr, iface string)
}

// Runner runs an external probe program for one round: *adapter.Runner.
type Runner interface {
	Run(ctx context.Context, t adapter.Tool, r adapter.Round, deadline time.Time) adapter.Result
}

// Store keeps the orders' outputs: *store.Store.
type Store interface {
	// Prepare readies an order's output and returns the stamp of the last result it
	// holds, zero if none.
	Prepare(se store.Series) (time.Time, error)
	Write(r store.Result) error
	Archive(id string) error
	Reconcile(present map[string]bool)
}

// Resolver looks up host names: *net.Resolver.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Scheduling constants.
const (
	// lead is how long before its start a round is handed to its probe; the engine
	// times the first ping itself, so lead absorbs the scheduler's own latency.
	lead = 100 * time.Millisecond
	// firstRoundSpread spreads the first rounds of orders that arrive while running, so
	// that a new order is pinged within about a second but a thousand of them together
	// do not start in the same millisecond.
	firstRoundSpread = time.Second
	// resolveEvery is how long a host name's address is used before it is looked up
	// again.
	resolveEvery = 5 * time.Minute
	// maxLookups bounds the host name lookups under way at once.
	maxLookups = 16
	// toolDeadline is the share of the step after which an external program is killed,
	// so that a hanging one never meets the next round.
	toolDeadline = 0.9
)

// Config wires a Scheduler to its probes, its store and its resolver.
type Config struct {
	Engine   Engine
	DNS      DNSEngine // nil: dns orders are full loss, with the reason logged
	TCP      TCPEngine
	Runner   Runner
	Store    Store
	Resolver Resolver
	// HTTPing is the httping program: a path, or a name looked up in PATH.
	HTTPing string
	// SCIONDir is the SCION directory ($SC), whose bin/ holds scmp_fping and pingpong.
	SCIONDir string
	// Writers is the number of goroutines writing results; 0 means 1.
	Writers int
	Logger  *slog.Logger // nil discards
}

// Scheduler runs every order's rounds on the step clock. It is the orders.Handler of the
// order watcher; its methods are safe for concurrent use.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	writers *writers
	lookups chan struct{}

	mu      sync.Mutex
	jobs    map[string]*job
	sockets map[socketKey]int // orders per source or interface of their own
	queue   jobQueue          // jobs waiting for their next round, earliest first
	rate    float64           // pings a second of the ICMP orders, for quantum
	running bool              // the first scan is over: new orders start within a second
	wake    chan struct{}

	inFlight   sync.WaitGroup // rounds started and not yet finished
	goroutines sync.WaitGroup // lookups and external program runs
}

// socketKey is what an ICMP order needs a socket of its own for: a source address or an
// interface. Orders without either share the engine's sockets, which stay open.
type socketKey struct {
	v6     bool
	source netip.Addr
	iface  string
}

// socketOf is o's socketKey, and whether o needs a socket of its own.
func socketOf(o *orders.Order) (socketKey, bool) {
	if o == nil || o.FPing == nil || !o.FPing.Source.IsValid() && o.FPing.Interface == "" {
		return socketKey{}, false
	}
	return socketKey{o.FPing.IPv6, o.FPing.Source, o.FPing.Interface}, true
}

// useSocket counts o in (1) or out (-1) of the orders using its socket, and tells the
// engine when the last has gone. s.mu is held.
func (s *Scheduler) useSocket(o *orders.Order, n int) {
	k, ok := socketOf(o)
	if !ok {
		return
	}
	s.sockets[k] += n
	if s.sockets[k] <= 0 {
		delete(s.sockets, k)
		s.cfg.Engine.Release(k.v6, k.source, k.iface)
	}
}

// job is one order's schedule and its reusable round.
type job struct {
	order *orders.Order // the current version
	phase time.Duration // where in each step its rounds start
	next  time.Time     // start of the next round, when queued
	index int           // in the queue, -1 when not queued
	last  time.Time     // start of the last round
	gone  bool          // removed: its round under way is not written

	// started is the order version whose round is under way, nil when none is.
	started *orders.Order

	round    pinger.Round
	addr     netip.Addr // the resolved host
	resolved time.Time  // when addr was looked up; zero for an address literal
	lastErr  string     // the last problem logged, so that each is logged once

	dns dnsping.Round // the round of a dns order
	tcp tcpping.Round // the round of a tcp or ssh order
}

// New returns a Scheduler; Run starts it.
func New(cfg Config) *Scheduler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg:     cfg,
		log:     log,
		writers: newWriters(cfg.Store, cfg.Writers, log),
		lookups: make(chan struct{}, maxLookups),
		jobs:    make(map[string]*job),
		sockets: make(map[socketKey]int),
		wake:    make(chan struct{}, 1),
	}
}

// Run starts rounds as they come due until ctx is done. It then starts no more, waits
// until every round under way has ended (the engine must stop with the same ctx),
// writes every result measured, and returns.
func (s *Scheduler) Run(ctx context.Context) {
	var writing sync.WaitGroup
	writing.Go(s.writers.run)
	s.loop(ctx)
	s.goroutines.Wait()
	s.inFlight.Wait()
	s.writers.close()
	writing.Wait()
}

func (s *Scheduler) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		s.mu.Lock()
		wait := time.Hour
		now := time.Now()
		skipped, behind := 0, time.Duration(0)
		for s.queue.Len() > 0 {
			j := s.queue[0]
			if d := j.next.Sub(now) - lead; d > 0 {
				wait = d
				break
			}
			heap.Pop(&s.queue)
			if late := now.Sub(j.next); late > maxLate(j.order.Step) {
				// The process did not run when the round was due (stopped, a paused VM,
				// starved): its slot is gone, and a round started now would be stamped
				// with a time in which nothing was measured.
				skipped, behind = skipped+1, max(behind, late)
				s.enqueue(j, s.slotAfter(now, j))
				continue
			}
			s.start(ctx, j)
		}
		s.mu.Unlock()
		if skipped > 0 {
			s.log.Warn("rounds whose time passed while the process did not run were skipped", "rounds", skipped, "behind", behind.Round(time.Millisecond).String())
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// maxLate is how late a round may start: later, its slot counts as missed. A round a
// little late still starts, so that a busy scheduler does not drop rounds.
func maxLate(step time.Duration) time.Duration {
	return max(time.Second, step/10)
}

// Update starts an order, or changes a known one.
func (s *Scheduler) Update(o *orders.Order) {
	written, err := s.cfg.Store.Prepare(seriesOf(o))
	if err != nil {
		s.log.Error("preparing output", "id", o.ID, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[o.ID]
	verb := "changed order"
	if j == nil {
		j = &job{index: -1}
		j.round.Done = s.roundDone(j)
		s.jobs[o.ID] = j
		verb = "new order"
	}
	s.log.Info(verb, "id", o.ID, "user", o.User, "target", o.Target(), "step", int(o.Step/time.Second), "pings", o.Pings)
	old := j.order
	j.order = o
	s.rate += pingRate(o) - pingRate(old)
	s.useSocket(o, 1)
	s.useSocket(old, -1)
	if old == nil || !reflect.DeepEqual(old.FPing, o.FPing) || !reflect.DeepEqual(old.TCP, o.TCP) {
		j.addr, j.resolved, j.lastErr = netip.Addr{}, time.Time{}, ""
	}
	if old != nil && old.Step == o.Step {
		return
	}
	j.phase = phaseOf(o.ID, o.Step)
	if j.started != nil {
		return // finish queues the next round, with the new step
	}
	now := time.Now()
	if old == nil && !written.IsZero() && written.Before(now) {
		// The output holds results of an earlier life of the order (deleted and back
		// within a step, or restored from the archive): a round stamped written is a
		// round that started a step later. (A stamp ahead of the clock is not trusted:
		// it would stop the order until then.)
		j.last = written.Add(o.Step)
	}
	next := s.slotAfter(now, j)
	q := min(s.quantum(o), firstRoundSpread)
	if soon := ceilTo(now, q).Add(time.Duration(hashOf(o.ID)%uint64(firstRoundSpread/q)) * q); s.running && old == nil &&
		(j.last.IsZero() || store.Stamp(soon, o.Step).After(store.Stamp(j.last, o.Step))) {
		next = soon
	}
	s.enqueue(j, next)
}

// Remove stops an order and archives its output. A round under way is not written.
func (s *Scheduler) Remove(id string, why orders.Reason) {
	s.mu.Lock()
	if j := s.jobs[id]; j != nil {
		j.gone = true
		if j.index >= 0 {
			heap.Remove(&s.queue, j.index)
		}
		delete(s.jobs, id)
		s.useSocket(j.order, -1)
		s.rate -= pingRate(j.order)
		s.log.Info("removed order", "id", id, "reason", why.String())
	}
	s.mu.Unlock()
	if err := s.cfg.Store.Archive(id); err != nil {
		s.log.Error("archiving output", "id", id, "err", err)
	}
}

// Scanned reconciles output/ with the orders once, after the first scan.
func (s *Scheduler) Scanned(ids map[string]bool) {
	s.mu.Lock()
	first := !s.running
	s.running = true
	s.mu.Unlock()
	if first {
		s.cfg.Store.Reconcile(ids)
	}
}

func seriesOf(o *orders.Order) store.Series {
	return store.Series{
		ID: o.ID, Step: o.Step, Pings: o.Pings, RRDTemplate: o.RRDTemplate,
		Measurement: o.Telegraf.Measurement, Tags: o.Telegraf.Tags,
	}
}

// enqueue queues j's next round at at. s.mu is held.
func (s *Scheduler) enqueue(j *job, at time.Time) {
	j.next = at
	if j.index >= 0 {
		heap.Fix(&s.queue, j.index)
	} else {
		heap.Push(&s.queue, j)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// start begins a round of j at j.next. s.mu is held.
func (s *Scheduler) start(ctx context.Context, j *job) {
	o := j.order
	j.started, j.last = o, j.next
	s.inFlight.Add(1)
	switch {
	case o.DNS != nil:
		s.startDNS(j, o)
		return
	case o.TCP != nil:
		s.startTCP(ctx, j, o)
		return
	}
	if o.FPing == nil {
		start := j.last
		s.goroutines.Go(func() { s.runTool(ctx, j, o, start) })
		return
	}
	gap, timeout := o.Timing()
	if o.FPing.Interval == 0 {
		// Perl's gap, to the quantum: the pings of many orders go out together.
		gap = gap.Truncate(s.quantum(o))
	}
	r := &j.round
	r.Source, r.Interface = o.FPing.Source, o.FPing.Interface
	r.Count, r.Gap, r.Timeout, r.Start = o.Pings, gap, timeout, j.last
	if addr, err := netip.ParseAddr(o.FPing.Host); err == nil {
		j.addr = addr
	}
	if j.addr.IsValid() && (j.resolved.IsZero() || time.Since(j.resolved) < resolveEvery) {
		s.submit(j)
		return
	}
	s.goroutines.Go(func() { s.resolve(ctx, j, o, o.FPing.Host, o.FPing.IPv6, s.submit) })
}

// resolve finds the address of an order's host name (AAAA records if v6), then
// submits its round.
func (s *Scheduler) resolve(ctx context.Context, j *job, o *orders.Order, host string, v6 bool, submit func(*job)) {
	select {
	case s.lookups <- struct{}{}:
	case <-ctx.Done():
		s.mu.Lock()
		s.finish(j, nil)
		s.mu.Unlock()
		return
	}
	network := "ip4"
	if v6 {
		network = "ip6"
	}
	lctx, cancel := context.WithTimeout(ctx, min(o.Step/2, 10*time.Second))
	addrs, err := s.cfg.Resolver.LookupNetIP(lctx, network, host)
	cancel()
	<-s.lookups
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ctx.Err() != nil || s.cutShort(j):
		// Stopped or changed while looking up: nothing was measured, nothing is lost.
		s.finish(j, nil)
	case err != nil || len(addrs) == 0:
		if err == nil {
			err = errors.New("no address")
		}
		// An unresolvable host is full loss, not a gap, of no address.
		j.addr = netip.Addr{}
		s.failed(j, "cannot resolve host", err)
	default:
		j.addr, j.resolved = addrs[0].Unmap(), time.Now()
		submit(j)
	}
}

// submit hands j's round to the engine. s.mu is held.
func (s *Scheduler) submit(j *job) {
	j.round.Target = j.addr
	err := s.cfg.Engine.Submit(&j.round)
	switch {
	case errors.Is(err, pinger.ErrClosed):
		s.finish(j, nil)
	case err != nil:
		s.failed(j, "cannot ping", err)
	}
}

// failed records a round that could not be measured as full loss. s.mu is held.
func (s *Scheduler) failed(j *job, what string, err error) {
	s.logOnce(j, what+"; results are full loss", err)
	rtts := make([]time.Duration, j.started.Pings)
	for i := range rtts {
		rtts[i] = pinger.Lost
	}
	s.finish(j, rtts)
}

// roundDone is j's round's Done function: it takes the finished round from the engine.
func (s *Scheduler) roundDone(j *job) func(*pinger.Round) {
	return func(r *pinger.Round) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case errors.Is(r.Err, pinger.ErrClosed):
			// Stopped in the middle: the missing replies are not loss.
			s.finish(j, nil)
			return
		case r.Err != nil && !s.cutShort(j):
			s.logOnce(j, "cannot send pings", r.Err)
		case r.Err == nil:
			j.lastErr = ""
		}
		s.finish(j, slices.Clone(r.RTTs))
	}
}

// runTool runs one round of a non-ICMP order with its program, from start on.
func (s *Scheduler) runTool(ctx context.Context, j *job, o *orders.Order, start time.Time) {
	wait := time.NewTimer(time.Until(start))
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-ctx.Done():
		s.mu.Lock()
		s.finish(j, nil)
		s.mu.Unlock()
		return
	}
	gap, timeout := o.Timing()
	round := adapter.Round{Pings: o.Pings, Interval: gap, Timeout: timeout}
	deadline := start.Add(time.Duration(float64(o.Step) * toolDeadline))
	res := s.cfg.Runner.Run(ctx, s.tool(o), round, deadline)
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.Canceled || s.cutShort(j) {
		s.finish(j, nil)
		return
	}
	switch {
	case res.Err != nil:
		// Nothing was measured: no result, and one log line until the cause changes.
		s.logOnce(j, "cannot run "+o.Probe+"; no results until it can", res.Err, "stderr", res.Stderr)
		s.finish(j, nil)
		return
	case res.Killed:
		s.logOnce(j, o.Probe+" did not finish in time and was killed", errors.New("deadline"), "stderr", res.Stderr)
	case res.ExitCode != 0 && allLost(res.RTTs):
		s.logOnce(j, o.Probe+" failed", fmt.Errorf("exit status %d", res.ExitCode), "stderr", res.Stderr)
	default:
		j.lastErr = ""
	}
	s.finish(j, res.RTTs)
}

// tool configures the external program of a non-ICMP order.
func (s *Scheduler) tool(o *orders.Order) adapter.Tool {
	if h := o.HTTPing; h != nil {
		return &adapter.HTTPing{Program: s.cfg.HTTPing, URL: h.URL, UserAgent: h.UserAgent, Proxy: h.Proxy, FailCodes: h.FailCodes}
	}
	sc := o.SCION
	prog, pong := "scmp_fping", o.Probe == "pping"
	if pong {
		prog = "pingpong"
	}
	return &adapter.SCION{Program: filepath.Join(s.cfg.SCIONDir, "bin", prog), Pong: pong, Host: sc.Host, Source: sc.Source, Flags: sc.Flags}
}

// cutShort reports whether j's round under way no longer counts: its order was removed,
// or changed in what the round measures. s.mu is held.
func (s *Scheduler) cutShort(j *job) bool {
	return j.gone || !sameMeasurement(j.started, j.order)
}

// sameMeasurement reports whether a round of order a is also a round of order b: same
// probe and target, measured the same way at the same step.
func sameMeasurement(a, b *orders.Order) bool {
	return a == b || a.Step == b.Step && a.Pings == b.Pings && a.Probe == b.Probe &&
		reflect.DeepEqual(a.FPing, b.FPing) && reflect.DeepEqual(a.HTTPing, b.HTTPing) &&
		reflect.DeepEqual(a.SCION, b.SCION) && reflect.DeepEqual(a.DNS, b.DNS) && reflect.DeepEqual(a.TCP, b.TCP)
}

// finish ends j's round under way: rtts (nil when nothing was measured) are written
// unless the round was cut short, stamped by the step the round started with, and the
// next round is queued. Every started round ends here exactly once. s.mu is held.
func (s *Scheduler) finish(j *job, rtts []time.Duration) {
	defer s.inFlight.Done()
	o := j.started
	j.started = nil
	if j.gone {
		return
	}
	switch {
	case rtts == nil:
	case !sameMeasurement(o, j.order):
		s.log.Debug("dropping a round of a changed order", "id", o.ID)
	default:
		r := store.Result{ID: o.ID, Time: store.Stamp(j.last, o.Step), Step: o.Step, RTTs: rtts}
		switch {
		case o.FPing != nil || o.TCP != nil:
			r.Addr = j.addr
		case o.DNS != nil:
			r.Addr = o.DNS.Server.Addr()
		}
		s.writers.add(r)
	}
	now := time.Now()
	next := s.slotAfter(now, j)
	// The end of the step after the last round's, in which the next round belongs.
	if end := store.Stamp(j.last, j.order.Step).Add(3 * j.order.Step); !next.Before(end) && now.Before(end) {
		// The round ran past the next one's place (a first round soon after the order
		// came, a slow program): the next starts at once, late in its own step, rather
		// than leave that step without a result. Later rounds drift back to their place.
		next = ceilTo(now, s.quantum(j.order))
	}
	s.enqueue(j, next)
}

// slotAfter is the start of j's next round at or after t: at its phase, truncated to
// its quantum. s.mu is held.
func (s *Scheduler) slotAfter(t time.Time, j *job) time.Time {
	return slotAfter(t, j.order.Step, j.phase.Truncate(s.quantum(j.order)), j.last)
}

// quantum is the resolution of o's sends at the current packet rate; the finest grid
// for orders that set their interval or run a program. s.mu is held.
func (s *Scheduler) quantum(o *orders.Order) time.Duration {
	if o.FPing == nil || o.FPing.Interval != 0 {
		return grid
	}
	gap, _ := o.Timing()
	return quantum(s.rate, gap)
}

// pingRate is the pings a second of an ICMP order, 0 for others and for nil.
func pingRate(o *orders.Order) float64 {
	if o == nil || o.FPing == nil {
		return 0
	}
	return float64(o.Pings) / o.Step.Seconds()
}

// logOnce logs a problem of j unless it is the one logged last. s.mu is held.
func (s *Scheduler) logOnce(j *job, what string, err error, attrs ...any) {
	msg := what + ": " + err.Error()
	if msg == j.lastErr {
		return
	}
	j.lastErr = msg
	s.log.Warn(what, append([]any{"id", j.order.ID, "target", j.order.Target(), "err", err}, attrs...)...)
}

func allLost(rtts []time.Duration) bool {
	return !slices.ContainsFunc(rtts, func(d time.Duration) bool { return d >= 0 })
}
