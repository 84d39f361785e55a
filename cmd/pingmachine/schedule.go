package main

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/pinger/adapter"
	"pingmachine/store"
)

// Scheduling constants.
const (
	// lead is how long before its start a round is handed to the engine, which times
	// the first ping itself; it absorbs the scheduler's own latency.
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
	// maxRuns bounds the external probe programs running at once; rounds beyond it wait
	// for a slot.
	maxRuns = 64
)

// scheduler runs every order's rounds on the step clock and hands their results to the
// store writers. It is the orders.Handler of the watcher.
type scheduler struct {
	engine  *pinger.Engine
	runner  *adapter.Runner
	tools   toolPaths
	store   *store.Store
	writers *writers
	log     *slog.Logger
	lookups chan struct{}

	mu      sync.Mutex
	jobs    map[string]*job
	queue   jobQueue // jobs waiting for their next round, earliest first
	running bool     // the first scan is over: new orders start within a second
	wake    chan struct{}
	ctx     context.Context
}

// job is one order's schedule and its reusable round.
type job struct {
	order  *orders.Order
	series store.Series
	phase  time.Duration // where in each step its rounds start
	next   time.Time     // start of the next round, when queued
	index  int           // in the queue, -1 when not queued
	last   time.Time     // start of the last round
	busy   bool          // a round is under way
	gone   bool          // removed: its round in flight is not continued

	round    pinger.Round
	addr     netip.Addr // the resolved host
	resolved time.Time
	lastErr  string // the last failure logged, so that each is logged once
}

func newScheduler(ctx context.Context, e *pinger.Engine, tools toolPaths, st *store.Store, w *writers, log *slog.Logger) *scheduler {
	return &scheduler{
		engine:  e,
		runner:  adapter.NewRunner(maxRuns),
		tools:   tools,
		store:   st,
		writers: w,
		log:     log,
		lookups: make(chan struct{}, maxLookups),
		jobs:    make(map[string]*job),
		wake:    make(chan struct{}, 1),
		ctx:     ctx,
	}
}

func seriesOf(o *orders.Order) store.Series {
	return store.Series{
		ID: o.ID, Step: o.Step, Pings: o.Pings, RRDTemplate: o.RRDTemplate,
		Measurement: o.Telegraf.Measurement, Tags: o.Telegraf.Tags,
	}
}

// phaseOf places an order's rounds in its step by a hash of its id: the same place
// after a restart, and spread evenly over the step across many orders so that the packet
// rate is smooth.
func phaseOf(id string, step time.Duration) time.Duration {
	return time.Duration(fnv64(id)%uint64(step/time.Millisecond)) * time.Millisecond
}

// fnv64 is FNV-1a: unlike maphash it gives the same value in every run.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// slotAfter is the first start of an order's rounds at or after t, and in a later step
// than last (the previous round's start, zero if none): one round per step, so that
// every round has its own time stamp.
func slotAfter(t time.Time, step, phase time.Duration, last time.Time) time.Time {
	s := int64(step / time.Second)
	k := t.Add(-phase).Unix() / s
	if !last.IsZero() {
		k = max(k, last.Unix()/s+1)
	}
	for {
		start := time.Unix(k*s, 0).Add(phase)
		if !start.Before(t) {
			return start
		}
		k++
	}
}

