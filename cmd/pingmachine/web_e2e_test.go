package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pingmachine/store/graph/graphtest"
)

// webOrders are the orders of the web tests: plausible names, loopback hosts. Those with
// history get a day of rounds in main.rrd before the daemon starts.
var webOrders = []struct {
	id, yaml string
	history  bool
}{
	{"zurich/gw", icmpOrder("127.0.0.1", 60, 20, ""), true},
	{"zurich/printer", icmpOrder("127.0.0.2", 60, 20, ""), true},
	{"geneva/gw", icmpOrder("127.0.0.3", 60, 20, ""), true},
	{"geneva/wifi-ap", icmpOrder("::1", 60, 20, "  ipv6: true\n"), true},
	{"lab/live", icmpOrder("127.0.0.4", 10, 5, ""), false},
	{"lab/broken", "user: e2e\nstep: 60\npings: twenty\nprobe: fping\nfping:\n  host: 127.0.0.5\n", false},
}

// webDaemon starts the daemon with --listen on a free loopback port over a tree of
// webOrders and returns it with the server's URL.
func webDaemon(t *testing.T) (*daemon, string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "pingmachine")
	now := time.Now()
	for i, o := range webOrders {
		if o.history {
			graphtest.Write(t, base, o.id, time.Minute, 20, now.Add(-24*time.Hour), now.Add(-time.Minute), time.Local, uint64(i+1))
		}
		writeOrder(t, base, o.id, o.yaml)
	}
	d := startDaemon(t, base, "--listen", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="web server listening" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(d.logs.String())
	if m == nil {
		t.Fatalf("no listening address in the log:\n%s", d.logs)
	}
	return d, "http://" + m[1]
}

// chromium runs headless Chromium on a URL with extra arguments and returns its stdout.
// It is kept off every network but loopback: no background traffic, and no name
// resolves.
func chromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir(),
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--hide-scrollbars"}, append(args, url)...)
	cmd := exec.CommandContext(ctx, "chromium", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.String())
	}
	return stdout.Bytes()
}

// screenshot takes a screenshot of url at the window size and returns the file and
// the picture.
func screenshot(t *testing.T, url string, w, h int) (string, image.Image) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "shot.png")
	chromium(t, url, "--screenshot="+file, fmt.Sprintf("--window-size=%d,%d", w, h))
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot of %s: %v", url, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot of %s: %v, want %dx%d", url, b, w, h)
	}
	return file, img
}

// colours counts the pixels of an image by colour.
func colours(img image.Image) map[[3]uint8]int {
	n := make(map[[3]uint8]int)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			n[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}]++
		}
	}
	return n
}

// near counts the pixels within a few levels of a colour.
func near(n map[[3]uint8]int, c [3]uint8) int {
	sum := 0
	for k, v := range n {
		d := 0
		for i := range 3 {
			d = max(d, int(k[i])-int(c[i]), int(c[i])-int(k[i]))
		}
		if d <= 6 {
			sum += v
		}
	}
	return sum
}

// whiteRuns are the heights of the runs of pure white pixels in column x, top down.
func whiteRuns(img image.Image, x int) []int {
	var runs []int
	run := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		if r, g, bl, _ := img.At(x, y).RGBA(); r>>8 == 0xff && g>>8 == 0xff && bl>>8 == 0xff {
			run++
			continue
		}
		if run > 0 {
			runs = append(runs, run)
		}
		run = 0
	}
	return runs
}

// checkNotBlank fails unless the picture has many colours and is mostly not one.
func checkNotBlank(t *testing.T, what string, img image.Image) map[[3]uint8]int {
	t.Helper()
	n := colours(img)
	b := img.Bounds()
	most := 0
	for _, v := range n {
		most = max(most, v)
	}
	if len(n) < 50 || most > b.Dx()*b.Dy()*95/100 {
		t.Errorf("%s looks blank: %d colours, the commonest on %d of %d pixels", what, len(n), most, b.Dx()*b.Dy())
	}
	return n
}

