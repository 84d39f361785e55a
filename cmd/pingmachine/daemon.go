package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/pinger/adapter"
	"pingmachine/pinger/dnsping"
	"pingmachine/pinger/schedule"
	"pingmachine/pinger/tcpping"
	"pingmachine/store"
	"pingmachine/store/live"
	"pingmachine/store/metrics"
	"pingmachine/store/telegraf"
	"pingmachine/store/view"
	"pingmachine/store/web"
)

// Exit statuses of the daemon.
const (
	exitFailed = 1 // could not start: the lock is held, the base directory is unusable, ...
)

// maxRuns bounds the external probe programs running at once; rounds beyond it wait for
// a slot.
const maxRuns = 64

// newLogger returns the daemon's structured logger on stderr.
func newLogger(w io.Writer, format string, debug bool) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// daemonCommand runs the bare form: the daemon, in the foreground (a service manager
// such as systemd does what the Perl version's daemonizing did).
func daemonCommand(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := parseDaemonArgs(args, stderr)
	if err != nil {
		return argsExit(err)
	}
	oneProcessor()
	log, err := newLogger(stderr, c.logFormat, c.debug)
	if err != nil {
		fmt.Fprintln(stderr, "pingmachine:", err)
		return exitBadArgs
	}
	if err := runDaemon(ctx, c, log); err != nil {
		log.Error("pingmachine failed", "err", err)
		return exitFailed
	}
	return exitOK
}

// runDaemon runs until ctx is done (SIGINT or SIGTERM), then finishes the writes under
// way and returns nil.
func runDaemon(ctx context.Context, c daemonConfig, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// A reader of the log that goes away (a closed pipe, a restarted log collector) must
	// not kill the daemon: while SIGPIPE is notified, a write to the broken stderr fails
	// with EPIPE instead of ending the process (os/signal, "SIGPIPE").
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)

	// Sockets first, while the process may still open raw sockets; then the user.
	base, err := filepath.Abs(c.basedir)
	if err != nil {
		return fmt.Errorf("base directory %s: %w", c.basedir, err)
	}
	engine := pinger.New(pinger.Options{Logger: log})
	openSockets(engine, base, log)
	if err := dropPrivileges(c.user, log); err != nil {
		return err
	}

	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("base directory: %w", err)
	}
	unlock, err := lockBase(base)
	if err != nil {
		return err
	}
	defer unlock()
	for _, sub := range []string{"orders", "telegraf", "output", "archive"} {
		if err := os.MkdirAll(filepath.Join(base, sub), 0o755); err != nil {
			return fmt.Errorf("base directory: %w", err)
		}
	}

	// Listening before anything runs, so that an address in use stops the start with a
	// clear message rather than leaving a daemon without its pages.
	var webLn net.Listener
	if c.listen != "" {
		if webLn, err = net.Listen("tcp", c.listen); err != nil {
			return fmt.Errorf("--listen %s: %w", c.listen, err)
		}
		defer webLn.Close()
	}

	var sink *telegraf.Sink
	var sender store.Sender
	if c.telegraf != "" {
		if sink, err = telegraf.Dial(c.telegraf, log); err != nil {
			return err
		}
		sender = sink
	}
	// The live state and the metrics read the store and the live state's counts at a
	// scrape, which comes after all is set up.
	var st *store.Store
	var state *live.State
	src := metrics.Sources{
		Engine: engine.Stats, Sockets: engine.Sockets, Logger: log,
		Store:  func() store.Stats { return st.Stats() },
		Orders: func() live.Counts { return state.Counts() },
	}
	if sink != nil {
		src.Telegraf = sink.Stats
	}
	mets := metrics.New(src)
	state = live.New(base, mets)
	st, err = store.Open(ctx, base, store.Options{RRDCached: c.rrdcached, Telegraf: sender, Observer: state, Logger: log})
	if err != nil {
		return err
	}

	// Everything below stops in order: no new rounds, the engine's and the programs'
	// rounds ended and their results written, then telegraf and the RRD backend, so that
	// every measured round is written.
	work, stopWork := context.WithCancel(context.Background())
	var engineDone, schedDone, watchDone, sinkDone sync.WaitGroup
	engineDone.Go(func() {
		if err := engine.Run(work); err != nil {
			log.Error("ICMP engine", "err", err)
		}
	})
	dnsEngine := dnsping.New(dnsping.Options{Logger: log})
	engineDone.Go(func() {
		if err := dnsEngine.Run(work); err != nil {
			log.Error("DNS engine", "err", err)
		}
	})
	tcp := tcpping.New(tcpping.Options{Logger: log})
	engineDone.Go(func() {
		if err := tcp.Run(work); err != nil {
			log.Error("TCP engine", "err", err)
		}
	})
	sinkCtx, stopSink := context.WithCancel(context.Background())
	if sink != nil {
		sinkDone.Go(func() { sink.Run(sinkCtx) })
	}
	sched := schedule.New(schedule.Config{
		Engine: engine, DNS: dnsEngine, TCP: tcp, Runner: adapter.NewRunner(maxRuns), Store: st, Resolver: net.DefaultResolver,
		HTTPing: c.httping, SCIONDir: c.scionDir, Writers: runtime.GOMAXPROCS(0), Logger: log,
	})
	schedDone.Go(func() { sched.Run(work) })
	watcher := orders.NewWatcher(base, state.Handler(sched), orders.Options{Invalid: state.Invalid, Logger: log})
	watchErr := make(chan error, 1)
	watchDone.Go(func() { watchErr <- watcher.Watch(work) })

	// The web server stops first, so that no page is read from a tree being shut down.
	var ready atomic.Bool
	webCtx, stopWeb := context.WithCancel(context.Background())
	var webDone sync.WaitGroup
	if webLn != nil {
		cfg := web.Config{
			Status:  func() (*view.View, error) { return state.View(), nil },
			Metrics: mets.Handler(),
			Base:    base, Ready: ready.Load, Logger: log,
		}
		webDone.Go(func() {
			if err := web.Serve(webCtx, webLn, cfg); err != nil {
				log.Error("web server", "err", err)
			}
		})
		log.Info("web server listening", "addr", webLn.Addr().String())
	}

	ready.Store(true)
	log.Info("pingmachine started", "basedir", base, "pid", os.Getpid())
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			watcher.Rescan()
		case err := <-watchErr:
			if err != nil {
				runErr = err
				break loop
			}
		}
	}
	ready.Store(false)
	stopWeb()
	webDone.Wait()
	stopWork()
	watchDone.Wait()
	schedDone.Wait()
	engineDone.Wait()
	stopSink()
	sinkDone.Wait()
	if err := st.Close(); err != nil {
		log.Error("closing the RRD backend", "err", err)
	}
	log.Info("pingmachine stopped")
	return runErr
}

