package schedule

import (
	"hash/maphash"
	"log/slog"
	"sync"

	"pingmachine/store"
)

// writers hand results to the store from a few goroutines, each serving a fixed share of
// the orders so that one order's results are written in order. Adding never blocks: the
// engine's goroutine must not wait for a disk.
type writers struct {
	store  Store
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

func newWriters(st Store, n int, log *slog.Logger) *writers {
	w := &writers{store: st, log: log, seed: maphash.MakeSeed()}
	for range max(n, 1) {
		w.queues = append(w.queues, &resultQueue{signal: make(chan struct{}, 1)})
	}
	return w
}

// add queues a result for writing. After close nothing is written any more: the result
// is logged as lost rather than dropped in silence.
func (w *writers) add(r store.Result) {
	q := w.queues[maphash.String(w.seed, r.ID)%uint64(len(w.queues))]
	q.mu.Lock()
	closed := q.closed
	if !closed {
		q.pending = append(q.pending, r)
	}
	q.mu.Unlock()
	if closed {
		w.log.Error("result lost: the writers have stopped", "id", r.ID, "time", r.Time.Unix())
		return
	}
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run writes results until close, then writes what is still queued and returns.
func (w *writers) run() {
	var wg sync.WaitGroup
	for _, q := range w.queues {
		wg.Go(func() { w.serve(q) })
	}
	wg.Wait()
}

func (w *writers) serve(q *resultQueue) {
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
