package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"pingmachine/pinger"
)

// daemon collects the daemon-wide figures from their Sources at each scrape.
type daemon struct{ src Sources }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	engineDescs = struct {
		sent, sendErrors, received, timedOut, late, duplicate, foreign, icmpErrors, unverified, kernelDrops, sockets *prometheus.Desc
	}{
		sent:        desc("pingmachine_icmp_sent_total", "Echo requests the ICMP engine handed to the kernel."),
		sendErrors:  desc("pingmachine_icmp_send_errors_total", "Pings the ICMP engine could not send; they count as lost."),
		received:    desc("pingmachine_icmp_received_total", "Echo replies matched to a ping in time."),
		timedOut:    desc("pingmachine_icmp_timed_out_total", "Pings that reached their timeout without a reply."),
		late:        desc("pingmachine_icmp_late_replies_total", "Genuine replies that came after their ping had timed out (counted as lost)."),
		duplicate:   desc("pingmachine_icmp_duplicate_replies_total", "Further replies to a ping already answered."),
		foreign:     desc("pingmachine_icmp_foreign_replies_total", "Replies that were not to pingmachine's pings: wrong identifier, MAC, payload or source."),
		icmpErrors:  desc("pingmachine_icmp_errors_total", "ICMP errors (unreachable, time exceeded) that ended a ping."),
		unverified:  desc("pingmachine_icmp_unverified_errors_total", "ICMP errors naming a ping in flight that did not quote enough of it to be trusted; ignored."),
		kernelDrops: desc("pingmachine_icmp_kernel_drops_total", "Packets the kernel dropped because an ICMP socket's receive buffer was full."),
		sockets:     desc("pingmachine_icmp_sockets", "Open ICMP sockets by address family and mode: raw (CAP_NET_RAW) or datagram (net.ipv4.ping_group_range).", "family", "mode"),
	}
	ordersDesc      = desc("pingmachine_orders", "Order files by state: active (valid, being pinged) or invalid (not a valid order; a previous valid version may still run).", "state")
	expiredDesc     = desc("pingmachine_orders_expired_total", "Orders expired (not refreshed within 3660 s) and archived since the daemon started.")
	writeErrorsDesc = desc("pingmachine_write_errors_total", "Rounds an output could not take: main.rrd, last_result, or telegraf (datagrams the socket failed to send).", "output")
	backlogDesc     = desc("pingmachine_rrdcached_backlog_updates", "RRD updates held in memory while rrdcached cannot be reached.")
	cachedDropDesc  = desc("pingmachine_rrdcached_dropped_updates_total", "RRD updates dropped because rrdcached stayed away longer than the backlog had room for.")
	telegrafDrop    = desc("pingmachine_telegraf_dropped_points_total", "Rounds not sent to telegraf because its queue was full.")
)

// Describe lists every descriptor without reading the Sources: it runs at New, before
// what they read is set up.
func (d *daemon) Describe(ch chan<- *prometheus.Desc) {
	e := &engineDescs
	for _, desc := range []*prometheus.Desc{e.sent, e.sendErrors, e.received, e.timedOut, e.late, e.duplicate, e.foreign,
		e.icmpErrors, e.unverified, e.kernelDrops, e.sockets, ordersDesc, expiredDesc, writeErrorsDesc, backlogDesc,
		cachedDropDesc, telegrafDrop} {
		ch <- desc
	}
}

func (d *daemon) Collect(ch chan<- prometheus.Metric) {
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	if d.src.Engine != nil {
		st, e := d.src.Engine(), &engineDescs
		counter(e.sent, st.Sent)
		counter(e.sendErrors, st.SendErrors)
		counter(e.received, st.Received)
		counter(e.timedOut, st.TimedOut)
		counter(e.late, st.Late)
		counter(e.duplicate, st.Duplicate)
		counter(e.foreign, st.Foreign)
		counter(e.icmpErrors, st.ICMPErrors)
		counter(e.unverified, st.UnverifiedErrors)
		counter(e.kernelDrops, st.KernelDrops)
	}
	if d.src.Sockets != nil {
		type key struct{ family, mode string }
		// Every combination, so that a mode that went is 0 rather than absent.
		n := map[key]int{}
		for _, fam := range []string{"ipv4", "ipv6"} {
			for _, m := range []pinger.Mode{pinger.ModeRaw, pinger.ModeDatagram} {
				n[key{fam, m.String()}] = 0
			}
		}
		for _, s := range d.src.Sockets() {
			fam := "ipv4"
			if s.IPv6 {
				fam = "ipv6"
			}
			n[key{fam, s.Mode.String()}]++
		}
		for k, v := range n {
			gauge(engineDescs.sockets, float64(v), k.family, k.mode)
		}
	}
	if d.src.Orders != nil {
		c := d.src.Orders()
		gauge(ordersDesc, float64(c.Active), "active")
		gauge(ordersDesc, float64(c.Invalid), "invalid")
		counter(expiredDesc, c.Expired)
	}
	if d.src.Store != nil {
		st := d.src.Store()
		counter(writeErrorsDesc, st.RRDErrors, "main.rrd")
		counter(writeErrorsDesc, st.LastResultErrors, "last_result")
		gauge(backlogDesc, float64(st.RRDCachedBacklog))
		counter(cachedDropDesc, st.RRDCachedDropped)
	}
	if d.src.Telegraf != nil {
		st := d.src.Telegraf()
		counter(writeErrorsDesc, st.SendErrors, "telegraf")
		counter(telegrafDrop, st.Dropped)
	}
}
