package influxtest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServer writes a line over UDP and reads it back over HTTP, and checks that every
// listener of the server is on loopback.
func TestServer(t *testing.T) {
	s := Start(t, nil)
	conn, err := net.Dial("udp", s.UDP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("m,k=v f=1.5,i=2i 1700000000123456789\n")); err != nil {
		t.Fatal(err)
	}
	var series []Series
	deadline := time.Now().Add(10 * time.Second)
	for len(series) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if series, err = s.Query("SELECT * FROM m GROUP BY *"); err != nil {
			t.Fatal(err)
		}
	}
	if len(series) != 1 {
		t.Fatalf("series %+v, want one", series)
	}
	got := series[0]
	want := Series{Name: "m", Tags: map[string]string{"k": "v"}, Columns: []string{"time", "f", "i"},
		Values: [][]any{{json.Number("1700000000123456789"), json.Number("1.5"), json.Number("2")}}}
	if gotJSON, wantJSON := mustJSON(t, got), mustJSON(t, want); gotJSON != wantJSON {
		t.Errorf("series %s, want %s", gotJSON, wantJSON)
	}

	// Rows: numbers by series, time and field. A point without the tag k is in GROUP BY
	// *'s series k="", which SeriesKey names without it; a text field is an error.
	if _, err := conn.Write([]byte("m f=3 1700000000000000001\ntext s=\"x\" 1700000000000000002\n")); err != nil {
		t.Fatal(err)
	}
	var rows Rows
	for deadline := time.Now().Add(10 * time.Second); len(rows) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if rows, err = s.Rows("SELECT * FROM m GROUP BY *"); err != nil {
			t.Fatal(err)
		}
	}
	wantRows := Rows{
		`m {"k":"v"}`: {1700000000123456789: {"f": 1.5, "i": 2}},
		`m {}`:        {1700000000000000001: {"f": 3}},
	}
	if a, b := mustJSON(t, rows), mustJSON(t, wantRows); a != b {
		t.Errorf("rows %s, want %s", a, b)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := s.Rows("SELECT * FROM text")
		if err != nil {
			if want := `influxd query "SELECT * FROM text": text: field s = x: not a number`; !strings.Contains(err.Error(), want) {
				t.Errorf("rows of a text field: %v, want an error saying %q", err, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rows of a text field: no error")
		}
	}

	// Every address influxd listens on, TCP and UDP, is on loopback.
	pid := s.cmd.Process.Pid
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", table))
		if err != nil {
			t.Fatal(err)
		}
		for _, sock := range socketsOf(t, pid, string(data)) {
			if !strings.HasPrefix(sock, "0100007F:") {
				t.Errorf("influxd has a %s socket on %s, want 127.0.0.1 only", table, sock)
			}
		}
	}
}

func TestQueryErrors(t *testing.T) {
	s := Start(t, nil)
	for _, tt := range []struct{ query, want string }{
		{"SELEKT * FROM m", "error parsing query"},
		{"SELECT * FROM m; SELECT * FROM n", "2 results, want one"},
		{"SELECT nosuchfunc(f) FROM m", "undefined function nosuchfunc()"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			_, err := s.Query(tt.query)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
	// A query of nothing is no error.
	if series, err := s.Query("SELECT * FROM nothing"); err != nil || len(series) != 0 {
		t.Errorf("query of a missing measurement: %v, %v; want no series and no error", series, err)
	}
	// A server that has gone away.
	s.stop()
	if _, err := s.Query("SHOW DATABASES"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("query after stop: %v, want connection refused", err)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	// A program that never listens: start gives up at the timeout and stops it.
	silent := filepath.Join(dir, "silent")
	if err := os.WriteFile(silent, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, binary, want string
	}{
		{"not installed", filepath.Join(dir, "no-such-influxd"), "no such file"},
		{"exits at once", "false", "influxd exited at start (exit status 1)"},
		{"never listens", silent, "influxd did not listen on 127.0.0.1:"},
		{"no directory", "influxd", "influxdb.conf: no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			dir := t.TempDir()
			if tt.name == "no directory" {
				dir = filepath.Join(dir, "missing")
			}
			s, err := start(tt.binary, dir, nil, 500*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
			if s != nil {
				t.Errorf("server %+v, want none", s)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("start took %v", d)
			}
		})
	}
}

// TestQueryAnswers runs Query against a stand-in server for the answers a real influxd
// gives only in rare cases.
func TestQueryAnswers(t *testing.T) {
	for _, tt := range []struct {
		name, status, body, want string
	}{
		{"not JSON", "502 Bad Gateway", "<html>proxy error</html>", `502 Bad Gateway: reading "<html>proxy error</html>": invalid character`},
		{"error of the request", "400 Bad Request", `{"error":"missing parameter: q"}`, "missing parameter: q"},
		{"no result", "200 OK", `{"results":[]}`, "0 results, want one"},
		{"error of the statement", "200 OK", `{"results":[{"statement_id":0,"error":"database not found: x"}]}`, "database not found: x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _ := strconv.Atoi(tt.status[:3])
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.FormValue("db") != database || r.FormValue("epoch") != "ns" || r.FormValue("q") != "SHOW DATABASES" {
					t.Errorf("request %s %v", r.Method, r.Form)
				}
				w.WriteHeader(code)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			s := &Server{base: srv.URL, client: srv.Client()}
			series, err := s.Query("SHOW DATABASES")
			if err == nil || !strings.Contains(err.Error(), tt.want) || series != nil {
				t.Errorf("Query: %v, %v; want an error saying %q", series, err, tt.want)
			}
		})
	}
}

// socketsOf returns the local addresses ("0100007F:1F90") of the listening TCP sockets
// (state 0A) and all UDP sockets in a /proc/<pid>/net table that belong to pid.
func socketsOf(t *testing.T, pid int, table string) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "fd", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil {
			if inode, ok := strings.CutPrefix(link, "socket:["); ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	var socks []string
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[0] == "sl" || !inodes[f[9]] {
			continue
		}
		socks = append(socks, f[1])
	}
	return socks
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
