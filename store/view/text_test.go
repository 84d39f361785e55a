package view_test

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/store/view"
	"pingmachine/store/view/viewtest"
)

// sampleText is the text of the sample tree, BASE for its base directory.
const sampleText = `- netops

  order            step  pings  probe  host         updated    m.rtt  loss
  --------------  -----  -----  -----  -----------  -------  -------  ----
  web1             60 s     20  fping  192.0.2.1     12 s    12.3 ms    5%  (eth0, source=192.0.2.9)
  new              60 s     20  fping  192.0.2.3    -              -     -
  odd              60 s     20  fping  192.0.2.4    ?              ?     ?
  site/zurich/gw  300 s      5  fping  2001:db8::1   30 s    25.0 ms   40%

- scion

  order         step  pings  probe  host                      updated    m.rtt  loss
  ------------  ----  -----  -----  ------------------------  -------  -------  ----
  scion/sping1  60 s     10  sping  1-ff00:0:110,[192.0.2.1]   10 s          -  100%
  scion/pping1  60 s     10  pping  1-ff00:0:110,[192.0.2.2]   10 min  31.0 ms    0%  (source=1-ff00:0:111,[192.0.2.9])

- web

  order           step  pings  probe    host                                 updated    m.rtt  loss
  -------------  -----  -----  -------  -----------------------------------  -------  -------  ----
  http/intranet  300 s      5  httping  https://intranet.example.com/health  100 s    45.0 ms    0%

invalid orders, as the daemon reads them:
  orders/bad/pings: line 3: pings: expected a whole number of pings, got "two"

stale orders, without a result for more than two steps:
  scion/pping1: last result 10 min ago, step 60 s

unreadable results:
  BASE/output/odd/last_result: line 1: time: expected a whole number, got "soon"

orders: 8 (4 ok, 1 stale, 1 without a result yet, 1 with an unreadable result, 1 invalid)
daemon: not running (BASE/.lock is not locked)
`

func TestWriteText(t *testing.T) {
	tree, v := sample(t)
	var b strings.Builder
	if err := v.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(sampleText, "BASE", tree.Base); b.String() != want {
		t.Errorf("WriteText =\n%s\nwant\n%s", b.String(), want)
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Error("colour without colour")
	}
}

// TestWriteTextColour marks cells by the Perl tool's rules, and lines them up as
// without colour.
func TestWriteTextColour(t *testing.T) {
	_, v := sample(t)
	var plain, coloured strings.Builder
	v.WriteText(&plain, false)
	if err := v.WriteText(&coloured, true); err != nil {
		t.Fatal(err)
	}
	const (
		bold, red, green, yellow, reset = "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[0m"
	)
	for _, want := range []string{
		bold + "- netops" + reset,
		bold + "order         " + reset,
		green + "  5%" + reset,  // one ping lost of twenty
		yellow + " 40%" + reset, // some lost
		red + "100%" + reset,    // all lost
		green + "  0%" + reset,
		red + " 10 min" + reset, // older than a step
		"   10 s  ",             // younger, not painted
		red + "invalid orders, as the daemon reads them:" + reset,
	} {
		if !strings.Contains(coloured.String(), want) {
			t.Errorf("no %q in\n%s", want, coloured.String())
		}
	}
	if got := regexp.MustCompile("\x1b\\[[0-9]+m").ReplaceAllString(coloured.String(), ""); got != plain.String() {
		t.Errorf("without its colours,\n%s\nis not\n%s", got, plain.String())
	}
}

func TestLossColour(t *testing.T) {
	_, v := sample(t)
	for _, tt := range []struct {
		loss, pings int
		colour      string
	}{
		{0, 1, "\x1b[32m"}, {1, 1, "\x1b[31m"},
		{1, 2, "\x1b[33m"}, {2, 2, "\x1b[31m"},
		{1, 3, "\x1b[32m"}, {2, 3, "\x1b[33m"}, {3, 3, "\x1b[31m"},
		{1, 20, "\x1b[32m"}, {19, 20, "\x1b[33m"}, {20, 20, "\x1b[31m"},
	} {
		o := v.Orders[len(v.Orders)-1] // web1
		r := *o.Result
		r.Loss, r.Pings = tt.loss, tt.pings
		o.Result = &r
		one := &view.View{Base: v.Base, Time: v.Time, Orders: []view.Order{o}}
		var b strings.Builder
		one.WriteText(&b, true)
		if want := fmt.Sprintf("%s%3.0f%%\x1b[0m", tt.colour, float64(tt.loss)*100/float64(tt.pings)); !strings.Contains(b.String(), want) {
			t.Errorf("%d of %d lost: no %q in\n%s", tt.loss, tt.pings, want, b.String())
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		d        time.Duration
		rtt, age string
	}{
		{-1, "-", "0 s"},
		{0, "0.000 ms", "0 s"},
		{45600 * time.Nanosecond, "0.046 ms", "0 s"},
		{1234 * time.Microsecond, "1.23 ms", "0 s"},
		{12345 * time.Microsecond, "12.3 ms", "0 s"},
		{123456 * time.Microsecond, "123 ms", "0 s"},
		{119 * time.Second, "119000 ms", "119 s"},
		{120 * time.Second, "120000 ms", "2 min"},
		{7199 * time.Second, "7199000 ms", "119 min"},
		{2 * time.Hour, "7200000 ms", "2 h"},
		{48 * time.Hour, "172800000 ms", "2 d"},
	} {
		if got := view.FormatRTT(tt.d); got != tt.rtt {
			t.Errorf("FormatRTT(%v) = %q, want %q", tt.d, got, tt.rtt)
		}
		if got := view.FormatAge(tt.d); got != tt.age {
			t.Errorf("FormatAge(%v) = %q, want %q", tt.d, got, tt.age)
		}
	}
}

// document is the JSON of a view, as README.md describes it.
type document struct {
	Basedir string    `json:"basedir"`
	Time    time.Time `json:"time"`
	Daemon  struct {
		Lock    string `json:"lock"`
		Running bool   `json:"running"`
		Error   string `json:"error"`
	} `json:"daemon"`
	Orders []struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		User      string `json:"user"`
		Step      int64  `json:"step"`
		Pings     int    `json:"pings"`
		Probe     string `json:"probe"`
		Target    string `json:"target"`
		Interface string `json:"interface"`
		Source    string `json:"source"`
		Error     string `json:"error"`
		Problems  []struct {
			Line    int    `json:"line"`
			Key     string `json:"key"`
			Message string `json:"message"`
		} `json:"problems"`
		Result *struct {
			Time        int64    `json:"time"`
			Updated     int64    `json:"updated"`
			Age         int64    `json:"age"`
			Step        int64    `json:"step"`
			Pings       int      `json:"pings"`
			Loss        int      `json:"loss"`
			LossPercent float64  `json:"loss_percent"`
			Min         *float64 `json:"min"`
			Median      *float64 `json:"median"`
			Max         *float64 `json:"max"`
		} `json:"result"`
		ResultError string `json:"result_error"`
	} `json:"orders"`
}

