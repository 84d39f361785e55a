package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/rrdfmt/rrdcached"
)

// Defaults of the cached backend.
const (
	// cachedRoom bounds the bytes of update lines kept while rrdcached is away: about
	// 59,000 updates of 20 pings (285 bytes each), an hour of 900 such orders at step 60
	// and some to spare.
	cachedRoom = 16 << 20
	// cachedRetry is how often an away rrdcached is tried again; updates in between are
	// kept without waiting for a connection that fails.
	cachedRetry = time.Second
)

// cached sends creates and updates to an rrdcached. While the daemon cannot be reached
// (stopped, restarting, its socket gone), updates are kept in memory in order, and each
// file's are sent once the daemon is back, before the file's next update or when it is
// flushed (moved aside, archived, or at Close). An outage therefore loses no results
// unless it outlasts the room for them; what is dropped is counted and logged.
type cached struct {
	c       *rrdcached.Client
	addr    string
	timeout time.Duration
	log     *slog.Logger
	room    int           // bytes of update lines the backlog may hold
	retry   time.Duration // between attempts to reach an away daemon

	mu      sync.Mutex
	backlog map[string][]string // update lines per file, oldest first
	held    int                 // bytes in backlog
	away    bool
	nextTry time.Time
	kept    int // updates kept during the current outage
	dropped int // updates dropped for want of room during the current outage
	// droppedAll counts the updates dropped for want of room since the start.
	droppedAll uint64
}

// stats returns the number of updates held for rrdcached and of those ever dropped.
func (b *cached) stats() (held int, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, lines := range b.backlog {
		held += len(lines)
	}
	return held, b.droppedAll
}

func dialCached(ctx context.Context, addr string, log *slog.Logger) (*cached, error) {
	c, err := rrdcached.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("store: rrdcached at %s: %w", addr, err)
	}
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("store: rrdcached at %s: %w", addr, err)
	}
	return &cached{
		c: c, addr: addr, timeout: 10 * time.Second, log: log,
		room: cachedRoom, retry: cachedRetry, backlog: make(map[string][]string),
	}, nil
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

// update sends one update, after those kept for the file. An update that cannot reach
// the daemon is kept, and is no error.
func (b *cached) update(path string, u rrdfmt.Update) error {
	line := strconv.FormatInt(u.Time.Unix(), 10) + ":" + strings.Join(u.Values, ":")
	if b.waiting() || b.replay(path) != nil {
		b.keep(path, line)
		return nil
	}
	ctx, cancel := b.ctx()
	defer cancel()
	err := b.c.Update(ctx, path, line)
	if unreachable(err) {
		b.wentAway(err)
		b.keep(path, line)
		return nil
	}
	b.cameBack()
	return err
}

// waiting reports whether the daemon is away and not to be tried again yet.
// updateBeneath: rrdcached opens the files itself.
func (b *cached) updateBeneath(*beneath, string, rrdfmt.Update) (bool, error) {
	return false, errors.ErrUnsupported
}

func (b *cached) waiting() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.away && time.Now().Before(b.nextTry)
}

// replay sends the updates kept for path, oldest first, until the daemon cannot be
// reached (the error returned). An update the daemon refuses is dropped with a log line;
// one it already has (its answer was lost with the connection) is dropped quietly.
func (b *cached) replay(path string) error {
	for {
		b.mu.Lock()
		lines := b.backlog[path]
		if len(lines) == 0 {
			delete(b.backlog, path)
			b.mu.Unlock()
			return nil
		}
		line := lines[0]
		b.mu.Unlock()

		ctx, cancel := b.ctx()
		err := b.c.Update(ctx, path, line)
		cancel()
		if unreachable(err) {
			b.wentAway(err)
			return err
		}
		b.cameBack()
		if err != nil && !strings.Contains(err.Error(), "illegal attempt to update") {
			b.log.Warn("rrdcached refused an update kept while it was away; it is lost", "file", path, "update", line, "err", err)
		}
		b.mu.Lock()
		b.backlog[path] = lines[1:]
		b.held -= len(line)
		b.mu.Unlock()
	}
}

// keep adds an update to the backlog, or drops it when the backlog is full.
func (b *cached) keep(path, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+len(line) > b.room {
		b.dropped++
		b.droppedAll++
		if b.dropped == 1 {
			b.log.Error("no room left for more RRD updates while rrdcached is away; dropping them until it is back (last_result and telegraf go on)",
				"rrdcached", b.addr, "kept", b.kept, "room_bytes", b.room, "file", path)
		}
		return
	}
	b.backlog[path] = append(b.backlog[path], line)
	b.held += len(line)
	b.kept++
}

func (b *cached) wentAway(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.away {
		b.away = true
		b.log.Error("rrdcached cannot be reached; keeping RRD updates in memory until it is back",
			"rrdcached", b.addr, "room_bytes", b.room, "err", err)
	}
	b.nextTry = time.Now().Add(b.retry)
}

func (b *cached) cameBack() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.away {
		b.away = false
		b.log.Info("rrdcached is back; the kept updates go out with each file's next update",
			"rrdcached", b.addr, "kept", b.kept, "dropped", b.dropped, "files", len(b.backlog))
		b.kept, b.dropped = 0, 0
	}
}

// unreachable reports whether err means the daemon was not reached (as opposed to a
// refusal from the daemon itself).
func unreachable(err error) bool {
	var e *rrdcached.Error
	return err != nil && !errors.As(err, &e)
}

func (b *cached) flush(path string) error {
	if err := b.replay(path); err != nil {
		// The file is about to move, or the process to end: what is kept for this path
		// has no home any more.
		b.mu.Lock()
		lost := b.backlog[path]
		delete(b.backlog, path)
		for _, l := range lost {
			b.held -= len(l)
		}
		b.mu.Unlock()
		return fmt.Errorf("%d updates kept while rrdcached was away are lost: %w", len(lost), err)
	}
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.c.Flush(ctx, path); err != nil {
		return err
	}
	// The file is about to be moved aside or archived (or the process to end): the
	// daemon must forget it, or it would refuse the updates of a new file at this path
	// that are older than the old file's last.
	return b.c.Batch(ctx, "FORGET "+rrdcached.Quote(path))
}

// corrupt recognises rrdtool's messages for a file it cannot read, which rrdcached passes
// on: "'<path>' is not an RRD file" and "This RRD was created on another architecture".
// They arrive as the text of a protocol reply, so, unlike the files backend's errors,
// there is no Go error to test with errors.Is.
func (b *cached) corrupt(err error) bool {
	var e *rrdcached.Error
	if !errors.As(err, &e) {
		return false
	}
	return strings.Contains(e.Msg, "is not an RRD file") || strings.Contains(e.Msg, "another architecture")
}

func (b *cached) close() error {
	var lost error
	b.mu.Lock()
	if len(b.backlog) > 0 {
		n := 0
		for _, lines := range b.backlog {
			n += len(lines)
		}
		lost = fmt.Errorf("rrdcached at %s: %d updates of %d files, kept while it was away, are lost", b.addr, n, len(b.backlog))
	}
	b.mu.Unlock()
	ctx, cancel := b.ctx()
	defer cancel()
	ferr := b.c.FlushAll(ctx)
	return errors.Join(lost, ferr, b.c.Close())
}
