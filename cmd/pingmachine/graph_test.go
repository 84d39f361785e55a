package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
	"pingmachine/store/graph"
	"pingmachine/store/graph/graphtest"
	"pingmachine/store/storetest"
)

var update = flag.Bool("update", false, "write the README's example graph and web screenshots in ../../testdata")

// exampleID and exampleEnd are the order and the day of the README's example graph.
const (
	exampleID    = "office/zurich-gw"
	exampleEnd   = "2026-03-10 00:00"
	exampleOrder = "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: gw.zurich.example\n"
)

// graphTree makes a base directory with one day of rounds of the example order, written
// by the store, and its order file; it returns the base and the day's end.
func graphTree(t *testing.T) (string, time.Time) {
	t.Helper()
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	end, err := time.ParseInLocation("2006-01-02 15:04", exampleEnd, zurich)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	graphtest.Write(t, base, exampleID, time.Minute, 20, end.Add(-24*time.Hour), end, zurich, 1)
	order := filepath.Join(base, "orders", exampleID)
	if err := os.MkdirAll(filepath.Dir(order), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(order, []byte(exampleOrder), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, end
}

func TestGraphArgs(t *testing.T) {
	now := time.Unix(1_773_100_800, 0)
	for _, c := range []struct {
		args []string
		want graphConfig // id, out, format, span, end, width, height
		err  string
	}{
		{args: []string{"-i", "a/b"}, want: graphConfig{id: "a/b", out: "a_b.png", format: graph.PNG, span: 24 * time.Hour, end: now, width: 600, height: 250}},
		{args: []string{"-i", "x", "-p", "week", "-o", "/tmp/x.SVG", "--width", "800", "--height", "300", "--end", "1700000000"},
			want: graphConfig{id: "x", out: "/tmp/x.SVG", format: graph.SVG, span: 7 * 24 * time.Hour, end: time.Unix(1_700_000_000, 0), width: 800, height: 300}},
		{args: []string{"-i", "x", "-p", "5400", "--end", "2026-03-10T00:00:00Z"},
			want: graphConfig{id: "x", out: "x.png", format: graph.PNG, span: 90 * time.Minute, end: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), width: 600, height: 250}},
		{args: []string{"-i", "x", "-p", "36h", "-p", "month"}, want: graphConfig{id: "x", out: "x.png", format: graph.PNG, span: 30 * 24 * time.Hour, end: now, width: 600, height: 250}},
		{args: []string{}, err: "no order: name it with -i ID"},
		{args: []string{"-i", "../etc/passwd"}, err: "-i: order id \"../etc/passwd\" is not a path below orders/"},
		{args: []string{"-i", "x", "stray"}, err: `unexpected argument "stray"`},
		{args: []string{"-i", "x", "-p", "fortnight"}, err: `-p "fortnight": want day, week, month, year`},
		{args: []string{"-i", "x", "-p", "0"}, err: `-p "0"`},
		{args: []string{"-i", "x", "-p", "-5"}, err: `-p "-5"`},
		{args: []string{"-i", "x", "-p", "99999999999999"}, err: `-p "99999999999999"`},
		{args: []string{"-i", "x", "--end", "yesterday"}, err: `--end "yesterday": want now, Unix seconds`},
		{args: []string{"-i", "x", "-o", "x.jpg"}, err: "-o x.jpg: want a file name ending in .png or .svg"},
		{args: []string{"-i", "x", "--width", "99"}, err: "--width 99: want 100..10000 pixels"},
		{args: []string{"-i", "x", "--height", "20000"}, err: "--height 20000: want 50..10000 pixels"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseGraphArgs(c.args, now, &stderr)
			if c.err != "" {
				if err == nil || !strings.Contains(stderr.String(), "pingmachine graph: "+c.err) {
					t.Errorf("error %v, stderr %q; want %q", err, stderr.String(), c.err)
				}
				return
			}
			got.basedir = ""
			if err != nil || got != c.want {
				t.Errorf("%+v, %v\nwant %+v", got, err, c.want)
			}
		})
	}
}

// svgText returns the text of every <text> element of an SVG document.
func svgText(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	dec := xml.NewDecoder(f)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts
		}
		if err != nil {
			t.Fatalf("%s does not parse: %v", path, err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "text" {
			var s string
			if err := dec.DecodeElement(&s, &el); err != nil {
				t.Fatal(err)
			}
			texts = append(texts, s)
		}
	}
}

