package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/rrdfmt/rrdcached"
)

// rrdSpec is the Perl version's main.rrd: loss, median and one data source per ping,
// with a heartbeat of two steps, and the RRA set that its step and template choose.
func rrdSpec(step time.Duration, pings int, template string) rrdfmt.Spec {
	s := uint64(step / time.Second)
	hb := 2 * s
	spec := rrdfmt.Spec{Step: step, Layout: rrdfmt.NativeLayout()}
	spec.DS = append(spec.DS,
		rrdfmt.DS{Name: "loss", Type: "GAUGE", Heartbeat: hb, Min: 0, Max: float64(pings)},
		rrdfmt.DS{Name: "median", Type: "GAUGE", Heartbeat: hb, Min: 0, Max: 180})
	for i := 1; i <= pings; i++ {
		spec.DS = append(spec.DS, rrdfmt.DS{Name: "ping" + strconv.Itoa(i), Type: "GAUGE", Heartbeat: hb, Min: 0, Max: 180})
	}
	add := func(cfs string, seconds, rows uint64) {
		// The Perl version divides, and wrote a fraction for a step that does not divide
		// the period; rrdtool of its time read that with %lu, which truncates.
		pdps := max(1, seconds/s)
		for cf := range strings.SplitSeq(cfs, ",") {
			spec.RRA = append(spec.RRA, rrdfmt.RRA{CF: cf, XFF: 0.5, PDPs: pdps, Rows: rows})
		}
	}
	switch {
	case template == "smokeping" && s < 300:
		add("AVERAGE", s, 900)
		add("AVERAGE,MIN,MAX", 300, 864)
		add("AVERAGE,MIN,MAX", 1800, 480)
		add("AVERAGE,MIN,MAX", 3600, 960)
		add("AVERAGE,MAX,MIN", 43200, 800)
		add("AVERAGE,MAX,MIN", 604800, 520)
	case template == "smokeping" && s == 300:
		add("AVERAGE", 300, 864)
		add("AVERAGE,MIN,MAX", 1800, 480)
		add("AVERAGE,MIN,MAX", 3600, 960)
		add("AVERAGE,MAX,MIN", 43200, 800)
		add("AVERAGE,MAX,MIN", 604800, 520)
	default:
		add("AVERAGE", s, 1008)
		add("AVERAGE,MIN,MAX", 12*s, 4320)
		add("AVERAGE,MAX,MIN", 144*s, 720)
	}
	return spec
}

// backend writes RRD files: this process through rrdfmt, or an rrdcached.
type backend interface {
	create(path string, spec rrdfmt.Spec) error
	update(path string, u rrdfmt.Update) error
	// flush makes the file on disk complete before it is renamed, and makes the backend
	// forget it.
	flush(path string) error
	// corrupt reports whether an update error says the file is not a usable RRD.
	corrupt(err error) bool
	close() error
}

// files is the embedded backend: each update is written by this process.
type files struct {
	layout rrdfmt.Layout
}

func (f files) create(path string, spec rrdfmt.Spec) error { return rrdfmt.Create(path, spec) }
func (f files) update(path string, u rrdfmt.Update) error {
	return rrdfmt.UpdateFile(path, f.layout, u)
}
func (files) flush(string) error { return nil }

func (files) corrupt(err error) bool { return unusable(err) }

// unusable reports whether rrdfmt refused a file as no RRD it can update: not an RRD at
// all, or one of another CPU layout or format version. Only the innermost error is read:
// the outer ones name the file, whose path may hold any word.
func unusable(err error) bool {
	if err == nil || errors.Is(err, rrdfmt.ErrNotRRD) {
		return err != nil
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u
	}
	return strings.Contains(err.Error(), "layout") || strings.Contains(err.Error(), "RRD version")
}

func (files) close() error { return nil }

// cached sends creates and updates to an rrdcached.
type cached struct {
	c       *rrdcached.Client
	timeout time.Duration
}

func dialCached(ctx context.Context, addr string) (*cached, error) {
	c, err := rrdcached.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("store: rrdcached at %s: %w", addr, err)
	}
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("store: rrdcached at %s: %w", addr, err)
	}
	return &cached{c: c, timeout: 10 * time.Second}, nil
}

func (b *cached) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.timeout)
}

func (b *cached) create(path string, spec rrdfmt.Spec) error {
	defs := make([]string, 0, len(spec.DS)+len(spec.RRA))
	bound := func(v float64) string {
		if math.IsNaN(v) {
			return "U"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	for _, d := range spec.DS {
		defs = append(defs, fmt.Sprintf("DS:%s:%s:%d:%s:%s", d.Name, d.Type, d.Heartbeat, bound(d.Min), bound(d.Max)))
	}
	for _, r := range spec.RRA {
		defs = append(defs, fmt.Sprintf("RRA:%s:%s:%d:%d", r.CF, strconv.FormatFloat(r.XFF, 'f', -1, 64), r.PDPs, r.Rows))
	}
	ctx, cancel := b.ctx()
	defer cancel()
	return b.c.Create(ctx, path, spec.Step, spec.Start, true, defs...)
}

func (b *cached) update(path string, u rrdfmt.Update) error {
	ctx, cancel := b.ctx()
	defer cancel()
	return b.c.Update(ctx, path, strconv.FormatInt(u.Time.Unix(), 10)+":"+strings.Join(u.Values, ":"))
}

func (b *cached) flush(path string) error {
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.c.Flush(ctx, path); err != nil {
		return err
	}
	// The file is about to be renamed: the daemon must forget it, or it would refuse
	// the updates of a new file at this path that are older than the old file's last.
	return b.c.Batch(ctx, "FORGET "+rrdcached.Quote(path))
}

// corrupt recognises rrdtool's messages, which rrdcached passes on: "is not an RRD
// file", and a missing file (rrdcached reports it as text, not as an errno).
func (b *cached) corrupt(err error) bool {
	var e *rrdcached.Error
	if !errors.As(err, &e) {
		return false
	}
	return strings.Contains(e.Msg, "is not an RRD file") || strings.Contains(e.Msg, "another architecture")
}

func (b *cached) close() error {
	ctx, cancel := b.ctx()
	defer cancel()
	ferr := b.c.FlushAll(ctx)
	return errors.Join(ferr, b.c.Close())
}
