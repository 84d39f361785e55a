// Package influxtest runs a real InfluxDB 1.x server (Debian's influxd) for tests, so that
// the lines pingmachine sends to telegraf are checked by what stores them in the end.
//
// The server listens on loopback only, for HTTP (queries) and for line protocol over UDP,
// with nanosecond time stamps; its data, meta and WAL directories are in a temporary
// directory, and it reports nothing home. It runs in the test's network namespace or in
// one the test created, such as a pingtest.Namespace.
package influxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the InfluxDB 1.x server of Debian's influxdb package.
const binary = "influxd"

// database is the database the UDP listener writes into and Query reads.
const database = "pingmachine"

// Namespace is a network namespace to run the server in; *pingtest.Namespace is one.
type Namespace interface {
	// Command returns a command that runs name with args inside the namespace.
	Command(name string, args ...string) *exec.Cmd
	// Do runs fn on a thread inside the namespace; sockets it opens stay there.
	Do(fn func() error) error
}

// Server is a running influxd.
type Server struct {
	// UDP is the line-protocol listener's address, as HOST:PORT.
	UDP string

	ns     Namespace
	base   string // the HTTP API's URL
	client *http.Client
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{} // closed once cmd has been waited for
}

// startTimeout bounds how long influxd may take to listen on both ports.
const startTimeout = 30 * time.Second

// Start runs influxd in ns (nil: the test's own network namespace) until the test's
// cleanup stops it. The test fails if influxd is not installed or does not start.
func Start(tb testing.TB, ns Namespace) *Server {
	tb.Helper()
	s, err := start(binary, tb.TempDir(), ns, startTimeout)
	if err != nil {
		tb.Fatalf("%v (make test installs Debian's influxdb)", err)
	}
	tb.Cleanup(func() {
		s.stop()
		if tb.Failed() {
			tb.Logf("influxd log:\n%s", s.log)
		}
	})
	return s
}

// start runs program, influxd or a stand-in, with a configuration in dir and waits until
// it answers /ping and holds its UDP port, at most timeout.
func start(program, dir string, ns Namespace, timeout time.Duration) (*Server, error) {
	if ns == nil {
		ns = hostNamespace{}
	}
	// Free ports of the namespace the server runs in; nothing else should take them
	// in the moment until influxd does.
	var httpAddr, rpcAddr, udpAddr string
	err := ns.Do(func() error {
		var err error
		if httpAddr, err = freePort("tcp"); err != nil {
			return err
		}
		if rpcAddr, err = freePort("tcp"); err != nil {
			return err
		}
		udpAddr, err = freePort("udp")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("influxd: choosing ports: %w", err)
	}
	config := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(config, []byte(configText(dir, httpAddr, rpcAddr, udpAddr)), 0o600); err != nil {
		return nil, fmt.Errorf("influxd: %w", err)
	}

	s := &Server{
		UDP:    udpAddr,
		ns:     ns,
		base:   "http://" + httpAddr,
		client: namespaceClient(ns),
		log:    &logBuffer{},
		exited: make(chan struct{}),
	}
	s.cmd = ns.Command(program, "run", "-config", config)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("influxd: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(timeout)
	for !s.ready() {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("influxd exited at start (%v):\n%s", s.cmd.ProcessState, s.log.tail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("influxd did not listen on %s and %s within %v:\n%s",
				httpAddr, udpAddr, timeout, s.log.tail())
		}
	}
	// The UDP listener creates its database only with its first batch: before that a
	// query would fail with "database not found".
	if _, err := s.Query("CREATE DATABASE " + database); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// configText is influxd's configuration: everything in dir, every listener on loopback,
// the services a test does not use switched off.
func configText(dir, httpAddr, rpcAddr, udpAddr string) string {
	return fmt.Sprintf(`reporting-disabled = true
bind-address = %q

[meta]
  dir = %q

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false

[monitor]
  store-enabled = false

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = %q
  log-enabled = false
  pprof-enabled = false

[logging]
  suppress-logo = true

[[udp]]
  enabled = true
  bind-address = %q
  database = %q
  precision = "n"
  batch-timeout = "50ms"
`, rpcAddr, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"),
		httpAddr, udpAddr, database)
}

// ready tells whether influxd answers /ping and has bound its UDP port: influxd opens
// its UDP listener after the HTTP one.
func (s *Server) ready() bool {
	resp, err := s.client.Get(s.base + "/ping")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent && s.udpBound()
}

// udpBound tells whether influxd's network namespace has a socket bound to the UDP
// listener's port. It reads the socket table instead of trying to bind the port, which
// could take it from influxd for a moment.
func (s *Server) udpBound() bool {
	_, port, _ := net.SplitHostPort(s.UDP)
	n, _ := strconv.Atoi(port)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", s.cmd.Process.Pid))
	if err != nil {
		return false
	}
	// "  sl  local_address rem_address ...", then "   0: 0100007F:1F99 00000000:0000 ..."
	want := fmt.Sprintf(":%04X", n)
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], want) {
			return true
		}
	}
	return false
}

