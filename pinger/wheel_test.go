package pinger

import (
	"slices"
	"testing"
)

// alwaysLive is the liveness of a wheel whose events never go stale.
func alwaysLive(event) bool { return true }

func TestWheel(t *testing.T) {
	tests := []struct {
		name    string
		add     []int64 // ticks of events added at tick 0
		advance []int64 // successive calls to advance
		want    [][]int64
	}{
		{"in order", []int64{3, 1, 2}, []int64{1, 2, 3}, [][]int64{{1}, {2}, {3}}},
		{"several due at once", []int64{1, 2, 5}, []int64{4, 5}, [][]int64{{1, 2}, {5}}},
		{"past is due now", []int64{-7}, []int64{0}, [][]int64{{0}}},
		{"later turns stay", []int64{3, 3 + 16, 3 + 32}, []int64{3, 19, 35}, [][]int64{{3}, {19}, {35}}},
		{"jump over more than a turn", []int64{2, 20, 40, 60}, []int64{50, 60}, [][]int64{{2, 20, 40}, {60}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWheel(16, 0, alwaysLive)
			for i, at := range tt.add {
				w.add(event{at: at, idx: int32(i)})
			}
			for i, now := range tt.advance {
				var got []int64
				for _, ev := range w.advance(now) {
					got = append(got, ev.at)
				}
				slices.Sort(got)
				if !slices.Equal(got, tt.want[i]) {
					t.Errorf("advance(%d) = %v, want %v", now, got, tt.want[i])
				}
			}
			if w.n != 0 {
				t.Errorf("%d events left", w.n)
			}
		})
	}
}

func TestWheelNextTick(t *testing.T) {
	tests := []struct {
		name    string
		add     []int64 // ticks of events added at tick 0
		advance int64   // -1: none
		want    int64   // -1: no next tick
	}{
		{"empty", nil, -1, -1},
		{"the earliest of a turn", []int64{40, 9}, -1, 9},
		{"after an advance", []int64{40, 9}, 9, 40},
		{"only later turns", []int64{3 + 32, 5 + 16}, -1, 5 + 16},
		{"a later turn and this one", []int64{2 + 16, 7}, -1, 7},
		{"the same bucket, a later turn first", []int64{4 + 32, 4 + 16}, -1, 4 + 16},
		{"the same bucket, this turn last", []int64{4 + 16, 4}, -1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWheel(16, 0, alwaysLive)
			for _, at := range tt.add {
				w.add(event{at: at})
			}
			if tt.advance >= 0 {
				w.advance(tt.advance)
			}
			got, ok := w.nextTick()
			switch {
			case tt.want < 0 && ok:
				t.Errorf("nextTick = %d, want none", got)
			case tt.want >= 0 && (!ok || got != tt.want):
				t.Errorf("nextTick = %d, %v; want %d", got, ok, tt.want)
			}
		})
	}
}

// TestWheelCancel checks that stale events do not make the wheel report a next tick, and
// that events kept for a later turn that went stale without a cancel are recounted when
// the wheel passes their bucket.
func TestWheelCancel(t *testing.T) {
	tests := []struct {
		name     string
		add      []int64 // ticks of events added at tick 0; event i has idx i
		cancel   []int   // events cancelled (made stale and cancelled)
		stale    []int   // events made stale without a cancel
		advance  int64   // -1: none
		wantNext int64   // -1: no next tick
	}{
		{"nothing cancelled", []int64{5, 9}, nil, nil, -1, 5},
		{"earliest cancelled", []int64{5, 9}, []int{0}, nil, -1, 9},
		{"all cancelled", []int64{5, 9}, []int{0, 1}, nil, -1, -1},
		{"one of a bucket cancelled", []int64{5, 5, 9}, []int{0}, nil, -1, 5},
		{"later turn cancelled", []int64{3, 3 + 16}, []int{1}, nil, 3, -1},
		{"later turn stale, recounted", []int64{3, 3 + 16, 10}, nil, []int{1}, 3, 10},
		{"cancel of a passed tick ignored", []int64{3, 8}, []int{0}, nil, 4, 8},
		{"later turns, the earliest stale", []int64{5 + 16, 9 + 32}, nil, []int{0}, -1, 9 + 32},
		{"later turns, all stale", []int64{5 + 16}, nil, []int{0}, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stale := map[int32]bool{}
			w := newWheel(16, 0, func(ev event) bool { return !stale[ev.idx] })
			for i, at := range tt.add {
				w.add(event{at: at, idx: int32(i)})
			}
			for _, i := range tt.stale {
				stale[int32(i)] = true
			}
			for _, i := range tt.cancel {
				stale[int32(i)] = true
				if tt.add[i] >= tt.advance {
					w.cancel(tt.add[i])
				}
			}
			if tt.advance >= 0 {
				w.advance(tt.advance)
				for _, i := range tt.cancel {
					w.cancel(tt.add[i]) // a second cancel, or one after the tick: ignored
				}
			}
			got, ok := w.nextTick()
			if !ok {
				got = -1
			}
			if got != tt.wantNext {
				t.Errorf("nextTick = %d, want %d", got, tt.wantNext)
			}
		})
	}
}
