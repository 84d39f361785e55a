package pinger

// eventKind says what a timer wheel event does when it fires.
type eventKind uint8

const (
	eventSend     eventKind = iota // send the next ping of round idx
	eventDeadline                  // time out the probe in slot idx
)

// event is one entry of the timer wheel. check guards against stale entries: the round's
// generation for sends, the probe's serial for deadlines. Stale entries are skipped when
// they fire instead of being removed when they become stale, which keeps the wheel free
// of pointers and of per-entry bookkeeping.
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
	mask    int64
	next    int64 // first tick not yet processed
	n       int   // events held
	due     []event
}

// newWheel makes a wheel of size buckets; size must be a power of two.
func newWheel(size int, now int64) *wheel {
	return &wheel{buckets: make([][]event, size), mask: int64(size - 1), next: now}
}

// add schedules ev; an event in the past fires at the next advance.
func (w *wheel) add(ev event) {
	if ev.at < w.next {
		ev.at = w.next
	}
	b := &w.buckets[ev.at&w.mask]
	*b = append(*b, ev)
	w.n++
}

// advance collects every event due at or before tick now, in tick order, and returns
// them. The result is only valid until the next call.
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
		b := &w.buckets[t&w.mask]
		keep := (*b)[:0]
		for _, ev := range *b {
			if ev.at <= now {
				w.due = append(w.due, ev)
			} else {
				keep = append(keep, ev)
			}
		}
		*b = keep
	}
	w.n -= len(w.due)
	w.next = now + 1
	return w.due
}

// nextTick returns the tick of the earliest non-empty bucket, which is no later than the
// earliest event, and false when the wheel is empty.
func (w *wheel) nextTick() (int64, bool) {
	if w.n == 0 {
		return 0, false
	}
	for t := w.next; t < w.next+int64(len(w.buckets)); t++ {
		if len(w.buckets[t&w.mask]) > 0 {
			return t, true
		}
	}
	return w.next, true
}
