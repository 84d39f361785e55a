package web

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"pingmachine/store/graph"
)

// Sizes of a graph's plot area in pixels: the graph subcommand's default width, and
// bounds that keep a query from asking for a picture of gigabytes.
const (
	defaultWidth  = 600
	defaultHeight = 200
	maxWidth      = 2000
	maxHeight     = 1000
)

// graphQuery is a graph's ?period=&width=&height=.
type graphQuery struct {
	span          time.Duration
	width, height int
}

func parseGraphQuery(r *http.Request) (graphQuery, error) {
	v := r.URL.Query()
	q := graphQuery{span: 24 * time.Hour, width: defaultWidth, height: defaultHeight}
	if s := v.Get("period"); s != "" {
		d, err := graph.ParsePeriod(s)
		if err != nil {
			return q, fmt.Errorf("period %w", err)
		}
		q.span = d
	}
	for _, p := range []struct {
		name     string
		to       *int
		min, max int
	}{{"width", &q.width, graph.MinWidth, maxWidth}, {"height", &q.height, graph.MinHeight, maxHeight}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < p.min || n > p.max {
			return q, fmt.Errorf("%s %q: want %d..%d pixels", p.name, s, p.min, p.max)
		}
		*p.to = n
	}
	return q, nil
}

// graph draws /graph/<id>.svg or .png of a known order's main.rrd, ending now.
func (s *server) graph(w http.ResponseWriter, r *http.Request) {
	format, suffix := graph.SVG, ".svg"
	if strings.HasSuffix(r.URL.Path, ".png") {
		format, suffix = graph.PNG, ".png"
	}
	q, err := parseGraphQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, o, err := s.find(r, "/graph/", suffix)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	end := v.Time
	d, err := graph.Read(s.rrdPath(o), graph.Span{Start: end.Add(-q.span), End: end, Width: q.width})
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "this order has no main.rrd", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	title := o.ID
	if o.Order != nil {
		title += " — " + o.Order.Target()
	}
	var b bytes.Buffer
	if err := graph.Draw(&b, d, graph.Options{Format: format, Title: title, Height: q.height, Location: end.Location()}); err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	if format == graph.SVG {
		h.Set("Content-Type", "image/svg+xml")
		// Opened on its own, the picture may style itself and nothing more.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	}
	// A row of the graph covers span/width seconds: a newer picture differs by at most
	// a column until then.
	age := min(max(q.span/time.Duration(q.width), time.Minute), time.Hour)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(age/time.Second)))
	w.Write(b.Bytes())
}
