// Package rrdcached is a client for rrdcached's line protocol (rrdcached(1), "PROTOCOL"),
// for installations that let one daemon batch the disk writes of many RRD files.
//
// A Client holds one connection and is safe for concurrent use: requests are serialised,
// because the protocol has no request identifiers and answers come back in order. A
// connection found broken is dialled again, once, by the next request.
//
// Arguments are escaped the way rrdcached unescapes them (a backslash before a space or a
// backslash), and anything that could end a line or a BATCH early is refused before it is
// sent, so no caller-supplied file name or value can smuggle in a second command.
package rrdcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPort is the TCP port rrdcached listens on when an address names none.
const DefaultPort = "42217"

// DefaultTimeout bounds a request whose context has no deadline, so that a daemon that
// stops answering cannot hold the client's lock for ever.
const DefaultTimeout = time.Minute

// maxLine is the longest request line, line feed included, that rrdcached 1.7 reads: its
// per-connection buffer is 8 KiB, and a longer line makes it drop the connection without
// an answer. Refusing such a line here gives the caller an error that says why.
const maxLine = 8192

// batchable reports whether rrdcached executes keyword inside a BATCH. It answers others
// with "Can't use ... here", except QUIT, which silently ends the session mid-batch; so
// only these are let through.
func batchable(keyword string) bool {
	switch keyword {
	case "UPDATE", "CREATE", "FLUSH", "FORGET":
		return true
	}
	return false
}

// Error is an error answer of the daemon (a negative status code). The connection is still
// usable after one.
type Error struct {
	Cmd  string // command keyword, e.g. "UPDATE"
	File string // the file the command named, if any
	Code int    // the (negative) status code
	Msg  string // the daemon's message
}

func (e *Error) Error() string {
	if e.File != "" {
		return fmt.Sprintf("rrdcached: %s %s: %s", e.Cmd, e.File, e.Msg)
	}
	return fmt.Sprintf("rrdcached: %s: %s", e.Cmd, e.Msg)
}

// BatchError reports the commands of a BATCH that the daemon refused; the others were
// executed.
type BatchError struct {
	Total  int            // commands sent
	Failed []BatchFailure // in the daemon's order
}

// BatchFailure is one refused command of a BATCH.
type BatchFailure struct {
	Index int    // 1-based position of the command among those passed to Batch
	Cmd   string // the command as sent
	Msg   string // the daemon's message
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rrdcached: BATCH: %d of %d commands failed", len(e.Failed), e.Total)
	for i, f := range e.Failed {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s#%d (%s): %s", sep, f.Index, summary(f.Cmd), f.Msg)
	}
	return b.String()
}

// summary shortens a command to its keyword and file, since an UPDATE line can be long.
func summary(cmd string) string {
	fields := strings.SplitN(cmd, " ", 3)
	if len(fields) > 2 {
		fields = fields[:2]
	}
	return strings.Join(fields, " ")
}

// Client talks to one rrdcached.
type Client struct {
	network, address string

	mu     sync.Mutex
	conn   net.Conn // nil when broken; the next request dials
	r      *bufio.Reader
	closed bool
}

// Dial connects to rrdcached at addr: "unix:/path" or "/path" for a unix socket, otherwise
// "host[:port]" over TCP, IPv6 literals in brackets ("[::1]:42217"); the port defaults to
// DefaultPort.
func Dial(ctx context.Context, addr string) (*Client, error) {
	network, address, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{network: network, address: address}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func parseAddr(addr string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"):
		network, address = "unix", addr
	case addr == "":
	default:
		network, address = "tcp", addr
		if _, _, err := net.SplitHostPort(addr); err != nil {
			// No port (or a bare IPv6 literal, which SplitHostPort cannot tell from one).
			address = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), DefaultPort)
		}
	}
	if address == "" {
		return "", "", fmt.Errorf("rrdcached: empty address %q", addr)
	}
	return network, address, nil
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

