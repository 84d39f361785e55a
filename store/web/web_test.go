package web_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pingmachine/store/graph/graphtest"
	"pingmachine/store/view"
	"pingmachine/store/view/viewtest"
	"pingmachine/store/web"
)

// Hostile names: an order id and a host that are HTML.
const (
	hostileID   = `x"><img src=q onerror=alert(1)>`
	hostileHost = `<b>evil</b>`
	hostileURL  = `http://127.0.0.1/<b>evil</b>?a="q"`
)

// tree is the sample base directory of the status tests, plus an order with a day of
// rounds in its main.rrd (graphs/gw), one with a main.rrd that is not an RRD (graphs/junk),
// hostile names, and an archived order with its files (gone).
func tree(t *testing.T) *viewtest.Tree {
	t.Helper()
	tr := viewtest.New(t)
	now := time.Now()
	tr.Sample(now)
	tr.Order("graphs/gw", "user: netops\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 127.0.0.1\n")
	graphtest.Write(t, tr.Base, "graphs/gw", 5*time.Minute, 20, now.Add(-24*time.Hour), now, time.UTC, 1)
	tr.Order("graphs/junk", "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 127.0.0.1\n")
	tr.File("output/graphs/junk/main.rrd", "not an RRD")
	tr.Order(hostileID, "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: '"+hostileHost+"'\n")
	tr.Order("http/hostile", "user: web\nstep: 60\npings: 5\nprobe: httping\nhttping:\n  url: '"+hostileURL+"'\n")
	tr.File("archive/gone/last_result", "time: 1\n")
	tr.File("archive/gone/main.rrd", "x")
	return tr
}

// fixed serves one view of base, read once, so that a response can be compared with
// the view.
func fixed(t *testing.T, base string) (web.Config, *view.View) {
	t.Helper()
	v, err := view.Read(base)
	if err != nil {
		t.Fatal(err)
	}
	return web.Config{Status: func() (*view.View, error) { return v, nil }, Base: base}, v
}

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

