package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pingmachine/store/view"
	"pingmachine/store/web"
)

// serve runs Serve on a free loopback port until the test ends; it returns the base URL
// and a function that stops the server and returns Serve's error.
func serve(t *testing.T, cfg web.Config) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- web.Serve(ctx, ln, cfg) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return within 10 s of its context's end")
			}
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), stop
}

// timedGet gets a URL and returns the status code and how long it took.
func timedGet(t *testing.T, url string) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// TestSlowClients holds connections open by trickling headers (slowloris) and sends a
// request whose headers exceed the limit: others are served at once meanwhile, and
// the slow connections are closed after the header timeout.
func TestSlowClients(t *testing.T) {
	tr := tree(t)
	cfg, _ := fixed(t, tr.Base)
	cfg.HeaderTimeout = 500 * time.Millisecond
	url, _ := serve(t, cfg)
	addr := strings.TrimPrefix(url, "http://")

	const slow = 50 // more than the slots for requests
	closed := make(chan time.Duration, slow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range slow {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		go func() {
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
			for j := 0; ctx.Err() == nil; j++ {
				if _, err := fmt.Fprintf(conn, "X-Slow-%d-%d: y\r\n", i, j); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		go func() {
			// The server answers a request whose headers time out with nothing, or a
			// 408, then closes the connection.
			io.Copy(io.Discard, conn)
			closed <- time.Since(start)
		}()
	}
	for range 10 {
		for _, path := range []string{"/", "/api/status", "/order/web1", "/-/healthy"} {
			if code, took := timedGet(t, url+path); code != 200 || took > time.Second {
				t.Errorf("%s while slow clients wait: %d after %v", path, code, took)
			}
		}
	}
	for range slow {
		select {
		case d := <-closed:
			if d > 3*time.Second {
				t.Errorf("a slow client was closed after %v, want about the header timeout of 500 ms", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a slow client still holds its connection 5 s later")
		}
	}

	// Headers beyond the limit get 431, and the server goes on.
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %d, want 431", resp.StatusCode)
	}
	if code, _ := timedGet(t, url+"/?x="+strings.Repeat("a", 10_000)); code != http.StatusRequestURITooLong {
		t.Errorf("a query of 10,000 bytes: %d, want 414", code)
	}
	if code, _ := timedGet(t, url+"/-/healthy"); code != 200 {
		t.Errorf("after the big requests: %d", code)
	}
}

// TestHead: HEAD is answered with the headers of GET and no body.
func TestHead(t *testing.T) {
	tr := tree(t)
	cfg, _ := fixed(t, tr.Base)
	url, _ := serve(t, cfg)
	for _, path := range []string{"/", "/order/graphs/gw", "/graph/graphs/gw.png", "/api/status"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
		b, _ := io.ReadAll(bufio.NewReader(conn))
		conn.Close()
		head, body, _ := strings.Cut(string(b), "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 200 OK") || body != "" || !strings.Contains(head, "Content-Type: ") {
			t.Errorf("HEAD %s: %q, body %d bytes; want 200, a Content-Type and no body", path, head, len(body))
		}
	}
}

// TestGracefulStop ends Serve's context while a request is under way: it is answered,
// Serve returns nil, and the port is closed.
func TestGracefulStop(t *testing.T) {
	tr := tree(t)
	v, err := view.Read(tr.Base)
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	cfg := web.Config{Base: tr.Base, Status: func() (*view.View, error) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		return v, nil
	}}
	url, stop := serve(t, cfg)
	got := make(chan int, 1)
	go func() { code, _ := timedGet(t, url+"/api/status"); got <- code }()
	<-entered
	if err := stop(); err != nil {
		t.Errorf("Serve after its context ended: %v, want nil", err)
	}
	if code := <-got; code != 200 {
		t.Errorf("the request under way at the stop: %d, want 200", code)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		t.Error("the port still accepts connections after the stop")
	}
}

// TestServeFails: a listener that fails makes Serve return an error naming it.
func TestServeFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = web.Serve(context.Background(), ln, web.Config{})
	if err == nil || !strings.Contains(err.Error(), "web server on "+ln.Addr().String()) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Serve on a closed listener: %v", err)
	}
}
