// Package web is the daemon's read-only HTTP server: a status page of every order with
// Smokeping's loss colours, a page per order with its day, week, month and year graphs,
// the graphs themselves, the status --json document, health and readiness checks, and a
// place for Prometheus metrics. It is built on the same readers as the status and graph
// subcommands (store/view and store/graph), and it guards the daemon: every phase of a
// connection has a timeout, a bounded number of requests run at once (the rest get 503
// at once), and an order id from a URL is only used after it was found among the known
// orders.
package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"pingmachine/store/view"
)

// Config is what the server shows and how it is bounded.
type Config struct {
	// Status returns the current state of all orders, sorted by id.
	Status func() (*view.View, error)
	// Metrics serves /metrics; nil leaves it unknown (404).
	Metrics http.Handler
	// Base is the base directory, whose output/<id>/main.rrd the graphs are drawn from.
	Base string
	// Ready tells /-/ready whether the daemon is serving; nil means always.
	Ready  func() bool
	Logger *slog.Logger
	// MaxInFlight bounds the requests handled at once (health checks aside); 0 means
	// DefaultMaxInFlight.
	MaxInFlight int
	// HeaderTimeout bounds the time a client may take to send a request's headers; 0
	// means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
}

// The defaults of Config's limits. A browser loads a page and its four graphs at once,
// which must fit.
const (
	DefaultMaxInFlight   = 16
	DefaultHeaderTimeout = 5 * time.Second
)

// Limits of every connection that are not configurable: a request is small (read-only,
// no body to speak of), a response at most a status document of many orders or a graph.
const (
	readTimeout    = 15 * time.Second
	writeTimeout   = 60 * time.Second
	idleTimeout    = 60 * time.Second
	maxHeaderBytes = 16 << 10
	maxQuery       = 2048 // bytes of a query string; the pages' own are far shorter
	shutdownWait   = 5 * time.Second
)

// Serve serves c on ln until ctx is done, then lets the requests under way finish (for
// a few seconds at most) and returns nil; it returns an error only when serving fails.
// It closes ln.
func Serve(ctx context.Context, ln net.Listener, c Config) error {
	c = c.withDefaults()
	srv := &http.Server{
		Handler:           Handler(c),
		ReadHeaderTimeout: c.HeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(c.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("web server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := srv.Shutdown(stop); err != nil {
		c.Logger.Warn("web server: requests cut short at shutdown", "err", err)
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web server on %s: %w", ln.Addr(), err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.MaxInFlight = cmp.Or(c.MaxInFlight, DefaultMaxInFlight)
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, DefaultHeaderTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Ready == nil {
		c.Ready = func() bool { return true }
	}
	return c
}

// server is the handler of a Config.
type server struct {
	c        Config
	slots    chan struct{} // one per request in flight
	pages    *pages
	notFound http.Handler
}

// Handler returns the server's routes with its limits on requests (not those on
// connections, which Serve sets).
func Handler(c Config) http.Handler {
	c = c.withDefaults()
	notFound := http.NotFoundHandler()
	if c.Metrics == nil {
		c.Metrics = notFound
	}
	return &server{c: c, slots: make(chan struct{}, c.MaxInFlight), pages: newPages(), notFound: notFound}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	if len(r.URL.RawQuery) > maxQuery {
		http.Error(w, "query string too long", http.StatusRequestURITooLong)
		return
	}
	switch r.URL.Path {
	case "/-/healthy":
		h.Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "OK")
		return
	case "/-/ready":
		h.Set("Cache-Control", "no-store")
		if !s.c.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OK")
		return
	}
	// The rest reads files or draws: beyond the slots, a client is told at once to come
	// back rather than queued, so that a flood costs the daemon nothing but the refusal.
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		h.Set("Retry-After", "1")
		http.Error(w, "busy: too many requests at once", http.StatusServiceUnavailable)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/":
		s.status(w, r)
	case p == "/api/status":
		s.api(w, r)
	case p == "/metrics":
		s.c.Metrics.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/order/"):
		s.order(w, r)
	case strings.HasPrefix(p, "/graph/"):
		s.graph(w, r)
	default:
		s.notFound.ServeHTTP(w, r)
	}
}

// find returns the view and the known order named by the path after prefix and before
// suffix. The id is checked against the orders the view lists before it is used at all:
// a path with an encoded slash or NUL, an empty, "." or ".." segment, or an id that is
// not an order now (unknown, or archived) is not found.
func (s *server) find(r *http.Request, prefix, suffix string) (*view.View, *view.Order, error) {
	raw := strings.ToLower(r.URL.EscapedPath())
	if strings.Contains(raw, "%2f") || strings.Contains(raw, "%00") || strings.Contains(r.URL.Path, "\x00") {
		return nil, nil, errNotFound
	}
	id, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		return nil, nil, errNotFound
	}
	if id, ok = strings.CutSuffix(id, suffix); !ok {
		return nil, nil, errNotFound
	}
	for seg := range strings.SplitSeq(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, nil, errNotFound
		}
	}
	v, err := s.c.Status()
	if err != nil {
		return nil, nil, err
	}
	o := lookup(v, id)
	if o == nil {
		return nil, nil, errNotFound
	}
	return v, o, nil
}

var errNotFound = errors.New("no such order")

// lookup returns the order of v with the id, nil if there is none.
func lookup(v *view.View, id string) *view.Order {
	i, found := slices.BinarySearchFunc(v.Orders, id, func(o view.Order, id string) int { return strings.Compare(o.ID, id) })
	if !found {
		return nil
	}
	return &v.Orders[i]
}

// fail answers a request that could not be served: 404 for an order not found, 500
// with the reason logged otherwise.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errNotFound) {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	s.c.Logger.Warn("web request failed", "path", r.URL.Path, "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (s *server) api(w http.ResponseWriter, r *http.Request) {
	v, err := s.c.Status()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := v.MarshalJSON()
	if err != nil {
		s.fail(w, r, fmt.Errorf("encoding the status: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(append(b, '\n'))
}
