package schedule

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger/tcpping"
)

// TCPEngine measures the rounds of tcp and ssh orders: *tcpping.Engine. It must be
// stopped by the context that stops the Scheduler, so that it ends every round it holds
// (with tcpping.ErrClosed).
type TCPEngine interface {
	Submit(r *tcpping.Round) error
}

// startTCP begins a round of a tcp or ssh order o at j.last, as start does an ICMP
// round: spread like one, on the grid. s.mu is held.
func (s *Scheduler) startTCP(ctx context.Context, j *job, o *orders.Order) {
	t := o.TCP
	gap, timeout := o.Timing()
	if t.Interval == 0 {
		gap = gap.Truncate(grid)
	}
	r := &j.tcp
	if r.Done == nil {
		r.Done = s.tcpDone(j)
	}
	r.Source, r.Interface, r.RefusedIsAnswer, r.Banner = t.Source, t.Interface, t.RefusedIsAnswer, ""
	if o.Probe == "ssh" {
		r.Banner = orders.SSHBanner
	}
	r.Count, r.Gap, r.Timeout, r.Start = o.Pings, gap, timeout, j.last
	if addr, err := netip.ParseAddr(t.Host); err == nil {
		j.addr = addr
	}
	if j.addr.IsValid() && (j.resolved.IsZero() || time.Since(j.resolved) < resolveEvery) {
		s.submitTCP(j)
		return
	}
	s.goroutines.Go(func() { s.resolve(ctx, j, o, t.Host, t.IPv6, s.submitTCP) })
}

// submitTCP hands j's round to the TCP engine. s.mu is held.
func (s *Scheduler) submitTCP(j *job) {
	j.tcp.Target = netip.AddrPortFrom(j.addr.Unmap(), j.started.TCP.Port)
	err := s.cfg.TCP.Submit(&j.tcp)
	switch {
	case errors.Is(err, tcpping.ErrClosed):
		s.finish(j, nil)
	case err != nil:
		s.failed(j, "cannot connect", err)
	}
}

// tcpDone is the Done function of j's TCP rounds.
func (s *Scheduler) tcpDone(j *job) func(*tcpping.Round) {
	return func(r *tcpping.Round) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case errors.Is(r.Err, tcpping.ErrClosed):
			// Stopped in the middle: the missing answers are not loss.
			s.finish(j, nil)
			return
		case r.Err != nil && !s.cutShort(j):
			s.logOnce(j, "cannot connect", r.Err)
		case r.Err == nil:
			j.lastErr = ""
		}
		s.finish(j, slices.Clone(r.RTTs))
	}
}
