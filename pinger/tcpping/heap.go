package tcpping

// timer is a send (id >= 0: the round's index) or a deadline (id < 0: ^ the conn's index)
// due at monotonic time at.
type timer struct {
	at int64
	id int32
}

// timerHeap is a binary min-heap of timers that keeps each round's and conn's position
// in it, so that a deadline is removed when its ping ends rather than wake the engine
// for nothing later. No interface boxing: a push allocates nothing in steady state.
type timerHeap struct {
	e *Engine
	t []timer
}

func (h *timerHeap) setPos(i int) {
	if id := h.t[i].id; id >= 0 {
		h.e.rounds[id].heapPos = int32(i)
	} else {
		h.e.conns[^id].heapPos = int32(i)
	}
}

func (h *timerHeap) clearPos(t timer) {
	if t.id >= 0 {
		h.e.rounds[t.id].heapPos = -1
	} else {
		h.e.conns[^t.id].heapPos = -1
	}
}

func (h *timerHeap) push(t timer) {
	h.t = append(h.t, t)
	h.setPos(len(h.t) - 1)
	h.up(len(h.t) - 1)
}

func (h *timerHeap) pop() timer {
	t := h.t[0]
	h.remove(0)
	return t
}

func (h *timerHeap) remove(i int) {
	t := h.t[i]
	last := len(h.t) - 1
	if i != last {
		h.t[i] = h.t[last]
		h.setPos(i)
	}
	h.t = h.t[:last]
	h.clearPos(t)
	if i < last {
		h.down(i)
		h.up(i)
	}
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.t[p].at <= h.t[i].at {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h.t) {
			return
		}
		m := l
		if r := l + 1; r < len(h.t) && h.t[r].at < h.t[l].at {
			m = r
		}
		if h.t[i].at <= h.t[m].at {
			return
		}
		h.swap(i, m)
		i = m
	}
}

func (h *timerHeap) swap(i, j int) {
	h.t[i], h.t[j] = h.t[j], h.t[i]
	h.setPos(i)
	h.setPos(j)
}
