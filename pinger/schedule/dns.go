package schedule

import (
	"errors"
	"slices"

	"github.com/miekg/dns"

	"pingmachine/orders"
	"pingmachine/pinger/dnsping"
)

// DNSEngine measures DNS rounds: *dnsping.Engine. Like the ICMP engine it must be
// stopped by the context that stops the Scheduler, so that it ends every round it holds
// (with dnsping.ErrClosed).
type DNSEngine interface {
	Submit(r *dnsping.Round) error
}

// startDNS hands a round of a dns order to the DNS engine, which times its queries
// from the round's start on as the ICMP engine times pings. s.mu is held.
func (s *Scheduler) startDNS(j *job, o *orders.Order) {
	gap, timeout := o.Timing()
	d := o.DNS
	if d.Interval == 0 {
		gap = gap.Truncate(s.quantum(o))
	}
	r := &j.dns
	if r.Done == nil {
		r.Done = s.dnsDone(j)
	}
	r.Server, r.Source, r.TCP, r.Name, r.Type = d.Server, d.Source, d.TCP, d.Name, dns.StringToType[d.Type]
	r.FailRcodes = d.FailRcodes
	r.Count, r.Gap, r.Timeout, r.Start = o.Pings, gap, timeout, j.last
	if s.cfg.DNS == nil {
		s.failed(j, "cannot query the DNS server", errors.New("the daemon has no DNS engine"))
		return
	}
	err := s.cfg.DNS.Submit(r)
	switch {
	case errors.Is(err, dnsping.ErrClosed):
		s.finish(j, nil)
	case err != nil:
		s.failed(j, "cannot query the DNS server", err)
	}
}

// dnsDone is j's DNS round's Done function: it takes the finished round from the engine.
func (s *Scheduler) dnsDone(j *job) func(*dnsping.Round) {
	return func(r *dnsping.Round) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case errors.Is(r.Err, dnsping.ErrClosed):
			// Stopped in the middle: the missing answers are not loss.
			s.finish(j, nil)
			return
		case r.Err != nil && !s.cutShort(j):
			s.logOnce(j, "cannot send DNS queries", r.Err)
		case r.Err == nil:
			j.lastErr = ""
		}
		s.finish(j, slices.Clone(r.RTTs))
	}
}