// openSockets opens, while the process may still open raw sockets, the ICMP sockets of
// both families with the kernel's choice of source and interface, and those of every
// source and interface that an order present now asks for. Orders that arrive later
// with another source or interface get unprivileged datagram sockets if the system
// allows them, and full loss with the reason logged otherwise.
func openSockets(engine *pinger.Engine, base string, log *slog.Logger) {
	type key struct {
		v6     bool
		source netip.Addr
		iface  string
	}
	keys := map[key]bool{{v6: false}: true, {v6: true}: true}
	for _, o := range orders.Load(base) {
		if o.FPing != nil {
			keys[key{o.FPing.IPv6, o.FPing.Source, o.FPing.Interface}] = true
		}
	}
	for k := range keys {
		if err := engine.Open(k.v6, k.source, k.iface); err != nil {
			// A host without IPv6 still pings over IPv4; the rounds that need a missing
			// socket report it.
			log.Warn("cannot open ICMP socket", "ipv6", k.v6, "source", k.source, "interface", k.iface, "err", err)
		}
	}
}

// lockBase takes the base directory's .lock with an exclusive flock, as the Perl version
// does, so that two daemons never share a tree.
func lockBase(base string) (func(), error) {
	path := filepath.Join(base, ".lock")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("can't write lock file %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("can't lock base directory %s: is pingmachine running already?", base)
		}
		return nil, fmt.Errorf("can't lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// switchUser sets the real and effective user and group ids and the supplementary groups
// to those of name. Go applies each to every thread of the process.
func switchUser(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("--user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	var groups []int
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.Atoi(id); err == nil {
				groups = append(groups, g)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("--user %s: setting groups: %w", name, err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("--user %s: setting group id: %w", name, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("--user %s: setting user id: %w", name, err)
	}
	return nil
}