// TestJSONMatchesText: the JSON document holds what the text shows, row by row.
func TestJSONMatchesText(t *testing.T) {
	_, v := sample(t)
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc document
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	var text strings.Builder
	v.WriteText(&text, false)

	// The rows of the tables, and the other sections' lines, rebuilt from the JSON.
	rows := map[string][]string{}
	var want []string
	for _, o := range doc.Orders {
		switch o.State {
		case "invalid":
			want = append(want, "invalid "+o.Error)
			if len(o.Problems) != 1 || o.Problems[0].Line != 3 || o.Problems[0].Key != "pings" {
				t.Errorf("%s: problems %+v", o.ID, o.Problems)
			}
			continue
		case "stale":
			want = append(want, "stale "+o.ID)
		case "unreadable":
			want = append(want, "unreadable "+o.ResultError)
		}
		updated, rtt, loss := "-", "-", "-"
		if o.ResultError != "" {
			updated, rtt, loss = "?", "?", "?"
		}
		if r := o.Result; r != nil {
			updated = view.FormatAge(time.Duration(r.Age) * time.Second)
			if r.Median != nil {
				rtt = view.FormatRTT(time.Duration(math.Round(*r.Median * 1e9)))
			}
			loss = strconv.FormatFloat(r.LossPercent, 'f', 0, 64) + "%"
		}
		row := []string{o.ID, strconv.FormatInt(o.Step, 10) + " s", strconv.Itoa(o.Pings), o.Probe, o.Target, updated, rtt, loss}
		var via []string
		if o.Interface != "" {
			via = append(via, o.Interface)
		}
		if o.Source != "" {
			via = append(via, "source="+o.Source)
		}
		if len(via) > 0 {
			row = append(row, "("+strings.Join(via, ", ")+")")
		}
		want = append(want, "user "+o.User+": "+strings.Join(row, " | "))
		rows[o.ID] = row
	}
	want = append(want, fmt.Sprintf("daemon running %v", doc.Daemon.Running))

	// The same facts, read from the text.
	var got []string
	user, section := "", ""
	cells := regexp.MustCompile(`\S+(?: \S+)*`)
	for line := range strings.Lines(text.String()) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "- "):
			user, section = strings.TrimPrefix(line, "- "), "table"
		case strings.HasPrefix(line, "invalid orders"):
			section = "invalid"
		case strings.HasPrefix(line, "stale orders"):
			section = "stale"
		case strings.HasPrefix(line, "unreadable results"):
			section = "unreadable"
		case strings.HasPrefix(line, "daemon: "):
			got = append(got, fmt.Sprintf("daemon running %v", strings.HasPrefix(line, "daemon: running")))
		case !strings.HasPrefix(line, "  "), strings.HasPrefix(line, "  order "), strings.HasPrefix(line, "  ---"):
		case section == "table":
			// Cells are two spaces apart or more.
			got = append(got, "user "+user+": "+strings.Join(cells.FindAllString(line, -1), " | "))
		case section == "stale":
			id, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			got = append(got, "stale "+id)
		default:
			got = append(got, section+" "+strings.TrimSpace(line))
		}
	}
	if len(rows) != 7 {
		t.Errorf("%d table rows in the JSON, want 7", len(rows))
	}
	slices.Sort(want)
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the text shows\n%s\nthe JSON\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWriteTextControlCharacters: what files say reaches the terminal without the
// escape sequences a file name or a value may hold.
func TestWriteTextControlCharacters(t *testing.T) {
	tree := viewtest.New(t)
	tree.Order("evil\x1b[2J", "user: \"\\e]0;owned\\a\"\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n")
	tree.Order("bad\x1b[31m", "step: x\n")
	tree.Result("evil\x1b[2J", time.Minute, now.Add(-time.Second), time.Millisecond)
	v, err := view.Read(tree.Base)
	if err != nil {
		t.Fatal(err)
	}
	v.Time = now
	var b strings.Builder
	v.WriteText(&b, false)
	if strings.ContainsFunc(b.String(), func(r rune) bool { return r < ' ' && r != '\n' }) {
		t.Errorf("control characters in\n%q", b.String())
	}
	for _, want := range []string{"- ?]0;owned?\n", "  evil?[2J ", "  orders/bad?[31m: "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}