// TestGraphCommand runs "pingmachine graph" on a base directory written by the store:
// the legend shows what rrdtool graph prints for the same file and span, the title names
// the order's target when its order file is there, an archived order is drawn too, and
// nothing but the picture is written.
func TestGraphCommand(t *testing.T) {
	base, end := graphTree(t)
	rrd := filepath.Join(base, "output", exampleID, "main.rrd")
	endArg := strconv.FormatInt(end.Unix(), 10)
	// The figures as rrdtool graph prints them, in the legend's precision for their size.
	printed := strings.Fields(rrdtest.Run(t, "graph", "/dev/null", "--start", strconv.FormatInt(end.Add(-24*time.Hour).Unix(), 10),
		"--end", endArg, "--width", "600",
		"DEF:median="+rrd+":median:AVERAGE", "DEF:loss="+rrd+":loss:AVERAGE",
		"CDEF:ms=median,1000,*", "CDEF:ploss=loss,20,/,100,*",
		"VDEF:avg=ms,AVERAGE", "VDEF:max=ms,MAXIMUM", "VDEF:min=ms,MINIMUM", "VDEF:now=ms,LAST", "VDEF:lossavg=ploss,AVERAGE",
		"PRINT:avg:%.1lf", "PRINT:max:%.1lf", "PRINT:min:%.1lf", "PRINT:now:%.1lf", "PRINT:lossavg:%.2lf"))[1:]
	wantFigures := []string{printed[0] + " ms", printed[1] + " ms", printed[2] + " ms", printed[3] + " ms", printed[4] + " %"}

	t.Run("svg", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "gw.svg")
		before := storetest.Tree(t, base)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"graph", "-b", base, "-i", exampleID, "--end", endArg, "-o", out}, nil, &stdout, &stderr)
		if code != exitOK || stdout.String() != out+"\n" || stderr.Len() > 0 {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		texts := svgText(t, out)
		for _, w := range append(wantFigures, exampleID+" — fping: gw.zurich.example", "20 pings every 60 s") {
			if !slices.Contains(texts, w) {
				t.Errorf("no %q in the SVG's texts %q", w, texts)
			}
		}
		if after := storetest.Tree(t, base); !slices.Equal(before, after) {
			t.Errorf("the base directory changed:\n%q\n%q", before, after)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("the picture: %v, %v; want mode 0644", fi, err)
		}
		if names := storetest.Tree(t, filepath.Dir(out)); !slices.Equal(names, []string{"gw.svg"}) {
			t.Errorf("beside the picture: %q", names)
		}
	})

	t.Run("archived, default name", func(t *testing.T) {
		arch := t.TempDir()
		if err := os.MkdirAll(filepath.Join(arch, "archive", "office"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(base, "output", exampleID), filepath.Join(arch, "archive", exampleID)); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(filepath.Join(arch, "archive", exampleID), filepath.Join(base, "output", exampleID))
		t.Chdir(t.TempDir())
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"graph", "--basedir", arch, "-i", exampleID, "--end", endArg}, nil, &stdout, &stderr)
		if code != exitOK || stdout.String() != "office_zurich-gw.png\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		f, err := os.Open("office_zurich-gw.png")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := png.Decode(f); err != nil {
			t.Errorf("the PNG does not decode: %v", err)
		}
	})

	for _, c := range []struct {
		name   string
		id     string
		file   string // a file to write first, and its content
		data   string
		out    string // the -o file; empty for one in a new directory
		exit   int
		stderr string
	}{
		{name: "no such order", id: "nope", exit: graphFailed,
			stderr: "pingmachine: order nope has no main.rrd: neither " + filepath.Join(base, "output/nope/main.rrd") + " nor " + filepath.Join(base, "archive/nope/main.rrd") + " exists\n"},
		{name: "not an RRD", id: "junk", file: "output/junk/main.rrd", data: strings.Repeat("junk ", 100), exit: graphFailed,
			stderr: "pingmachine: rrdfmt: " + filepath.Join(base, "output/junk/main.rrd") + ": not an RRD file\n"},
		{name: "cannot write", id: exampleID, out: "/nonexistent/x.png", exit: graphFailed,
			stderr: "pingmachine: cannot write /nonexistent/x.png: open /nonexistent/.x.png."},
		{name: "invalid order", id: exampleID, file: "orders/" + exampleID, data: "step: often\n", exit: exitOK,
			stderr: "pingmachine graph: the title names no target: " + filepath.Join(base, "orders", exampleID) + ": line 1: user: missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.file != "" {
				writeFile(t, filepath.Join(base, c.file), c.data)
			}
			out := c.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "x.png")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"graph", "-b", base, "-i", c.id, "--end", endArg, "-o", out}, nil, &stdout, &stderr)
			if code != c.exit || !strings.HasPrefix(stderr.String(), c.stderr) {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), c.exit, c.stderr)
			}
			if _, err := os.Stat(out); (err == nil) != (c.exit == exitOK) {
				t.Errorf("the picture: %v", err)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGraphExample draws the README's example with the binary, in the time zone of the
// data, as the README says; with -update it replaces ../../testdata/graph-example.png,
// else it checks that the picture there is what this code draws.
func TestGraphExample(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	base, _ := graphTree(t)
	out := filepath.Join(t.TempDir(), "graph-example.png")
	cmd := exec.Command(bin, "graph", "-b", base, "-i", exampleID, "--end", exampleEnd, "-o", out)
	cmd.Env = append(os.Environ(), "TZ=Europe/Zurich")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	const example = "../../testdata/graph-example.png"
	if *update {
		if err := os.WriteFile(example, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(example)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s is not what the code draws (%v): go test ./cmd/pingmachine -run TestGraphExample -update", example, err)
	}
}
