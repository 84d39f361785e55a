package pingtest

import (
	"container/heap"
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spinWindow is how long before a reply is due the sender stops sleeping and spins: even a
// precise kernel timer wakes the goroutine some ten microseconds late, a spin does not.
const spinWindow = 300 * time.Microsecond

// reply is one scheduled answer.
type reply struct {
	due   time.Time
	order uint64 // keeps answers that are due at the same time in arrival order
	conn  syscall.RawConn
	pkt   []byte
	oob   []byte
	dst   netip.Addr
	to    unix.Sockaddr
	count int
}

// scheduler sends replies when they are due, from one goroutine and a heap by due time,
// however many replies are pending.
//
// The sender waits for a timerfd in the runtime poller rather than for a Go timer: the
// runtime sleeps for timers in epoll_wait, whose timeout has millisecond resolution, so a
// Go timer fires up to a millisecond late, while a timerfd becomes readable on time. A
// blocking ppoll would be as precise but would hold on to a P while it sleeps, so that on a
// small machine nobody might poll the network for the receivers.
type scheduler struct {
	timer   *os.File
	timerRC syscall.RawConn

	mu    sync.Mutex
	queue replyQueue
	order uint64
}

func newScheduler() (*scheduler, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating timerfd: %w", err)
	}
	f, err := pollFile(fd, "timerfd")
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raw conn of timerfd: %w", err)
	}
	return &scheduler{timer: f, timerRC: rc}, nil
}

// stop makes run return; replies still queued are not sent.
func (s *scheduler) stop() {
	s.timer.Close()
}

// add queues rep and moves the sender's wake-up forward if rep is now the first reply due.
func (s *scheduler) add(rep *reply) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.order = s.order
	s.order++
	heap.Push(&s.queue, rep)
	if s.queue[0] != rep {
		return nil
	}
	return s.arm(rep.due)
}

// arm sets the timer to expire spinWindow before due, or at once. s.mu must be held, so
// that the timer always matches the first reply.
func (s *scheduler) arm(due time.Time) error {
	// A zero it_value would disarm the timer, so the shortest wait is a nanosecond.
	wait := max(time.Until(due)-spinWindow, time.Nanosecond)
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(wait))}
	var setErr error
	err := s.timerRC.Control(func(fd uintptr) {
		setErr = unix.TimerfdSettime(int(fd), 0, &spec, nil)
	})
	if err == nil {
		err = setErr
	}
	if err != nil {
		return fmt.Errorf("arming timerfd: %w", err)
	}
	return nil
}

// next removes and returns the first reply if it is due within spinWindow; otherwise it
// arms the timer for the first reply, if any, and returns nil.
func (s *scheduler) next() (*reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, nil
	}
	if time.Until(s.queue[0].due) > spinWindow {
		return nil, s.arm(s.queue[0].due)
	}
	return heap.Pop(&s.queue).(*reply), nil
}

// run sends the replies as they become due until stop is called, and reports errors
// through report unless ctx is done.
func (s *scheduler) run(ctx context.Context, report func(error)) {
	for {
		rep, err := s.next()
		if err == nil && rep == nil {
			if err = s.wait(); err == nil {
				continue
			}
		}
		if err != nil {
			// Without its timer the sender cannot go on; stop closes it on purpose.
			if ctx.Err() == nil {
				report(err)
			}
			return
		}
		for time.Now().Before(rep.due) {
			// spin
		}
		if err := rep.write(); err != nil && ctx.Err() == nil {
			report(err)
		}
	}
}

// wait blocks until the timer expires. Expirations from before the last arm only cause
// the sender one more look at the queue.
func (s *scheduler) wait() error {
	var expirations [8]byte
	var readErr error
	err := s.timerRC.Read(func(fd uintptr) bool {
		_, readErr = unix.Read(int(fd), expirations[:])
		return readErr != unix.EAGAIN
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return fmt.Errorf("reading timerfd: %w", err)
	}
	return nil
}

// write sends the reply's copies back to back.
func (rep *reply) write() error {
	for range rep.count {
		var sendErr error
		err := rep.conn.Write(func(fd uintptr) bool {
			_, sendErr = unix.SendmsgN(int(fd), rep.pkt, rep.oob, rep.to, 0)
			return sendErr != unix.EAGAIN
		})
		if err == nil {
			err = sendErr
		}
		if err != nil {
			return fmt.Errorf("sending to %v: %w", rep.dst, err)
		}
	}
	return nil
}

// replyQueue is a min-heap of replies by due time, then arrival order.
type replyQueue []*reply

func (q replyQueue) Len() int { return len(q) }
func (q replyQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].order < q[j].order
}
func (q replyQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *replyQueue) Push(x any)   { *q = append(*q, x.(*reply)) }
func (q *replyQueue) Pop() any {
	old := *q
	rep := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return rep
}
