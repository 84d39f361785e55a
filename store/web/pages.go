package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pingmachine/orders"
	"pingmachine/store/graph"
	"pingmachine/store/view"
)

//go:embed assets
var assets embed.FS

// Paging of the status page: a page of 10,000 rows is slow to render on a phone, so the
// page size is bounded whatever the query asks.
const (
	defaultPerPage = 100
	maxPerPage     = 1000
)

// pages are the parsed templates and the page's Content-Security-Policy, which allows
// the embedded style sheet by its hash and nothing else: no script, no external asset.
type pages struct {
	tmpl *template.Template
	csp  string
}

func newPages() *pages {
	css, err := assets.ReadFile("assets/style.css")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	sum := sha256.Sum256(css)
	tmpl := template.Must(template.New("").Funcs(template.FuncMap{
		"css": func() template.CSS { return template.CSS(css) },
	}).ParseFS(assets, "assets/*.html"))
	return &pages{tmpl: tmpl, csp: "default-src 'none'; img-src 'self'; style-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
}

// render writes a page, or a 500 if its template fails: the page is made in memory
// first, so that a failure does not leave half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var b bytes.Buffer
	if err := s.pages.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		s.fail(w, r, fmt.Errorf("rendering %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.pages.csp)
	h.Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

// orderPath is the URL path of an order's page or graph: each segment of the id
// escaped, the slashes between them kept.
func orderPath(prefix, id, suffix string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return prefix + strings.Join(segs, "/") + suffix
}

// row is an order as the status page lists it.
type row struct {
	ID, Href, Target       string
	Loss, LossClass        string
	Median, Age, State     string
	Error                  string
	Problems               []orders.Problem
	LossTitle, StateReason string
}

// lossClass is the CSS class of Smokeping's colour for a loss (the style sheet defines
// one per colour).
func lossClass(loss, pings int) string {
	return "l" + hexColour(graph.LossColor(loss, pings))
}

func hexColour(c color.NRGBA) string {
	return fmt.Sprintf("%02x%02x%02x", c.R, c.G, c.B)
}

func newRow(v *view.View, o *view.Order) row {
	state := o.State(v.Time)
	rw := row{ID: o.ID, Href: orderPath("/order/", o.ID, ""), State: string(state), Loss: "–", Median: "–", Age: "–"}
	if o.Order != nil {
		rw.Target = o.Order.Destination()
	}
	if o.Err != nil {
		rw.Error = o.Err.Error()
		var perr *orders.Error
		if errors.As(o.Err, &perr) && len(perr.Problems) > 0 {
			rw.Error, rw.Problems = perr.File+":", perr.Problems
		}
	}
	if o.ResultErr != nil {
		rw.Error = o.ResultErr.Error()
	}
	if r := o.Result; r != nil {
		rw.Loss = strconv.FormatFloat(o.LossPercent(), 'f', 0, 64) + " %"
		rw.LossClass = lossClass(r.Loss, r.Pings)
		rw.LossTitle = fmt.Sprintf("%d of %d pings lost", r.Loss, r.Pings)
		rw.Median = view.FormatRTT(r.Median)
		rw.Age = view.FormatAge(o.Age(v.Time))
	}
	if state == view.Stale {
		rw.StateReason = fmt.Sprintf("no result for more than two steps of %d s", int64(o.Step()/time.Second))
	}
	return rw
}

// stateLink is one state in the status page's summary, a link to the orders in it.
type stateLink struct {
	State  string
	N      int
	Href   string
	Active bool
}

// statusPage is the data of the status page.
type statusPage struct {
	Base, Time, Daemon string
	DaemonOK           bool
	Total, Matched     int
	States             []stateLink
	Rows               []row
	Prefix, State      string
	Per, Page, Pages   int
	From, To           int
	Prev, Next         string
	NoOrders           bool
}

var states = []view.State{view.OK, view.Stale, view.NoResult, view.Unreadable, view.Invalid}

// query is the status page's selection: ?prefix=ID-PREFIX&state=STATE&page=N&per=N.
type query struct {
	prefix, state string
	page, per     int
}

func parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	q := query{prefix: v.Get("prefix"), state: v.Get("state"), page: 1, per: defaultPerPage}
	if q.state != "" && !isState(q.state) {
		return q, fmt.Errorf("state %q: want one of ok, stale, no_result, unreadable, invalid", q.state)
	}
	for _, p := range []struct {
		name string
		to   *int
		max  int
	}{{"page", &q.page, 1 << 30}, {"per", &q.per, maxPerPage}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > p.max {
			return q, fmt.Errorf("%s %q: want a whole number from 1 to %d", p.name, s, p.max)
		}
		*p.to = n
	}
	return q, nil
}

func isState(s string) bool {
	for _, st := range states {
		if string(st) == s {
			return true
		}
	}
	return false
}

// href is the status page's URL for the query with the page and state given.
func (q query) href(page int, state string) string {
	v := url.Values{}
	if q.prefix != "" {
		v.Set("prefix", q.prefix)
	}
	if state != "" {
		v.Set("state", state)
	}
	if q.per != defaultPerPage {
		v.Set("per", strconv.Itoa(q.per))
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, err := s.c.Status()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := statusPage{Base: v.Base, Time: v.Time.Format("2006-01-02 15:04:05 MST"), Daemon: v.Daemon.String(),
		DaemonOK: v.Daemon.Running && v.Daemon.Err == nil, Total: len(v.Orders), Prefix: q.prefix, State: q.state,
		Per: q.per, NoOrders: len(v.Orders) == 0}
	counts := make(map[view.State]int)
	// Only the rows of the page shown are made: the rest is counted.
	first := (q.page - 1) * q.per
	for i := range v.Orders {
		o := &v.Orders[i]
		if q.prefix != "" && !strings.HasPrefix(o.ID, q.prefix) {
			continue
		}
		st := o.State(v.Time)
		counts[st]++
		if q.state != "" && string(st) != q.state {
			continue
		}
		if p.Matched >= first && p.Matched < first+q.per {
			p.Rows = append(p.Rows, newRow(v, o))
		}
		p.Matched++
	}
	for _, st := range states {
		if counts[st] > 0 || string(st) == q.state {
			p.States = append(p.States, stateLink{State: string(st), N: counts[st], Href: q.href(1, string(st)), Active: string(st) == q.state})
		}
	}
	p.Pages = max(1, (p.Matched+q.per-1)/q.per)
	p.Page = min(q.page, p.Pages)
	if len(p.Rows) > 0 {
		p.From, p.To = first+1, first+len(p.Rows)
	}
	if q.page > 1 {
		p.Prev = q.href(min(q.page-1, p.Pages), q.state)
	}
	if q.page < p.Pages {
		p.Next = q.href(q.page+1, q.state)
	}
	s.render(w, r, "status.html", p)
}

// figure is one graph on an order's page.
type figure struct {
	Period, Caption, SVG, PNG string
}

// orderPage is the data of an order's page.
type orderPage struct {
	row
	Base, Time, Daemon string
	DaemonOK           bool
	Probe, User        string
	Step, Pings        string
	Via                string
	Updated            string
	Min, Max           string
	Graphs             []figure
	NoGraphs           string
}

var periods = []struct{ name, caption string }{
	{"day", "the last day"}, {"week", "the last week"}, {"month", "the last month"}, {"year", "the last year"},
}

func (s *server) order(w http.ResponseWriter, r *http.Request) {
	v, o, err := s.find(r, "/order/", "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := orderPage{row: newRow(v, o), Base: v.Base, Time: v.Time.Format("2006-01-02 15:04:05 MST"), Daemon: v.Daemon.String(),
		DaemonOK: v.Daemon.Running && v.Daemon.Err == nil}
	if oo := o.Order; oo != nil {
		p.Probe, p.User = oo.Probe, oo.User
		p.Step, p.Pings = strconv.FormatInt(int64(oo.Step/time.Second), 10)+" s", strconv.Itoa(oo.Pings)
		iface, source := o.Via()
		p.Via = strings.TrimSpace(strings.Join([]string{iface, source}, " "))
	}
	if res := o.Result; res != nil {
		p.Updated = res.Updated.In(v.Time.Location()).Format("2006-01-02 15:04:05")
		p.Min, p.Max = view.FormatRTT(res.Min), view.FormatRTT(res.Max)
	}
	switch _, err := os.Stat(s.rrdPath(o)); {
	case err == nil:
		for _, pr := range periods {
			p.Graphs = append(p.Graphs, figure{Period: pr.name, Caption: pr.caption,
				SVG: orderPath("/graph/", o.ID, ".svg?period="+pr.name), PNG: orderPath("/graph/", o.ID, ".png?period="+pr.name)})
		}
	case errors.Is(err, fs.ErrNotExist) && o.Order != nil && o.Order.RRDTemplate == "norrd":
		// Said for what it is, rather than as a main.rrd still to come: such an
		// order never gets one.
		p.NoGraphs = "the order's rrd_template is norrd, which keeps no main.rrd (only last_result)"
	case errors.Is(err, fs.ErrNotExist):
		p.NoGraphs = "no main.rrd yet: the first round writes it"
	default:
		p.NoGraphs = err.Error()
	}
	s.render(w, r, "order.html", p)
}

// rrdPath is the main.rrd of a known order.
func (s *server) rrdPath(o *view.Order) string {
	return filepath.Join(s.c.Base, "output", filepath.FromSlash(o.ID), "main.rrd")
}
