package pinger

import (
	"slices"
	"testing"
)

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
			w := newWheel(16, 0)
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
	w := newWheel(16, 0)
	if _, ok := w.nextTick(); ok {
		t.Fatal("empty wheel reports a next tick")
	}
	w.add(event{at: 40})
	w.add(event{at: 9})
	if got, ok := w.nextTick(); !ok || got != 8 && got != 9 {
		t.Errorf("nextTick = %d, %v; want 9 (the earliest non-empty bucket)", got, ok)
	}
	w.advance(9)
	got, ok := w.nextTick()
	if !ok || got > 40 {
		t.Errorf("nextTick = %d, %v; want a tick no later than 40", got, ok)
	}
}