// drop closes a connection that can no longer be trusted to be in step with the daemon.
func (c *Client) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// Close says QUIT and closes the connection. Requests after Close fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.conn == nil {
		return nil
	}
	// QUIT is a courtesy (the daemon logs a clean disconnect); do not wait long for it.
	_ = c.conn.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.conn.Write([]byte("QUIT\n"))
	err := c.conn.Close()
	c.conn, c.r = nil, nil
	return err
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	_, _, err := c.do(ctx, request{cmd: "PING", idempotent: true})
	return err
}

// Create creates file through the daemon with the given step (whole seconds; 0 for
// rrdtool's default) and start (zero for the daemon's default). With noOverwrite an
// existing file is an error instead of being replaced. defs are "DS:..." and "RRA:..."
// definitions as rrdtool create takes them; anything else is refused, so that a
// definition cannot pass an option such as -r (read another file).
func (c *Client) Create(ctx context.Context, file string, step time.Duration, start time.Time, noOverwrite bool, defs ...string) error {
	args := []string{file}
	if step != 0 {
		if step < time.Second || step%time.Second != 0 {
			return fmt.Errorf("rrdcached: CREATE %s: step %v is not a whole number of seconds", file, step)
		}
		args = append(args, "-s", strconv.FormatInt(int64(step/time.Second), 10))
	}
	if !start.IsZero() {
		args = append(args, "-b", strconv.FormatInt(start.Unix(), 10))
	}
	if noOverwrite {
		args = append(args, "-O")
	}
	for _, d := range defs {
		if !strings.HasPrefix(d, "DS:") && !strings.HasPrefix(d, "RRA:") {
			return fmt.Errorf("rrdcached: CREATE %s: definition %q is neither DS: nor RRA:", file, d)
		}
	}
	_, _, err := c.do(ctx, request{cmd: "CREATE", file: file, args: append(args, defs...)})
	return err
}

// Update queues readings for file, each "time:v1:v2..." with an absolute time (the daemon
// does not take "N:"). The daemon refuses a time not after the file's last one.
func (c *Client) Update(ctx context.Context, file string, values ...string) error {
	if len(values) == 0 {
		return fmt.Errorf("rrdcached: UPDATE %s: no values", file)
	}
	_, _, err := c.do(ctx, request{cmd: "UPDATE", file: file, args: append([]string{file}, values...)})
	return err
}

// Batch sends cmds in one BATCH, for high update rates: one round trip for all of them.
// Each command is a protocol line such as "UPDATE " + Quote(file) + " " + value; only
// UPDATE, CREATE, FLUSH and FORGET are accepted, the others being refused by the daemon
// inside a BATCH. If the daemon refuses some commands the error is a *BatchError naming
// each by its 1-based position; the rest were executed.
func (c *Client) Batch(ctx context.Context, cmds ...string) error {
	if len(cmds) == 0 {
		return nil
	}
	for i, cmd := range cmds {
		if err := checkLine(cmd); err != nil {
			return fmt.Errorf("rrdcached: BATCH: command #%d: %w", i+1, err)
		}
		keyword, _, _ := strings.Cut(cmd, " ")
		if !batchable(keyword) {
			return fmt.Errorf("rrdcached: BATCH: command #%d: %q cannot be batched", i+1, keyword)
		}
	}
	_, lines, err := c.do(ctx, request{cmd: "BATCH", batch: cmds})
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return nil
	}
	berr := &BatchError{Total: len(cmds)}
	for _, l := range lines {
		n, msg, _ := strings.Cut(l, " ")
		idx, err := strconv.Atoi(n)
		if err != nil || idx < 1 || idx > len(cmds) {
			return fmt.Errorf("rrdcached: BATCH: unexpected error line %q", l)
		}
		berr.Failed = append(berr.Failed, BatchFailure{Index: idx, Cmd: cmds[idx-1], Msg: msg})
	}
	return berr
}

// Flush writes file's queued readings to disk; it returns once they are written.
func (c *Client) Flush(ctx context.Context, file string) error {
	_, _, err := c.do(ctx, request{cmd: "FLUSH", file: file, args: []string{file}, idempotent: true})
	return err
}

// FlushAll starts writing every queued reading; it does not wait for the writes.
func (c *Client) FlushAll(ctx context.Context) error {
	_, _, err := c.do(ctx, request{cmd: "FLUSHALL", idempotent: true})
	return err
}

