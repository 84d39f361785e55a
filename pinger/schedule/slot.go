package schedule

import (
	"container/heap"
	"hash/fnv"
	"time"
)

// grid is the finest resolution of a round's sends: starts and gaps are multiples of
// it, so that the pings of many orders fall due together and the engine wakes once for
// them rather than once a millisecond. It is far below what anyone could see in a graph.
const grid = 10 * time.Millisecond

// burst is how many pings, on average, may share a send instant when the grid is made
// coarser at low packet rates (see quantum). 128 lets a thousand orders of 5 pings per
// 20 s (250 pings a second) wake the process twice a second rather than ten times, which
// on a small machine costs more than the sends; 128 echo requests are 11 KB, a tenth of
// what one fping of the Perl version sends in one go.
const burst = 128

// quantum is the resolution of the sends of a round whose pings are gap apart, when the
// ICMP orders send rate pings a second in all: the coarsest of 10 ms, 50 ms, 100 ms,
// 500 ms, 1 s and 2 s (each a multiple of the ones before, so rounds on different ones
// still meet) at which a send instant gathers no more than burst pings on average, and
// to which the gap shrinks by no more than 15%. Twenty orders of 20 pings a minute then
// wake the process every 2 s, as Perl's single fping per group does, instead of at each
// of their 400 pings; at thousands of orders it stays at 10 ms, where the packet rate is
// smooth.
func quantum(rate float64, gap time.Duration) time.Duration {
	q := grid
	for _, c := range [...]time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second} {
		if rate*c.Seconds() > burst {
			break
		}
		if c <= gap && gap%c <= gap*15/100 {
			q = c
		}
	}
	return q
}

// phaseOf places an order's rounds in its step by a hash of its id: the same place
// after a restart, and spread evenly over the step across many orders so that the packet
// rate is smooth. It is on the finest grid; a round starts at it truncated to its
// quantum.
func phaseOf(id string, step time.Duration) time.Duration {
	return (time.Duration(hashOf(id)%uint64(step/time.Millisecond)) * time.Millisecond).Truncate(grid)
}

// ceilTo is the first multiple of q at or after t.
func ceilTo(t time.Time, q time.Duration) time.Time {
	if c := t.Truncate(q); !c.Equal(t) {
		return c.Add(q)
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
