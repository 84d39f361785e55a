// Package rrdcached is a client for rrdcached's line protocol (see rrdcached(1)): for
// installations that let one daemon batch the disk writes of many RRD files.
//
// A Client holds one connection and is safe for concurrent use; requests are serialised.
// A broken connection is dialled again, once, on the next request.
package rrdcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPort is rrdcached's TCP port.
const DefaultPort = "42217"

// defaultTimeout bounds a request whose context has no deadline.
const defaultTimeout = 10 * time.Second

// Error is an error answer of the daemon.
type Error struct {
	Cmd  string // the command keyword
	Code int    // the negative status code
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("rrdcached: %s: %s", e.Cmd, e.Msg) }

// Client talks to one rrdcached.
type Client struct {
	network, address string

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to rrdcached at addr: "unix:/path" or an absolute path for a unix
// socket, otherwise "host[:port]" over TCP (IPv6 literals in brackets).
func Dial(ctx context.Context, addr string) (*Client, error) {
	c := &Client{network: "tcp", address: addr}
	switch {
	case strings.HasPrefix(addr, "unix:"):
		c.network, c.address = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"):
		c.network = "unix"
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			c.address = net.JoinHostPort(strings.Trim(addr, "[]"), DefaultPort)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) dial(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return fmt.Errorf("rrdcached: connecting to %s: %w", c.address, err)
	}
	c.conn, c.r = conn, bufio.NewReader(conn)
	return nil
}

// Close says goodbye and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	_, _ = c.conn.Write([]byte("QUIT\n"))
	err := c.conn.Close()
	c.conn = nil
	return err
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, []string{"PING"})
	return err
}

// Create creates file through the daemon, refusing to overwrite it (-O). defs are the
// "DS:..." and "RRA:..." definitions as rrdtool create takes them.
func (c *Client) Create(ctx context.Context, file string, step time.Duration, start time.Time, defs ...string) error {
	args := append([]string{"CREATE", file, "-s", strconv.Itoa(int(step / time.Second)),
		"-b", strconv.FormatInt(start.Unix(), 10), "-O"}, defs...)
	_, err := c.do(ctx, args)
	return err
}

// Update queues readings ("time:v1:v2...", absolute times only) for file.
func (c *Client) Update(ctx context.Context, file string, values ...string) error {
	_, err := c.do(ctx, append([]string{"UPDATE", file}, values...))
	return err
}

// Flush writes file's queued readings to disk and returns when they are written.
func (c *Client) Flush(ctx context.Context, file string) error {
	_, err := c.do(ctx, []string{"FLUSH", file})
	return err
}

// FlushAll starts writing every queued reading; it does not wait for the writes.
func (c *Client) FlushAll(ctx context.Context) error {
	_, err := c.do(ctx, []string{"FLUSHALL"})
	return err
}

// Last returns the time of file's last update on disk (queued readings not included).
func (c *Client) Last(ctx context.Context, file string) (time.Time, error) {
	lines, err := c.do(ctx, []string{"LAST", file})
	if err != nil {
		return time.Time{}, err
	}
	return parseTime("LAST", lines)
}

// First returns the time of the first row of RRA rra of file.
func (c *Client) First(ctx context.Context, file string, rra int) (time.Time, error) {
	lines, err := c.do(ctx, []string{"FIRST", file, strconv.Itoa(rra)})
	if err != nil {
		return time.Time{}, err
	}
	return parseTime("FIRST", lines)
}

// Stats returns the daemon's counters (QueueLength, UpdatesReceived, ...).
func (c *Client) Stats(ctx context.Context) (map[string]int64, error) {
	lines, err := c.do(ctx, []string{"STATS"})
	if err != nil {
		return nil, err
	}
	stats := make(map[string]int64, len(lines)-1)
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil {
			stats[name] = n
		}
	}
	return stats, nil
}

// Batch sends commands ("UPDATE file values...", ...) in one BATCH. If some fail, the
// error lists each failed command with its number (from 1) and the daemon's message.
func (c *Client) Batch(ctx context.Context, cmds ...string) error {
	for _, cmd := range cmds {
		if err := checkArg(cmd); err != nil {
			return fmt.Errorf("rrdcached: BATCH: %w", err)
		}
	}
	lines, err := c.do(ctx, []string{"BATCH"}, cmds...)
	if err != nil {
		return err
	}
	if len(lines) <= 1 {
		return nil
	}
	return &Error{Cmd: "BATCH", Code: -len(lines) + 1, Msg: strings.Join(lines[1:], "; ")}
}

// parseTime reads the timestamp of a LAST or FIRST answer ("0 <seconds>").
func parseTime(cmd string, lines []string) (time.Time, error) {
	_, msg, _ := strings.Cut(lines[0], " ")
	sec, err := strconv.ParseInt(strings.TrimSpace(msg), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("rrdcached: %s: unexpected answer %q", cmd, lines[0])
	}
	return time.Unix(sec, 0), nil
}

// checkArg refuses what would break the line protocol or split an argument in two.
func checkArg(s string) error {
	if strings.ContainsAny(s, "\n\r") {
		return fmt.Errorf("%q contains a line break", s)
	}
	return nil
}

// do sends one command, and for BATCH its lines and the closing dot, and returns the
// status line followed by the lines the daemon announced. A broken connection is
// dialled again and the request repeated, once.
func (c *Client) do(ctx context.Context, args []string, batch ...string) ([]string, error) {
	for _, a := range args {
		if err := checkArg(a); err != nil {
			return nil, fmt.Errorf("rrdcached: %s: %w", args[0], err)
		}
		if a == "" || strings.ContainsAny(a, " \t") {
			return nil, fmt.Errorf("rrdcached: %s: argument %q is empty or contains white space", args[0], a)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil {
			if err = c.dial(ctx); err != nil {
				return nil, err
			}
		}
		var lines []string
		lines, err = c.roundTrip(ctx, args, batch)
		var daemonErr *Error
		if err == nil || errors.As(err, &daemonErr) {
			return lines, err
		}
		c.conn.Close()
		c.conn = nil
	}
	return nil, fmt.Errorf("rrdcached: %s: %w", args[0], err)
}

func (c *Client) roundTrip(ctx context.Context, args, batch []string) ([]string, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultTimeout)
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write([]byte(strings.Join(args, " ") + "\n")); err != nil {
		return nil, err
	}
	if batch != nil {
		if _, err := c.readAnswer(args[0]); err != nil {
			return nil, err
		}
		if _, err := c.conn.Write([]byte(strings.Join(batch, "\n") + "\n.\n")); err != nil {
			return nil, err
		}
	}
	return c.readAnswer(args[0])
}

// readAnswer reads a status line and the lines it announces.
func (c *Client) readAnswer(cmd string) ([]string, error) {
	status, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	status = strings.TrimRight(status, "\n")
	codeText, msg, _ := strings.Cut(status, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return nil, fmt.Errorf("unexpected answer %q", status)
	}
	if code < 0 {
		return nil, &Error{Cmd: cmd, Code: code, Msg: strings.TrimSpace(msg)}
	}
	lines := []string{status}
	for range code {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		lines = append(lines, strings.TrimRight(l, "\n"))
	}
	return lines, nil
}
