package pinger

import "math"

// eventKind says what a timer wheel event does when it fires.
type eventKind uint8

const (
	eventSend     eventKind = iota // send the next ping of round idx
	eventDeadline                  // time out the probe in slot idx
)

// event is one entry of the timer wheel. check guards against stale entries: the round's
// generation for sends, the probe's serial for deadlines. Stale entries are skipped when
// they fire instead of being removed when they become stale, which keeps the wheel free
// of pointers and of per-entry bookkeeping; but they must not wake the engine, so the
// wheel counts the live events of each bucket, and cancel takes one off the count.
type event struct {
	at    int64 // tick at which it fires
	check uint64
	idx   int32
	kind  eventKind
}

// wheel is a hashed timer wheel of one-tick buckets. Events further away than one turn
// stay in their bucket until the turn in which they are due. Bucket slices keep their
// capacity, so in steady state nothing is allocated.
type wheel struct {
	buckets [][]event
	live    []int32 // per bucket: events held that are not stale
	mask    int64
	next    int64 // first tick not yet processed
	n       int   // live events held
	due     []event
	// alive reports whether an event is still live; advance asks it about the events it
	// keeps for later turns, to recount their bucket.
	alive func(event) bool
}

// newWheel makes a wheel of size buckets; size must be a power of two. alive tells live
// events from stale ones.
func newWheel(size int, now int64, alive func(event) bool) *wheel {
	return &wheel{buckets: make([][]event, size), live: make([]int32, size), mask: int64(size - 1),
		next: now, alive: alive}
}

// add schedules ev; an event in the past fires at the next advance.
func (w *wheel) add(ev event) {
	if ev.at < w.next {
		ev.at = w.next
	}
	i := ev.at & w.mask
	w.buckets[i] = append(w.buckets[i], ev)
	w.live[i]++
	w.n++
}

// cancel says that an event added for tick at has become stale before it fired, so that
// it no longer keeps the engine awake. The event stays in its bucket until the wheel
// passes it.
func (w *wheel) cancel(at int64) {
	if at < w.next {
		return // passed already, or added in the past: its bucket was recounted
	}
	if i := at & w.mask; w.live[i] > 0 {
		w.live[i]--
		w.n--
	}
}

// advance collects every event due at or before tick now, stale ones included, in tick
// order, and returns them. The result is only valid until the next call.
func (w *wheel) advance(now int64) []event {
	w.due = w.due[:0]
	if now < w.next {
		return w.due
	}
	ticks := now - w.next + 1
	if ticks > int64(len(w.buckets)) {
		ticks = int64(len(w.buckets))
	}
	for t := w.next; t < w.next+ticks; t++ {
		i := t & w.mask
		b := &w.buckets[i]
		keep := (*b)[:0]
		live := int32(0)
		for _, ev := range *b {
			switch {
			case ev.at <= now:
				w.due = append(w.due, ev)
			case w.alive(ev):
				keep = append(keep, ev)
				live++
			}
		}
		*b = keep
		w.n += int(live - w.live[i])
		w.live[i] = live
	}
	w.next = now + 1
	return w.due
}

// nextTick returns the tick of the earliest live event, and false when the wheel holds
// none. An event that went stale without a cancel may make it early, never late. It
// looks past the current turn when nothing is due in it, so that a wheel whose events are
// all more than a turn away (a ping every few seconds) does not wake the engine once a
// turn for nothing.
func (w *wheel) nextTick() (int64, bool) {
	if w.n <= 0 {
		return 0, false
	}
	end := w.next + int64(len(w.buckets))
	earliest := int64(math.MaxInt64)
	for t := w.next; t < end; t++ {
		i := t & w.mask
		if w.live[i] == 0 {
			continue
		}
		for _, ev := range w.buckets[i] {
			switch {
			case ev.at == t:
				// Due in this turn: nothing live is earlier, since the buckets before
				// held nothing due in it.
				return t, true
			case ev.at < earliest && w.alive(ev):
				earliest = ev.at
			}
		}
	}
	return earliest, earliest != math.MaxInt64
}
