package pinger_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"pingmachine/pinger"
)

// ExampleEngine pings 127.0.0.1 three times. It runs as root, which opens raw sockets;
// unprivileged, the engine falls back to datagram sockets where the host's
// net.ipv4.ping_group_range allows them.
func ExampleEngine() {
	e := pinger.New(pinger.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- e.Run(ctx) }()
	defer func() {
		cancel()
		<-stopped
	}()

	// Done runs on an engine goroutine and must not block it.
	done := make(chan *pinger.Round, 1)
	r := &pinger.Round{
		Target:  netip.MustParseAddr("127.0.0.1"),
		Count:   3,
		Gap:     10 * time.Millisecond,
		Timeout: time.Second,
		Done:    func(r *pinger.Round) { done <- r },
	}
	if err := e.Submit(r); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	if r.Err != nil {
		fmt.Println(r.Err)
	}
	// r.RTTs holds each ping's round-trip time, in send order, or pinger.Lost.
	fmt.Printf("%s: %d of %d answered\n", r.Target, r.Received(), r.Count)
	// Output: 127.0.0.1: 3 of 3 answered
}