// Update starts or changes an order.
func (s *scheduler) Update(o *orders.Order) {
	se := seriesOf(o)
	if err := s.store.Prepare(se); err != nil {
		s.log.Error("preparing output", "id", o.ID, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[o.ID]
	now := time.Now()
	if j == nil {
		j = &job{index: -1}
		j.round.Done = func(r *pinger.Round) { s.done(j, r) }
		s.jobs[o.ID] = j
		s.log.Info("new order", "id", o.ID, "user", o.User, "target", o.Target(), "step", int(o.Step/time.Second), "pings", o.Pings)
	} else {
		s.log.Info("changed order", "id", o.ID, "user", o.User, "target", o.Target(), "step", int(o.Step/time.Second), "pings", o.Pings)
	}
	old := j.order
	j.order, j.series = o, se
	if old == nil || old.FPing == nil || o.FPing == nil || *old.FPing != *o.FPing {
		j.addr, j.resolved, j.lastErr = netip.Addr{}, time.Time{}, ""
	}
	if old != nil && old.Step == o.Step {
		return
	}
	j.phase = phaseOf(o.ID, o.Step)
	if j.busy {
		return // done schedules the next round with the new step
	}
	next := slotAfter(now, o.Step, j.phase, j.last)
	if s.running && old == nil {
		next = now.Add(time.Duration(fnv64(o.ID) % uint64(firstRoundSpread)))
	}
	s.enqueue(j, next)
}

// Remove stops an order and archives its output.
func (s *scheduler) Remove(id string, why orders.Reason) {
	s.mu.Lock()
	if j := s.jobs[id]; j != nil {
		j.gone = true
		if j.index >= 0 {
			heap.Remove(&s.queue, j.index)
		}
		delete(s.jobs, id)
		s.log.Info("removed order", "id", id, "reason", why.String())
	}
	s.mu.Unlock()
	if err := s.store.Archive(id); err != nil {
		s.log.Error("archiving output", "id", id, "err", err)
	}
}

// Scanned reconciles output/ with the orders once, after the first scan.
func (s *scheduler) Scanned(ids map[string]bool) {
	s.mu.Lock()
	first := !s.running
	s.running = true
	s.mu.Unlock()
	if first {
		s.store.Reconcile(ids)
	}
}

func (s *scheduler) enqueue(j *job, at time.Time) {
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

// run starts rounds as they come due until ctx is done.
func (s *scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		wait := time.Hour
		now := time.Now()
		for s.queue.Len() > 0 {
			j := s.queue[0]
			if d := j.next.Sub(now) - lead; d > 0 {
				wait = d
				break
			}
			heap.Pop(&s.queue)
			s.start(j)
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// start begins a round of j at j.next. s.mu is held.
func (s *scheduler) start(j *job) {
	o := j.order
	j.busy = true
	j.last = j.next
	if o.FPing == nil {
		go s.runTool(j, o, j.next)
		return
	}
	gap, timeout := o.Timing()
	r := &j.round
	r.Source, r.Interface = o.FPing.Source, o.FPing.Interface
	r.Count, r.Gap, r.Timeout, r.Start = o.Pings, gap, timeout, j.next
	if addr, err := netip.ParseAddr(o.FPing.Host); err == nil {
		j.addr = addr
	}
	if j.addr.IsValid() && (j.resolved.IsZero() || time.Since(j.resolved) < resolveEvery) {
		s.submit(j)
		return
	}
	go s.resolve(j, o)
}

// resolve looks up an order's host name, then submits its round.
func (s *scheduler) resolve(j *job, o *orders.Order) {
	s.lookups <- struct{}{}
	defer func() { <-s.lookups }()
	network := "ip4"
	if o.FPing.IPv6 {
		network = "ip6"
	}
	ctx, cancel := context.WithTimeout(s.ctx, min(o.Step/2, 10*time.Second))
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, o.FPing.Host)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.gone || j.order != o {
		j.busy = false
		if !j.gone {
			s.schedule(j)
		}
		return
	}
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = errors.New("no address")
		}
		// An unresolvable host is full loss, not a gap.
		s.failed(j, "cannot resolve host", err)
		return
	}
	j.addr, j.resolved = addrs[0].Unmap(), time.Now()
	s.submit(j)
}

// submit hands j's round to the engine. s.mu is held.
func (s *scheduler) submit(j *job) {
	j.round.Target = j.addr
	if err := s.engine.Submit(&j.round); err != nil {
		if errors.Is(err, pinger.ErrClosed) {
			j.busy = false
			return
		}
		s.failed(j, "cannot ping", err)
	}
}

// failed records a round that could not be measured as full loss. s.mu is held.
func (s *scheduler) failed(j *job, what string, err error) {
	s.logOnce(j, what+"; results are full loss", err)
	rtts := make([]time.Duration, j.order.Pings)
	for i := range rtts {
		rtts[i] = pinger.Lost
	}
	s.writers.add(store.Result{ID: j.order.ID, Time: store.Stamp(j.round.Start, j.order.Step), Step: j.order.Step, RTTs: rtts})
	j.busy = false
	s.schedule(j)
}

// done takes a finished round from the engine.
func (s *scheduler) done(j *job, r *pinger.Round) {
	if errors.Is(r.Err, pinger.ErrClosed) {
		return // stopped in the middle: the missing replies are not loss
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.busy = false
	if j.gone {
		return
	}
	if r.Err != nil {
		s.logOnce(j, "cannot send pings", r.Err)
	}
	if len(r.RTTs) == j.order.Pings {
		s.writers.add(store.Result{
			ID: j.order.ID, Time: store.Stamp(r.Start, j.order.Step), Step: j.order.Step,
			RTTs: append([]time.Duration(nil), r.RTTs...),
		})
	}
	s.schedule(j)
}

// schedule queues j's next round. s.mu is held.
func (s *scheduler) schedule(j *job) {
	next := slotAfter(time.Now(), j.order.Step, j.phase, j.last)
	s.enqueue(j, next)
}

// toolPaths locates the external probe programs.
type toolPaths struct {
	httping string // httping, a path or a name looked up in PATH
	scion   string // the SCION directory ($SC): its bin/ holds scmp_fping and pingpong
}

// tool configures the external program of a non-ICMP order.
func (t toolPaths) tool(o *orders.Order) adapter.Tool {
	if o.HTTPing != nil {
		h := o.HTTPing
		return &adapter.HTTPing{Program: t.httping, URL: h.URL, UserAgent: h.UserAgent, Proxy: h.Proxy, FailCodes: h.FailCodes}
	}
	sc := o.SCION
	prog, pong := "scmp_fping", o.Probe == "pping"
	if pong {
		prog = "pingpong"
	}
	return &adapter.SCION{Program: filepath.Join(t.scion, "bin", prog), Pong: pong, Host: sc.Host, Source: sc.Source, Flags: sc.Flags}
}

// runTool runs one round of a non-ICMP order with its program, from start on; the
// program is killed at 90% of the step, so that a hanging one never meets the next
// round.
func (s *scheduler) runTool(j *job, o *orders.Order, start time.Time) {
	select {
	case <-time.After(time.Until(start)):
	case <-s.ctx.Done():
		return
	}
	gap, timeout := o.Timing()
	round := adapter.Round{Pings: o.Pings, Interval: gap, Timeout: timeout}
	res := s.runner.Run(s.ctx, s.tools.tool(o), round, start.Add(o.Step*9/10))
	if res.Canceled {
		return // stopped in the middle: the missing answers are not loss
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.busy = false
	if j.gone {
		return
	}
	defer s.schedule(j)
	if j.order != o {
		return
	}
	switch {
	case res.Err != nil:
		// Nothing was measured: no result, and one log line until the cause changes.
		s.logOnce(j, "cannot run "+o.Probe+"; no results until it can", res.Err, "stderr", res.Stderr)
		return
	case res.Killed:
		s.logOnce(j, o.Probe+" did not finish in time and was killed", errors.New("deadline"), "stderr", res.Stderr)
	case res.ExitCode != 0 && allLost(res.RTTs):
		s.logOnce(j, o.Probe+" failed", fmt.Errorf("exit status %d", res.ExitCode), "stderr", res.Stderr)
	default:
		j.lastErr = ""
	}
	s.writers.add(store.Result{ID: o.ID, Time: store.Stamp(start, o.Step), Step: o.Step, RTTs: res.RTTs})
}

// logOnce logs a problem of j unless it is the one logged last. s.mu is held.
func (s *scheduler) logOnce(j *job, what string, err error, attrs ...any) {
	msg := what + ": " + err.Error()
	if msg == j.lastErr {
		return
	}
	j.lastErr = msg
	s.log.Warn(what, append([]any{"id", j.order.ID, "target", j.order.Target(), "err", err}, attrs...)...)
}

func allLost(rtts []time.Duration) bool {
	for _, d := range rtts {
		if d >= 0 {
			return false
		}
	}
	return true
}

// jobQueue is a heap of jobs by next start.
type jobQueue []*job

func (q jobQueue) Len() int           { return len(q) }
func (q jobQueue) Less(a, b int) bool { return q[a].next.Before(q[b].next) }
func (q jobQueue) Swap(a, b int) {
	q[a], q[b] = q[b], q[a]
	q[a].index, q[b].index = a, b
}
func (q *jobQueue) Push(x any) {
	j := x.(*job)
	j.index = len(*q)
	*q = append(*q, j)
}
func (q *jobQueue) Pop() any {
	old := *q
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*q = old[:len(old)-1]
	return j
}

// writers hand results to the store from a few goroutines, each serving a fixed share of
// the orders so that one order's results are written in order. Adding never blocks: the
// engine's goroutine must not wait for a disk.
type writers struct {
	store  *store.Store
	log    *slog.Logger
	seed   maphash.Seed
	queues []*resultQueue
}

type resultQueue struct {
	mu      sync.Mutex
	pending []store.Result
	closed  bool
	signal  chan struct{}
}

func newWriters(st *store.Store, n int, log *slog.Logger) *writers {
	w := &writers{store: st, log: log, seed: maphash.MakeSeed()}
	for range n {
		w.queues = append(w.queues, &resultQueue{signal: make(chan struct{}, 1)})
	}
	return w
}

func (w *writers) add(r store.Result) {
	q := w.queues[maphash.String(w.seed, r.ID)%uint64(len(w.queues))]
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run writes results until close, then writes what is still queued and returns.
func (w *writers) run() {
	var wg sync.WaitGroup
	for _, q := range w.queues {
		wg.Go(func() {
			var batch []store.Result
			for {
				q.mu.Lock()
				batch, q.pending = q.pending, batch[:0]
				closed := q.closed
				q.mu.Unlock()
				for _, r := range batch {
					if err := w.store.Write(r); err != nil {
						w.log.Error("writing results", "id", r.ID, "err", err)
					}
				}
				if closed && len(batch) == 0 {
					return
				}
				if len(batch) == 0 {
					<-q.signal
				}
			}
		})
	}
	wg.Wait()
}

// close makes run return once everything queued is written.
func (w *writers) close() {
	for _, q := range w.queues {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
}