func TestRoutes(t *testing.T) {
	tr := tree(t)
	tr.Order("lab/norrd", "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 127.0.0.1\nrrd_template: norrd\n")
	cfg, v := fixed(t, tr.Base)
	cfg.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metric 1\n") })
	h := web.Handler(cfg)
	doc, err := v.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, target string
		code           int
		ctype          string
		has, hasNot    []string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8",
			[]string{`href="/order/site/zurich/gw"`, ">site/zurich/gw<", ">web1<", ">bad/pings<", ">scion/pping1<", "stale", "invalid",
				"line 3: pings: ", "l00b8ff", "daemon not running", "13 orders"}, nil},
		{"GET", "/api/status", 200, "application/json", []string{string(doc) + "\n"}, nil},
		{"GET", "/-/healthy", 200, "text/plain; charset=utf-8", []string{"OK"}, nil},
		{"GET", "/-/ready", 200, "text/plain; charset=utf-8", []string{"OK"}, nil},
		{"GET", "/metrics", 200, "", []string{"metric 1"}, nil},
		{"GET", "/order/graphs/gw", 200, "text/html; charset=utf-8",
			[]string{`<img src="/graph/graphs/gw.svg?period=day"`, `/graph/graphs/gw.svg?period=week"`, `/graph/graphs/gw.svg?period=month"`,
				`/graph/graphs/gw.svg?period=year"`, `href="/graph/graphs/gw.png?period=day"`, "20 pings every 300 s"}, nil},
		{"GET", "/order/new", 200, "text/html; charset=utf-8", []string{"No graphs: no main.rrd yet: the first round writes it."}, []string{"<img", "norrd"}},
		{"GET", "/order/lab/norrd", 200, "text/html; charset=utf-8", []string{"No graphs: the order&#39;s rrd_template is norrd, which keeps no main.rrd"}, []string{"<img", "yet"}},
		{"GET", "/order/bad/pings", 200, "text/html; charset=utf-8", []string{"line 3: pings: "}, nil},
		{"GET", "/graph/graphs/gw.svg", 200, "image/svg+xml", []string{"<svg", "graphs/gw — fping: 127.0.0.1"}, nil},
		{"GET", "/graph/graphs/gw.svg?period=week&width=300&height=100", 200, "image/svg+xml", []string{"<svg"}, nil},
		{"GET", "/graph/graphs/gw.svg?period=36h", 200, "image/svg+xml", []string{"<svg"}, nil},
		{"GET", "/graph/graphs/gw.png?period=year", 200, "image/png", []string{"\x89PNG"}, nil},
		{"GET", "/graph/graphs/gw.svg?period=fortnight", 400, "text/plain; charset=utf-8", []string{`period "fortnight": want day, week`}, nil},
		{"GET", "/graph/graphs/gw.png?width=99999", 400, "text/plain; charset=utf-8", []string{`width "99999": want 100..2000`}, nil},
		{"GET", "/graph/graphs/gw.png?height=x", 400, "text/plain; charset=utf-8", []string{`height "x"`}, nil},
		{"GET", "/graph/graphs/gw.gif", 404, "text/plain; charset=utf-8", nil, nil},
		{"GET", "/graph/new.svg", 404, "text/plain; charset=utf-8", []string{"no main.rrd"}, nil},
		{"GET", "/graph/graphs/junk.svg", 500, "text/plain; charset=utf-8", []string{"main.rrd"}, nil},
		{"GET", "/nowhere", 404, "text/plain; charset=utf-8", nil, nil},
		{"POST", "/", 405, "text/plain; charset=utf-8", []string{"read-only"}, nil},
		{"DELETE", "/order/web1", 405, "text/plain; charset=utf-8", nil, nil},
		{"GET", "/?state=bogus", 400, "text/plain; charset=utf-8", []string{`state "bogus"`}, nil},
		{"GET", "/?per=5000", 400, "text/plain; charset=utf-8", []string{`per "5000": want a whole number from 1 to 1000`}, nil},
		{"GET", "/?page=0", 400, "text/plain; charset=utf-8", []string{`page "0"`}, nil},
		{"GET", "/?x=" + strings.Repeat("a", 3000), 414, "text/plain; charset=utf-8", nil, nil},
	} {
		t.Run(c.method+" "+c.target[:min(len(c.target), 60)], func(t *testing.T) {
			w := get(t, h, c.method, c.target)
			body := w.Body.String()
			if w.Code != c.code {
				t.Fatalf("status %d, want %d: %.300s", w.Code, c.code, body)
			}
			if ct := w.Header().Get("Content-Type"); c.ctype != "" && ct != c.ctype {
				t.Errorf("Content-Type %q, want %q", ct, c.ctype)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Content-Security-Policy") == "" {
				t.Errorf("headers %v: want nosniff and a Content-Security-Policy", w.Header())
			}
			for _, s := range c.has {
				if !strings.Contains(body, s) {
					t.Errorf("body does not contain %q:\n%.2000s", s, body)
				}
			}
			for _, s := range c.hasNot {
				if strings.Contains(body, s) {
					t.Errorf("body contains %q", s)
				}
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	tr := tree(t)
	cfg, _ := fixed(t, tr.Base)
	h := web.Handler(cfg)
	for _, c := range []struct {
		target, header string
		want           *regexp.Regexp
	}{
		{"/", "Content-Security-Policy", regexp.MustCompile(`^default-src 'none'; img-src 'self'; style-src 'sha256-[A-Za-z0-9+/=]{44}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$`)},
		{"/", "Cache-Control", regexp.MustCompile(`^no-cache$`)},
		{"/api/status", "Cache-Control", regexp.MustCompile(`^no-cache$`)},
		{"/-/ready", "Cache-Control", regexp.MustCompile(`^no-store$`)},
		{"/graph/graphs/gw.svg", "Cache-Control", regexp.MustCompile(`^public, max-age=144$`)}, // a day over 600 columns
		{"/graph/graphs/gw.png?period=year", "Cache-Control", regexp.MustCompile(`^public, max-age=3600$`)},
		{"/graph/graphs/gw.png?period=3600", "Cache-Control", regexp.MustCompile(`^public, max-age=60$`)},
		{"/graph/graphs/gw.svg", "Content-Security-Policy", regexp.MustCompile(`^default-src 'none'; style-src 'unsafe-inline'`)},
		{"/", "X-Frame-Options", regexp.MustCompile(`^DENY$`)},
		{"/", "Referrer-Policy", regexp.MustCompile(`^no-referrer$`)},
		{"/order/web1", "X-Content-Type-Options", regexp.MustCompile(`^nosniff$`)},
	} {
		w := get(t, h, "GET", c.target)
		if got := w.Header().Get(c.header); !c.want.MatchString(got) {
			t.Errorf("%s: %s %q, want %v", c.target, c.header, got, c.want)
		}
	}
	// The style sheet's hash in the policy is that of the page's style element, or the
	// browser would not apply it (the Chromium test sees it applied).
	w := get(t, h, "GET", "/")
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("the page has no style element:\n%.500s", w.Body.String())
	}
	sum := sha256.Sum256([]byte(m[1]))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(w.Header().Get("Content-Security-Policy"), want) {
		t.Errorf("Content-Security-Policy %q does not allow the page's style element (%s)", w.Header().Get("Content-Security-Policy"), want)
	}
}

// TestGraphPNG checks that a PNG graph decodes and has the plot area's size at least.
func TestGraphPNG(t *testing.T) {
	tr := tree(t)
	cfg, _ := fixed(t, tr.Base)
	w := get(t, web.Handler(cfg), "GET", "/graph/graphs/gw.png?width=400&height=120")
	img, err := png.Decode(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 120 {
		t.Errorf("PNG of %v, want at least 400x120", b)
	}
}

// TestHostileRequests asks for ids that are not known orders in every way a path can
// name one: each is not found, and none reaches a file.
func TestHostileRequests(t *testing.T) {
	tr := tree(t)
	// A file outside the tree that a path traversal would reach.
	outside := filepath.Join(filepath.Dir(tr.Base), "output", "secret", "main.rrd")
	os.MkdirAll(filepath.Dir(outside), 0o755)
	os.WriteFile(outside, []byte("secret"), 0o644)
	cfg, _ := fixed(t, tr.Base)
	h := web.Handler(cfg)
	for _, target := range []string{
		"/order/nonesuch", "/order/gone", "/graph/gone.svg", "/graph/gone.png",
		"/order/../../etc/passwd", "/order/site/../web1", "/order/%2e%2e/%2e%2e/etc/passwd", "/order/site/%2E%2E/web1",
		"/graph/%2e%2e/secret.svg", "/graph/..%2fsecret.svg", "/order/site%2fzurich%2fgw", "/order/site%2Fzurich/gw",
		"/graph/site%2fzurich%2fgw.svg", "/order/web1%00", "/order/web1%00.svg", "/order/site/zurich/gw/", "/order/",
		"/order//web1", "/order/./web1", "/graph/.svg", "/graph/", "/order/site", "/order/site/zurich", "/graph/site.svg",
	} {
		w := get(t, h, "GET", target)
		if w.Code != http.StatusNotFound && w.Code != http.StatusRequestURITooLong {
			t.Errorf("%s: status %d, want 404: %.200s", target, w.Code, w.Body.String())
		}
	}
	// The hostile names reach the page as text and the links as escaped paths.
	body := get(t, h, "GET", "/").Body.String()
	for _, bad := range []string{"<img src=q", "<b>evil"} {
		if strings.Contains(body, bad) {
			t.Errorf("the status page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{`href="/order/x%22%3E%3Cimg%20src=q%20onerror=alert%281%29%3E"`, "x&#34;&gt;&lt;img src=q onerror=alert(1)&gt;", "&lt;b&gt;evil&lt;/b&gt;", `http://127.0.0.1/&lt;b&gt;evil&lt;/b&gt;?a=&#34;q&#34;`} {
		if !strings.Contains(body, want) {
			t.Errorf("the status page does not contain %q", want)
		}
	}
	w := get(t, h, "GET", "/order/x%22%3E%3Cimg%20src=q%20onerror=alert%281%29%3E")
	if w.Code != 200 || strings.Contains(w.Body.String(), "<img src=q") || strings.Contains(w.Body.String(), hostileHost) {
		t.Errorf("the hostile order's page: %d, want 200 with the names escaped:\n%.3000s", w.Code, w.Body.String())
	}
}

// rowIDs are the order ids of a status page's rows, in order.
func rowIDs(body string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<td class="id"><a href="[^"]*">([^<]*)</a>`).FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestPaging(t *testing.T) {
	tr := tree(t)
	cfg, v := fixed(t, tr.Base)
	h := web.Handler(cfg)
	var all []string
	for _, o := range v.Orders {
		all = append(all, o.ID)
	}
	escaped := func(ids []string) []string {
		for i, id := range ids {
			if id == hostileID {
				ids[i] = "x&#34;&gt;&lt;img src=q onerror=alert(1)&gt;"
			}
		}
		return ids
	}
	for _, c := range []struct {
		query string
		ids   []string
		has   []string
	}{
		{"", escaped(append([]string(nil), all...)), []string{"1–12 of 12 · page 1 of 1"}},
		{"?per=5", all[:5], []string{`href="/?page=2&amp;per=5" rel="next"`, "1–5 of 12 · page 1 of 3"}},
		{"?per=5&page=3", escaped(append([]string(nil), all[10:]...)), []string{`href="/?page=2&amp;per=5" rel="prev"`, "11–12 of 12 · page 3 of 3"}},
		{"?per=5&page=9", nil, []string{"No order matches."}},
		{"?prefix=scion/", []string{"scion/pping1", "scion/sping1"}, []string{"12 orders, 2 shown", `href="/?prefix=scion%2F&amp;state=stale"`}},
		{"?prefix=scion/&state=stale", []string{"scion/pping1"}, []string{`<option value="stale" selected>`}},
		{"?state=invalid", escaped([]string{"bad/pings", hostileID}), nil},
		{"?state=unreadable", []string{"odd"}, nil},
		{"?state=no_result", []string{"graphs/junk", "http/hostile", "new"}, nil},
		{"?prefix=nothing", nil, []string{"No order matches."}},
	} {
		body := get(t, h, "GET", "/"+c.query).Body.String()
		if got := rowIDs(body); strings.Join(got, "\n") != strings.Join(c.ids, "\n") {
			t.Errorf("%s: rows %q, want %q", c.query, got, c.ids)
		}
		for _, s := range c.has {
			if !strings.Contains(body, s) {
				t.Errorf("%s: no %q in\n%s", c.query, s, body[strings.Index(body, "<main>"):])
			}
		}
	}
}

func TestEmptyBase(t *testing.T) {
	tr := viewtest.New(t)
	cfg, _ := fixed(t, tr.Base)
	body := get(t, web.Handler(cfg), "GET", "/").Body.String()
	if !strings.Contains(body, "No orders in "+tr.Base+"/orders yet.") {
		t.Errorf("an empty base directory:\n%s", body)
	}
}

func TestStatusFails(t *testing.T) {
	cfg := web.Config{Status: func() (*view.View, error) { return nil, errors.New("reading the base directory: gone") }}
	h := web.Handler(cfg)
	for _, target := range []string{"/", "/api/status", "/order/web1", "/graph/web1.svg"} {
		w := get(t, h, "GET", target)
		if w.Code != 500 || !strings.Contains(w.Body.String(), "reading the base directory: gone") {
			t.Errorf("%s: %d %q, want 500 and the reason", target, w.Code, w.Body.String())
		}
	}
	// Health does not read the base directory; readiness is the daemon's.
	cfg.Ready = func() bool { return false }
	h = web.Handler(cfg)
	if w := get(t, h, "GET", "/-/healthy"); w.Code != 200 {
		t.Errorf("/-/healthy: %d", w.Code)
	}
	if w := get(t, h, "GET", "/-/ready"); w.Code != 503 {
		t.Errorf("/-/ready when not ready: %d, want 503", w.Code)
	}
	if w := get(t, h, "GET", "/metrics"); w.Code != 404 {
		t.Errorf("/metrics without metrics: %d, want 404", w.Code)
	}
}

// TestBusy fills the slots with requests that wait: the next gets 503 at once, health
// checks still answer, and once a slot is free requests are served again.
func TestBusy(t *testing.T) {
	tr := tree(t)
	v, err := view.Read(tr.Base)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	var blocking = true
	cfg := web.Config{MaxInFlight: 2, Base: tr.Base, Status: func() (*view.View, error) {
		if blocking {
			entered <- struct{}{}
			<-release
		}
		return v, nil
	}}
	h := web.Handler(cfg)
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- get(t, h, "GET", "/").Code }()
	}
	<-entered
	<-entered
	start := time.Now()
	w := get(t, h, "GET", "/api/status")
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || time.Since(start) > 100*time.Millisecond {
		t.Errorf("third request: %d, Retry-After %q after %v; want 503 at once", w.Code, w.Header().Get("Retry-After"), time.Since(start))
	}
	if w := get(t, h, "GET", "/-/healthy"); w.Code != 200 {
		t.Errorf("/-/healthy while busy: %d", w.Code)
	}
	blocking = false
	close(release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("a waiting request: %d", code)
		}
	}
	if w := get(t, h, "GET", "/api/status"); w.Code != 200 {
		t.Errorf("after the others: %d", w.Code)
	}
}

// TestAPIIsStatusJSON: /api/status is the status --json document.
func TestAPIIsStatusJSON(t *testing.T) {
	tr := tree(t)
	cfg, v := fixed(t, tr.Base)
	var got, want any
	if err := json.Unmarshal(get(t, web.Handler(cfg), "GET", "/api/status").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(v, "", "  ") // as status --json writes it
	json.Unmarshal(b, &want)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("/api/status differs from status --json:\n%s\n%s", gb, wb)
	}
}
