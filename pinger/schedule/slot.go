package schedule

import (
	"container/heap"
	"hash/fnv"
	"time"
)

// grid is the resolution of every round's sends: starts and gaps are multiples of it,
// so that the pings of many orders fall due together and the engine wakes once for them
// rather than once a millisecond. It is far below what anyone could see in a graph.
const grid = 10 * time.Millisecond

// phaseOf places an order's rounds in its step by a hash of its id: the same place
// after a restart, and spread evenly over the step across many orders so that the packet
// rate is smooth.
func phaseOf(id string, step time.Duration) time.Duration {
	return (time.Duration(hashOf(id)%uint64(step/time.Millisecond)) * time.Millisecond).Truncate(grid)
}

// onGrid is the first grid point at or after t.
func onGrid(t time.Time) time.Time {
	if g := t.Truncate(grid); !g.Equal(t) {
		return g.Add(grid)
	}
	return t
}

// hashOf is FNV-1a: unlike maphash it gives the same value in every run, so an order
// keeps its phase across restarts.
func hashOf(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
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

// jobQueue is a heap of jobs by the start of their next round.
type jobQueue []*job

var _ heap.Interface = (*jobQueue)(nil)

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