// stop kills influxd and waits for it. Its data is thrown away, so it need not shut
// down cleanly, and 1.6 sometimes does not: its UDP listener can hang in Close when
// points arrived just before.
func (s *Server) stop() {
	s.cmd.Process.Kill()
	<-s.exited
	// A kept-alive connection to the dead server would answer the next query with EOF
	// or a reset, or not, as the race with its close goes.
	s.client.CloseIdleConnections()
}

// Series is one series of a query's result. Numbers are json.Number, so that
// nanosecond time stamps keep every digit and integers are told from floats.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Query runs one InfluxQL statement against the UDP listener's database, with times in nanoseconds since
// the epoch, and returns its series. An error that InfluxDB reports is returned as one.
func (s *Server) Query(q string) ([]Series, error) {
	form := url.Values{"db": {database}, "epoch": {"ns"}, "q": {q}}
	resp, err := s.client.PostForm(s.base+"/query", form)
	if err != nil {
		return nil, fmt.Errorf("influxd query %q: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("influxd query %q: %w", q, err)
	}
	var doc struct {
		Error   string `json:"error"`
		Results []struct {
			Error  string   `json:"error"`
			Series []Series `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("influxd query %q: %s: reading %q: %w", q, resp.Status, body, err)
	}
	switch {
	case doc.Error != "":
		return nil, fmt.Errorf("influxd query %q: %s", q, doc.Error)
	case len(doc.Results) != 1:
		return nil, fmt.Errorf("influxd query %q: %d results, want one: %s", q, len(doc.Results), body)
	case doc.Results[0].Error != "":
		return nil, fmt.Errorf("influxd query %q: %s", q, doc.Results[0].Error)
	}
	return doc.Results[0].Series, nil
}

// Rows are a query's answer by series (SeriesKey), then time in nanoseconds, then
// field; null fields are left out.
type Rows map[string]map[int64]map[string]float64

// SeriesKey names a series of Rows: the measurement, a space, and its tags as JSON
// (sorted keys) less those with empty values, since GROUP BY * gives a point every tag
// key of its measurement, "" where the point had none.
func SeriesKey(measurement string, tags map[string]string) string {
	tags = maps.Clone(tags)
	maps.DeleteFunc(tags, func(_, v string) bool { return v == "" })
	b, _ := json.Marshal(tags)
	return measurement + " " + string(b)
}

// Rows runs q, whose fields must all be numbers, and returns its rows.
func (s *Server) Rows(q string) (Rows, error) {
	series, err := s.Query(q)
	if err != nil {
		return nil, err
	}
	rows := Rows{}
	for _, sr := range series {
		byTime := map[int64]map[string]float64{}
		rows[SeriesKey(sr.Name, sr.Tags)] = byTime
		for _, v := range sr.Values {
			ts, err := v[0].(json.Number).Int64()
			if err != nil {
				return nil, fmt.Errorf("influxd query %q: %s: time %v: %w", q, sr.Name, v[0], err)
			}
			fields := map[string]float64{}
			byTime[ts] = fields
			for i, c := range sr.Columns[1:] {
				if v[i+1] == nil {
					continue
				}
				n, ok := v[i+1].(json.Number)
				if !ok {
					return nil, fmt.Errorf("influxd query %q: %s: field %s = %v: not a number", q, sr.Name, c, v[i+1])
				}
				f, err := n.Float64()
				if err != nil {
					return nil, fmt.Errorf("influxd query %q: %s: field %s = %v: %w", q, sr.Name, c, n, err)
				}
				fields[c] = f
			}
		}
	}
	return rows, nil
}

// namespaceClient is an HTTP client whose connections are opened inside ns.
func namespaceClient(ns Namespace) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.Do(func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial}}
}

// freePort returns 127.0.0.1:<port> with a port the kernel just handed out on network.
func freePort(network string) (string, error) {
	var addr net.Addr
	if network == "udp" {
		c, err := net.ListenPacket(network, "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		addr = c.LocalAddr()
	} else {
		l, err := net.Listen(network, "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer l.Close()
		addr = l.Addr()
	}
	return addr.String(), nil
}

// hostNamespace is the process's own network namespace.
type hostNamespace struct{}

func (hostNamespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(name, args...)
}

func (hostNamespace) Do(fn func() error) error { return fn() }

// logBuffer collects influxd's output; the process writes to it while tests read it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// tail is the last lines of the log, for an error message.
func (l *logBuffer) tail() string {
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