// TestWebChromium loads the status page and an order page of a running daemon in a real
// headless Chromium: the DOM lists every order and every graph, the graphs load, and
// the screenshots show the pages. With -update they become the README's screenshots.
func TestWebChromium(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatalf("chromium is not installed (make deps installs it): %v", err)
	}
	d, url := webDaemon(t)
	d.waitResult("lab/live", 0, 30*time.Second)

	dom := string(chromium(t, url+"/", "--dump-dom"))
	var ids []string
	for _, m := range regexp.MustCompile(`<td class="id"><a href="/order/([^"]+)">([^<]+)</a></td>`).FindAllStringSubmatch(dom, -1) {
		if m[1] != m[2] {
			t.Errorf("order %s links to /order/%s", m[2], m[1])
		}
		ids = append(ids, m[2])
	}
	var want []string
	for _, o := range webOrders {
		want = append(want, o.id)
	}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("the status page in Chromium lists %q, want %q", ids, want)
	}
	for _, s := range []string{"daemon running", "line 3: pings: ", `class="st st-ok"`, `class="sw l26ff00"`} {
		if !strings.Contains(dom, s) {
			t.Errorf("the status page in Chromium has no %q", s)
		}
	}

	statusDOM := dom
	dom = string(chromium(t, url+"/order/zurich/gw", "--dump-dom"))
	srcs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	if len(srcs) != 4 {
		t.Fatalf("the order page in Chromium has %d graphs, want 4:\n%s", len(srcs), dom)
	}
	for i, period := range []string{"day", "week", "month", "year"} {
		src := strings.ReplaceAll(srcs[i][1], "&amp;", "&")
		if want := "/graph/zurich/gw.svg?period=" + period; src != want {
			t.Errorf("graph %d: %s, want %s", i, src, want)
		}
		resp, err := http.Get(url + src)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || !bytes.Contains(body, []byte("<svg")) {
			t.Errorf("%s: %d %s, %d bytes; want an SVG", src, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}

	statusFile, img := screenshot(t, url+"/", 1100, 560)
	// The loss swatches are drawn by the style sheet alone: Chromium applied it, so
	// the Content-Security-Policy allows it. Their colours are those of the orders'
	// last rounds: the history's depend on the time of day (graphtest.Day), and a
	// round that ends between the DOM above and the screenshot turns its order's green.
	swatches := regexp.MustCompile(`class="sw l([0-9a-f]{6})"`).FindAllStringSubmatch(statusDOM, -1)
	if len(swatches) != len(webOrders)-1 {
		t.Errorf("the status page in Chromium has %d loss swatches, want one per order but the broken one", len(swatches))
	}
	colours := map[[3]uint8]bool{{0x26, 0xff, 0x00}: true}
	for _, m := range swatches {
		c, _ := hex.DecodeString(m[1])
		colours[[3]uint8(c)] = true
	}
	statusColours := checkNotBlank(t, "the status page", img)
	shown := 0
	for c := range colours {
		shown += near(statusColours, c)
	}
	if shown < len(swatches)*40 {
		t.Errorf("the status page shows %d pixels of its loss swatches' colours %v, want at least 40 for each of %d", shown, colours, len(swatches))
	}
	orderFile, img := screenshot(t, url+"/order/zurich/gw", 1100, 1100)
	n := checkNotBlank(t, "the order page", img)
	// The legend of each graph has a swatch of Smokeping's colour for 3 of 20 pings
	// lost, which nothing else on the page has: it shows that the pictures loaded and
	// were drawn. A swatch is 14 pixels square; two graphs are in view.
	if got := near(n, [3]uint8{0x7e, 0x00, 0xff}); got < 2*100 {
		t.Errorf("the order page shows %d pixels of the graphs' #7e00ff swatch, want those of two legends", got)
	}
	// Each fact above the graphs fits on one line at this width: its card, a run of
	// white in the cards' padding left of the text, is as tall as a label and a line.
	// A value broken over lines (a time, "min / max") makes its row taller.
	rows := 0
	for _, h := range whiteRuns(img, 22) {
		if h > 20 && h < 200 { // not the graphs' figures, which are taller
			rows++
			if h > 60 {
				t.Errorf("a row of the order page's facts is %d pixels tall, want one line of value (about 52)", h)
			}
		}
	}
	if rows < 1 || rows > 2 {
		t.Errorf("the order page's facts are in %d rows, want one or two", rows)
	}
	_, img = screenshot(t, url+"/", 390, 844) // a phone
	checkNotBlank(t, "the status page on a phone", img)
	// The API is the status --json document, health and readiness are answered, and
	// SIGTERM stops the server with the daemon.
	var api, cli struct {
		Orders []struct{ ID, State string }
	}
	resp, err := http.Get(url + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&api)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/status: %v, %s", err, resp.Header.Get("Content-Type"))
	}
	out, stderr, code := runCmd(t, exec.Command(build(t), "status", "--json", "-b", d.base))
	if err := json.Unmarshal([]byte(out), &cli); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, stderr)
	}
	if fmt.Sprint(api) != fmt.Sprint(cli) || len(api.Orders) != len(webOrders) {
		t.Errorf("/api/status has %v, status --json %v", api, cli)
	}
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		if resp, err := http.Get(url + p); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		t.Error("the web server still accepts connections after the daemon stopped")
	}

	if *update {
		for file, name := range map[string]string{statusFile: "web-status.png", orderFile: "web-order.png"} {
			b, err := os.ReadFile(file)
			if err == nil {
				err = os.WriteFile(filepath.Join("../../testdata", name), b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWebDoesNotStallRounds keeps the web server busy with slow clients and a flood of
// graph requests for two steps of an order: its rounds go on, each written in its step.
func TestWebDoesNotStallRounds(t *testing.T) {
	t.Parallel()
	d, url := webDaemon(t)
	first := d.waitResult("lab/live", 0, 30*time.Second).int(t, "time")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	addr := strings.TrimPrefix(url, "http://")
	for range 30 {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := fmt.Fprintf(conn, "X-%d: y\r\n", i); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	var served, busy sync.Map
	for i := range 4 {
		wg.Go(func() {
			c := http.Client{Timeout: 10 * time.Second}
			for j := 0; ctx.Err() == nil; j++ {
				for _, p := range []string{"/graph/zurich/gw.png?period=year", "/", "/order/zurich/gw/../../../etc/passwd", "/graph/zurich%2fgw.svg", "/api/status"} {
					resp, err := c.Get(url + p)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable {
						busy.Store(p, true)
					}
					served.Store(fmt.Sprint(i, j, p), resp.StatusCode)
				}
			}
		})
	}
	second := d.waitResult("lab/live", first, 25*time.Second).int(t, "time")
	third := d.waitResult("lab/live", second, 15*time.Second).int(t, "time")
	cancel()
	wg.Wait()
	if second != first+10 || third != second+10 {
		t.Errorf("rounds at %d, %d, %d while the server was busy: want one every 10 s", first, second, third)
	}
	n := 0
	served.Range(func(k, v any) bool {
		n++
		p := k.(string)
		switch code := v.(int); {
		case strings.Contains(p, "%2f") || strings.Contains(p, ".."):
			if code != 404 {
				t.Errorf("%s: %d, want 404", p, code)
			}
		case code != 200 && code != 503:
			t.Errorf("%s: %d", p, code)
		}
		return true
	})
	if n < 20 {
		t.Errorf("only %d requests served in two steps", n)
	}
}