// Last returns the time of file's last update, queued readings included.
func (c *Client) Last(ctx context.Context, file string) (time.Time, error) {
	status, _, err := c.do(ctx, request{cmd: "LAST", file: file, args: []string{file}, idempotent: true})
	if err != nil {
		return time.Time{}, err
	}
	return parseTime("LAST", file, status)
}

// First returns the time of the oldest row of RRA number rra (from 0) of file.
func (c *Client) First(ctx context.Context, file string, rra int) (time.Time, error) {
	// The index is always sent: rrdcached 1.7 refuses FIRST without it, although its
	// manual says it defaults to 0.
	status, _, err := c.do(ctx, request{cmd: "FIRST", file: file, args: []string{file, strconv.Itoa(rra)}, idempotent: true})
	if err != nil {
		return time.Time{}, err
	}
	return parseTime("FIRST", file, status)
}

// Info returns file's header as rrdtool info prints it ("step" -> "60",
// "ds[loss].type" -> "GAUGE", ...). Queued readings are not flushed first.
func (c *Client) Info(ctx context.Context, file string) (map[string]string, error) {
	_, lines, err := c.do(ctx, request{cmd: "INFO", file: file, args: []string{file}, idempotent: true})
	if err != nil {
		return nil, err
	}
	info := make(map[string]string, len(lines))
	for _, l := range lines {
		// "key type value"; the value may contain spaces (a file name).
		key, rest, ok1 := strings.Cut(l, " ")
		_, value, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("rrdcached: INFO %s: unexpected line %q", file, l)
		}
		info[key] = value
	}
	return info, nil
}

// Stats returns the daemon's counters (QueueLength, UpdatesReceived, ...).
func (c *Client) Stats(ctx context.Context) (map[string]int64, error) {
	_, lines, err := c.do(ctx, request{cmd: "STATS", idempotent: true})
	if err != nil {
		return nil, err
	}
	stats := make(map[string]int64, len(lines))
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("rrdcached: STATS: unexpected line %q", l)
		}
		stats[name] = n
	}
	return stats, nil
}

// Quote escapes one argument (a file name, a value) for a command line given to Batch,
// as the client functions do for their own arguments: rrdcached reads "\ " as a space
// inside an argument and "\\" as a backslash.
func Quote(arg string) string {
	if !strings.ContainsAny(arg, ` \`) {
		return arg
	}
	return strings.NewReplacer(`\`, `\\`, ` `, `\ `).Replace(arg)
}

// parseTime reads the timestamp that LAST and FIRST put in their status line ("0 <secs>").
func parseTime(cmd, file, status string) (time.Time, error) {
	_, msg, _ := strings.Cut(status, " ")
	sec, err := strconv.ParseInt(strings.TrimSpace(msg), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("rrdcached: %s %s: unexpected answer %q", cmd, file, status)
	}
	return time.Unix(sec, 0), nil
}

// checkLine refuses what would end a request line early or make the daemon drop the
// connection: line breaks (the daemon also ends a line at CR), NUL, and overlong lines.
// A lone "." would end a BATCH early.
func checkLine(s string) error {
	switch {
	case s == "" || s == ".":
		return fmt.Errorf("%q is not a command", s)
	case strings.ContainsAny(s, "\n\r\x00"):
		return fmt.Errorf("%q contains a line break or NUL", s)
	case len(s)+1 > maxLine:
		return fmt.Errorf("line of %d bytes is longer than rrdcached's limit of %d", len(s)+1, maxLine)
	}
	return nil
}

// request is one command: the keyword, its arguments (escaped when sent) and, for BATCH,
// the command lines that follow the daemon's go-ahead.
type request struct {
	cmd   string
	file  string // for error messages
	args  []string
	batch []string
	// idempotent requests may be sent again when a reused connection turns out to have
	// died under them; UPDATE, CREATE and BATCH are not, since the daemon may have
	// executed them before dying.
	idempotent bool
}

func (r request) name() string {
	if r.file != "" {
		return r.cmd + " " + r.file
	}
	return r.cmd
}

func (r request) line() (string, error) {
	var b strings.Builder
	b.WriteString(r.cmd)
	for _, a := range r.args {
		if a == "" {
			return "", errors.New("empty argument")
		}
		if strings.ContainsAny(a, "\n\r\x00") {
			return "", fmt.Errorf("argument %q contains a line break or NUL", a)
		}
		b.WriteByte(' ')
		b.WriteString(Quote(a))
	}
	if err := checkLine(b.String()); err != nil {
		return "", err
	}
	return b.String() + "\n", nil
}

// do sends req and returns the status line and the lines the daemon announced after it.
func (c *Client) do(ctx context.Context, req request) (string, []string, error) {
	line, err := req.line()
	if err != nil {
		return "", nil, fmt.Errorf("rrdcached: %s: %w", req.name(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", nil, fmt.Errorf("rrdcached: %s: %w", req.name(), net.ErrClosed)
	}
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if reused && !alive(c.conn) {
			// The daemon went away (restarted, say) since the last request: dial again
			// rather than fail a request that was never sent.
			c.drop()
			reused = false
		}
		if c.conn == nil {
			if err := c.dial(ctx); err != nil {
				return "", nil, fmt.Errorf("rrdcached: %s: %w", req.name(), err)
			}
		}
		status, lines, err := c.roundTrip(ctx, line, req.batch)
		if err == nil {
			return status, lines, nil
		}
		if daemonErr, ok := err.(*Error); ok {
			daemonErr.Cmd, daemonErr.File = req.cmd, req.file
			return "", nil, daemonErr
		}
		// Half a request or half an answer leaves the connection out of step.
		c.drop()
		ctxErr := ctx.Err()
		if dl, ok := ctx.Deadline(); ok && ctxErr == nil && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
			// The socket's deadline is the context's, but its timer can fire before the
			// context's own does.
			ctxErr = context.DeadlineExceeded
		}
		if ctxErr != nil {
			return "", nil, fmt.Errorf("rrdcached: %s: %w: %w", req.name(), ctxErr, err)
		}
		if attempt == 0 && reused && req.idempotent && !errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return "", nil, fmt.Errorf("rrdcached: %s: %w", req.name(), err)
	}
}

// alive reports whether conn can still carry a request: not closed by the daemon and
// holding no unread bytes (which would mean the answers are out of step). It peeks
// without blocking, as a read with an expired deadline would not reach the socket.
func alive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		return false
	}
	// Nothing to read is the healthy case; 0 bytes without error is end of stream.
	return n <= 0 && (rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK)
}

func (c *Client) roundTrip(ctx context.Context, line string, batch []string) (string, []string, error) {
	conn := c.conn
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return "", nil, err
	}
	// Cancellation without a deadline must also interrupt a blocked read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write([]byte(line)); err != nil {
		return "", nil, err
	}
	if batch != nil {
		// Wait for the go-ahead before sending the commands: were BATCH refused, they
		// would run one by one, each with an answer we would not be reading.
		if _, _, err := c.readAnswer(); err != nil {
			return "", nil, err
		}
		var b strings.Builder
		for _, cmd := range batch {
			b.WriteString(cmd)
			b.WriteByte('\n')
		}
		b.WriteString(".\n")
		if _, err := conn.Write([]byte(b.String())); err != nil {
			return "", nil, err
		}
	}
	return c.readAnswer()
}

// readAnswer reads a status line and the lines it announces. A negative status is
// returned as *Error, with Cmd and File left for the caller to fill in.
func (c *Client) readAnswer() (string, []string, error) {
	status, err := c.readLine()
	if err != nil {
		return "", nil, err
	}
	codeText, msg, _ := strings.Cut(status, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return "", nil, fmt.Errorf("unexpected answer %q", status)
	}
	msg = strings.TrimSpace(msg)
	if code < 0 {
		return "", nil, &Error{Code: code, Msg: msg}
	}
	lines := make([]string, 0, min(code, 1024))
	for range code {
		l, err := c.readLine()
		if err != nil {
			return "", nil, err
		}
		lines = append(lines, l)
	}
	return status, lines, nil
}

func (c *Client) readLine() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("daemon closed the connection: %w", err)
		}
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}
