package orders

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// Reason says why an order went away.
type Reason int

const (
	Deleted Reason = iota // its file was removed or renamed
	Expired               // its file was not refreshed within MaxAge; the watcher removed it
)

func (r Reason) String() string {
	if r == Expired {
		return "expired"
	}
	return "deleted"
}

// Handler receives a Watcher's findings. Its methods are called one at a time from the
// goroutine running Watch.
type Handler interface {
	// Update reports a new order, or a new version of a known one.
	Update(o *Order)
	// Remove reports that an order went away. For an expired order it is called before
	// the file is removed, also when the order was never valid, so that its output can be
	// archived.
	Remove(id string, why Reason)
	// Scanned is called after every full scan that could read every directory, with
	// the id of every order file present, valid or not. A scan that could not read one
	// does not know the orders below it, and does not call it.
	Scanned(ids map[string]bool)
}

// Options tune a Watcher. The zero value gives the defaults.
type Options struct {
	// MaxAge is how long an order lives without its file being refreshed: 3660 s (an
	// hour plus a margin, as the Perl version).
	MaxAge time.Duration
	// Rescan is the period of full scans, the safety net under file system events, and
	// when expiry is checked: 60 s.
	Rescan time.Duration
	// Settle is how long a file must be left alone (no event naming it) before it is
	// read, so that a file being written is read once, when done: 500 ms. A writer
	// that pauses longer is read half-way; clients had better write a temporary file
	// and rename it into place, which is one event.
	Settle time.Duration
	// MaxSettle bounds the wait of a file that keeps changing: it is read at most this
	// long after the first event that named it: 2 s.
	MaxSettle time.Duration
	// Invalid, if set, hears of each file found not to be a valid order, with the error
	// logged, from the goroutine running Watch; and, with a nil error, of a file whose id
	// CheckID refused going away, which the Handler never hears of.
	Invalid func(id string, err error)
	Logger  *slog.Logger
	// Now is the clock that judges expiry; nil means time.Now.
	Now func() time.Time
}

// Watcher follows the orders/ tree of a base directory (and telegraf/, whose files add
// telegraf settings to the order of the same id) and tells its Handler what changed.
//
// Names starting with '.' or ending in ".tmp", "~", ".swp" or ".swx" are not orders:
// clients write a temporary file and rename it into place. An invalid file is logged once
// per change and left where it is; if a valid version of it was loaded before, that
// version goes on running.
//
// orders/ (and telegraf/) may be a symbolic link to a directory elsewhere, as
// configuration management often assembles a base directory; it is followed, as the Perl
// version did, and logged. So an expired order file is removed wherever orders/ leads:
// removing it is what the contract asks. No other link is followed to a directory,
// neither while reading nor while removing; a link to a file is an order.
type Watcher struct {
	base             string
	orders, telegraf string
	handler          Handler
	opt              Options
	log              *slog.Logger
	known            map[string]*entry
	unreadable       map[string]string // directory id -> the error last logged
	links            map[string]string // orders/ or telegraf/ -> where it leads, as logged
	rescan           chan struct{}
}

// entry is what the watcher knows about one order file.
type entry struct {
	stat     fileStat
	tstat    fileStat // of telegraf/<id>
	sum      [sha256.Size]byte
	order    *Order // the version handed to the Handler, nil if none
	invalid  bool
	refused  bool // its id is not one the store can take (CheckID)
	seen     bool // in the scan under way
	expiring bool // expired, but the file could not be removed
}

type fileStat struct {
	size  int64
	mtime time.Time
	ino   uint64
	ctime int64
}

func statOf(fi fs.FileInfo) fileStat {
	s := fileStat{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
		s.ctime = int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec)
	}
	return s
}

// NewWatcher returns a Watcher of base/orders and base/telegraf.
func NewWatcher(base string, h Handler, opt Options) *Watcher {
	base = filepath.Clean(base) // as fsnotify names the events of its watch
	if opt.MaxAge == 0 {
		opt.MaxAge = 3660 * time.Second
	}
	if opt.Rescan == 0 {
		opt.Rescan = time.Minute
	}
	if opt.Settle == 0 {
		opt.Settle = 500 * time.Millisecond
	}
	if opt.MaxSettle == 0 {
		opt.MaxSettle = 2 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		base:       base,
		orders:     filepath.Join(base, "orders"),
		telegraf:   filepath.Join(base, "telegraf"),
		handler:    h,
		opt:        opt,
		log:        log,
		known:      make(map[string]*entry),
		unreadable: make(map[string]string),
		links:      make(map[string]string),
		rescan:     make(chan struct{}, 1),
	}
}

// Rescan asks for a full scan now (on SIGHUP, say). It does not wait.
func (w *Watcher) Rescan() {
	select {
	case w.rescan <- struct{}{}:
	default:
	}
}

// Ignored reports whether a file or directory name is not an order: hidden files and
// the temporary files of editors and of clients that write then rename.
func Ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") ||
		strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swx")
}

// Watch scans the tree, then follows it until ctx is done. It returns an error only
// when the file system events cannot be had at all.
//
// inotify watches directories, not paths: the watch of a directory moves with it, and
// is lost with it when it is removed. So the base directory is watched too, for orders/
// and telegraf/ made anew, the watches of a renamed directory are dropped (fsnotify
// would go on naming its events by the old path) and set up again under the new name,
// and every scan repairs the watches that events could not.
func (w *Watcher) Watch(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("orders: watching %s: %w", w.orders, err)
	}
	defer fw.Close()
	if err := fw.Add(w.base); err != nil {
		w.log.Warn("watching orders", "dir", w.base, "err", err)
	}
	w.addWatches(fw, w.orders)
	w.addWatches(fw, w.telegraf)
	w.scan(fw)

	ticker := time.NewTicker(w.opt.Rescan)
	defer ticker.Stop()
	pending := newSettling(w.opt.Settle, w.opt.MaxSettle)
	defer pending.timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			w.scan(fw)
		case <-w.rescan:
			w.log.Info("rescanning orders")
			w.scan(fw)
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if filepath.Dir(ev.Name) == w.base && ev.Name != w.orders && ev.Name != w.telegraf {
				continue // output/, archive/, .lock
			}
			pending.add(ev.Name, time.Now())
			if ev.Has(fsnotify.Rename) && fw.Remove(ev.Name) == nil {
				// A watched directory moved away, or (under its new name) about to be
				// watched afresh; so are the directories below it.
				for _, p := range fw.WatchList() {
					if strings.HasPrefix(p, ev.Name+string(filepath.Separator)) {
						fw.Remove(p)
					}
				}
			}
			if ev.Has(fsnotify.Create) {
				// A new directory must be watched before files appear in it; those
				// that already did are found by scanning it when the events settle.
				fi, err := os.Lstat(ev.Name)
				if ev.Name == w.orders || ev.Name == w.telegraf || err == nil && fi.IsDir() && !Ignored(fi.Name()) {
					w.addWatches(fw, ev.Name)
				}
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflowed event queue lost events: only a full scan makes up for it.
			w.log.Warn("watching orders", "err", err)
			w.scan(fw)
		case <-pending.timer.C:
			w.changed(fw, pending.due(time.Now()))
		}
	}
}

// settling holds the paths named by events until they are due to be read: when left
// alone for settle, or maxWait after their first event if they keep changing.
type settling struct {
	settle, maxWait time.Duration
	paths           map[string]span
	timer           *time.Timer // runs while paths is not empty
}

// span is when the first and the last event of a settling path came.
type span struct{ first, last time.Time }

func newSettling(settle, maxWait time.Duration) *settling {
	s := &settling{settle: settle, maxWait: maxWait, paths: make(map[string]span), timer: time.NewTimer(time.Hour)}
	s.timer.Stop()
	return s
}

// add notes an event naming path at now. The timer runs for no longer than settle, so
// that it fires no later than path is due.
func (s *settling) add(path string, now time.Time) {
	if len(s.paths) == 0 {
		s.timer.Reset(s.settle)
	}
	sp, ok := s.paths[path]
	if !ok {
		sp.first = now
	}
	sp.last = now
	s.paths[path] = sp
}

// due takes the paths due at now, and sets the timer for the next. Paths that fall due
// soon after are left for a little later, so that a burst of events is read in a few
// batches, not one path at a time.
func (s *settling) due(now time.Time) map[string]bool {
	due := make(map[string]bool)
	var next time.Time
	for path, sp := range s.paths {
		at := sp.last.Add(s.settle)
		if limit := sp.first.Add(s.maxWait); limit.Before(at) {
			at = limit
		}
		if !at.After(now) {
			due[path] = true
			delete(s.paths, path)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if len(s.paths) > 0 {
		s.timer.Reset(max(next.Sub(now), s.settle/10))
	}
	return due
}

// addWatches watches the directory dir of the orders or the telegraf tree and every
// directory below it. A directory that cannot be read cannot be watched either; the
// scans report it.
func (w *Watcher) addWatches(fw *fsnotify.Watcher, dir string) {
	for _, root := range []string{w.orders, w.telegraf} {
		rel, ok := strings.CutPrefix(dir, root)
		if !ok || rel != "" && rel[0] != filepath.Separator {
			continue
		}
		walkTree(root, filepath.ToSlash(strings.TrimPrefix(rel, string(filepath.Separator))), func(id string, d fs.DirEntry, err error) {
			if err == nil && d.IsDir() {
				w.watch(fw, filepath.Join(root, filepath.FromSlash(id)))
			}
		})
		return
	}
}

func (w *Watcher) watch(fw *fsnotify.Watcher, dir string) {
	if err := fw.Add(dir); err != nil {
		w.log.Warn("watching orders", "dir", dir, "err", err)
	}
}

// rewatch makes fw watch the directories given, and base, and no others: it drops the
// watches of directories that moved or went away, since fsnotify names their events by
// a path that is no more, and adds the missing ones. A directory given as false is only
// kept: one that cannot be read cannot be watched anew, but its watch still tells when
// it can be read again.
func (w *Watcher) rewatch(fw *fsnotify.Watcher, dirs map[string]bool) {
	for _, p := range fw.WatchList() {
		if _, ok := dirs[p]; !ok && p != w.base {
			fw.Remove(p)
		}
	}
	for dir, add := range dirs {
		if add {
			w.watch(fw, dir)
		}
	}
}

// scan examines every order file and forgets the orders whose files are gone. The
// orders below a directory it cannot read are kept as they are: the directory is not
// gone, and they may well be there still. Then it repairs the watches.
func (w *Watcher) scan(fw *fsnotify.Watcher) {
	w.noteLinks()
	for _, e := range w.known {
		e.seen = false
	}
	read, blocked := w.walk("")
	dirs := make(map[string]bool, len(read)+len(blocked))
	for id := range read {
		dirs[w.path(id)] = true
	}
	for _, id := range blocked {
		dirs[w.path(id)] = false
	}
	walkTree(w.telegraf, "", func(id string, d fs.DirEntry, err error) {
		if err == nil && d.IsDir() {
			dirs[filepath.Join(w.telegraf, filepath.FromSlash(id))] = true
		}
	})
	w.rewatch(fw, dirs)

	present := make(map[string]bool, len(w.known))
	for id, e := range w.known {
		if !e.seen && !slices.ContainsFunc(blocked, func(dir string) bool { return below(id, dir) }) {
			w.forget(id)
			continue
		}
		present[id] = true
	}
	// Only a scan that read every directory knows every order present; the handler
	// would take an order below an unreadable one for gone.
	if len(blocked) == 0 {
		w.handler.Scanned(present)
	}
}

// walk checks every order file below the directory dir (an id, "" for orders/ itself),
// marking them seen, and returns the directories it read and those below which it could
// not. Each of the latter is logged once, until it changes.
func (w *Watcher) walk(dir string) (read map[string]bool, blocked []string) {
	read = make(map[string]bool)
	walkTree(w.orders, dir, func(id string, d fs.DirEntry, err error) {
		switch {
		case err != nil:
			blocked = append(blocked, id)
			delete(read, id)
			if w.unreadable[id] != err.Error() {
				w.unreadable[id] = err.Error()
				w.log.Warn("cannot read an orders directory: the orders below it are kept as they are",
					"dir", path.Join("orders", id), "err", err)
			}
		case d.IsDir():
			read[id] = true
		default:
			w.check(id, w.path(id))
		}
	})
	for id := range w.unreadable {
		switch {
		case read[id]:
			w.log.Info("the orders directory can be read again", "dir", path.Join("orders", id))
			delete(w.unreadable, id)
		case below(id, dir) && !slices.ContainsFunc(blocked, func(b string) bool { return below(id, b) }):
			delete(w.unreadable, id) // gone
		}
	}
	return read, blocked
}

// noteLinks logs where orders/ and telegraf/ lead when they are symbolic links, once
// each time that changes.
func (w *Watcher) noteLinks() {
	for _, root := range []string{w.orders, w.telegraf} {
		var to string
		var err error
		if fi, lerr := os.Lstat(root); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if to, err = filepath.EvalSymlinks(root); err != nil {
				to = err.Error()
			}
		}
		if to == w.links[root] {
			continue
		}
		w.links[root] = to
		switch {
		case err != nil:
			w.log.Warn("a symbolic link that leads nowhere in place of a directory", "dir", root, "err", err)
		case to != "":
			w.log.Info("reading a directory through a symbolic link", "dir", root, "from", to)
		}
	}
}

// below reports whether the id names dir or something below it; every id is below "".
func below(id, dir string) bool {
	return dir == "" || id == dir || strings.HasPrefix(id, dir+"/")
}

// walkTree calls fn, as filepath.WalkDir does, for the directory dir below root (an id,
// "" for root itself) and for every file and directory below it, with ids for paths;
// ignored names (and what is below them) are left out. fn hears of a directory before
// its entries are read, and again with the error if they cannot be; a vanished one is
// no error. root itself is followed if it is a symbolic link, nothing below it is.
func walkTree(root, dir string, fn func(id string, d fs.DirEntry, err error)) {
	start := filepath.Join(root, filepath.FromSlash(dir))
	if dir == "" {
		// With a trailing separator, the lstat that WalkDir starts with follows a link.
		start += string(filepath.Separator)
	}
	filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		id := dir
		if p != start {
			id = path.Join(dir, filepath.ToSlash(strings.TrimPrefix(p[len(start):], string(filepath.Separator))))
			if Ignored(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			fn(id, d, err)
		}
		return nil
	})
}

// Load reads the valid orders below base/orders once, as the Watcher's first scan
// finds them, without telegraf settings; invalid files are skipped (the Watcher reports
// them). The daemon opens the sockets they need with it before it drops privileges.
func Load(base string) []*Order {
	var found []*Order
	Walk(base, "", func(_ string, o *Order, err error) {
		if err == nil {
			found = append(found, o)
		}
	})
	return found
}

// Walk reads the order files below base/orders as the Watcher's scans find them, and
// calls fn with each id and what Read returns for it, in the order of the ids, on the
// caller's goroutine (the files are read on every processor before). A directory that
// cannot be read is reported with its id and the error. Walk changes nothing and reads
// no telegraf settings.
//
// dir (an id, "" for all of orders/) restricts the walk to the order file of that id, or
// to the directory of that id and what is below it. An ignored name, or a link to a
// directory, on the way to dir leads to no order, as for the Watcher.
func Walk(base, dir string, fn func(id string, o *Order, err error)) {
	root := filepath.Join(base, "orders")
	if dir != "" && !reachable(root, dir) {
		return
	}
	type found struct {
		id    string
		order *Order
		err   error
		file  bool // to read
	}
	var list []found
	walkTree(root, dir, func(id string, d fs.DirEntry, err error) {
		switch {
		case err != nil:
			list = append(list, found{id: id, err: fmt.Errorf("%s: cannot read the directory: %w", path.Join("orders", id), err)})
		case !d.IsDir():
			list = append(list, found{id: id, file: true})
		}
	})
	// Parsing takes most of the time: the files are read on every processor.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(list)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(list)); i = next.Add(1) - 1 {
				if f := &list[i]; f.file {
					f.order, f.err = Read(base, f.id)
				}
			}
		})
	}
	wg.Wait()
	for _, f := range list {
		// Gone since the directory was read, a link that leads nowhere or to a
		// directory: not an order, and the Watcher says nothing of it either.
		if !errors.Is(f.err, fs.ErrNotExist) && !errors.Is(f.err, errIsDir) {
			fn(f.id, f.order, f.err)
		}
	}
}

// reachable reports whether the Watcher reaches the id below root: a clean local path
// without an ignored name, through directories that are not links.
func reachable(root, id string) bool {
	if path.Clean(id) != id || !filepath.IsLocal(filepath.FromSlash(id)) || hiddenPath(id) {
		return false
	}
	names := strings.Split(id, "/")
	for i := range names[:len(names)-1] {
		fi, err := os.Lstat(filepath.Join(root, filepath.Join(names[:i+1]...)))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// Read reads the order file of an id below base/orders as the Watcher does, and
// returns the order or the error the Watcher logs for the file: an *Error when the id is
// one the store cannot take or the file is not a valid order, an error naming the file
// when it cannot be read. It reads no telegraf settings.
func Read(base, id string) (*Order, error) {
	file := filepath.Join("orders", filepath.FromSlash(id))
	if err := CheckID(base, id); err != nil {
		return nil, refusedID(file, err)
	}
	return readFile(filepath.Join(base, "orders", filepath.FromSlash(id)), file, id)
}

// ReadFile reads an order file anywhere, as the Watcher reads one below orders/, with
// the Watcher's errors naming the file by path.
func ReadFile(path string) (*Order, error) {
	return readFile(path, path, filepath.ToSlash(path))
}

// errIsDir is readFile's error for a directory (or a link to one), which the Watcher
// skips: it follows no link to a directory.
var errIsDir = errors.New("a directory, not an order file")

// readFile reads and parses the order file at path, naming it file in errors. Only a
// regular file is opened.
func readFile(path, file, id string) (*Order, error) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
	case fi.IsDir():
		err = errIsDir
	case !fi.Mode().IsRegular():
		err = notRegular(fi.Mode())
	}
	var data []byte
	if err == nil {
		data, err = readLimited(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return Parse(file, id, data)
}

// refusedID is the error of an order file whose id CheckID refuses.
func refusedID(file string, err error) error {
	return &Error{File: file, Problems: []Problem{{Msg: err.Error()}}}
}

// path is the file of an order id.
func (w *Watcher) path(id string) string {
	return filepath.Join(w.orders, filepath.FromSlash(id))
}

// id is the order id of a path below orders/.
func (w *Watcher) id(path string) (string, bool) {
	rel, err := filepath.Rel(w.orders, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// changed handles the paths named by a batch of events. A directory made, renamed or
// removed ends the batch with a full scan: inotify tells of a renamed directory with
// two events that may reach the watcher apart, or, under load, a directory renamed
// away and another made under its name may look like one directory changed; only a
// scan tells the orders that went from those that came.
func (w *Watcher) changed(fw *fsnotify.Watcher, paths map[string]bool) {
	rescan := false
	for path := range paths {
		if path == w.orders || path == w.telegraf {
			// Made, removed or replaced as a whole.
			rescan = true
			continue
		}
		if rel, err := filepath.Rel(w.telegraf, path); err == nil && !strings.HasPrefix(rel, "..") {
			path = filepath.Join(w.orders, rel)
		}
		id, ok := w.id(path)
		if !ok {
			continue
		}
		fi, err := os.Stat(path)
		switch {
		case err == nil && fi.IsDir():
			// Made, renamed into place, or its permissions changed.
			rescan = rescan || !Ignored(fi.Name())
		case err == nil:
			if !hiddenPath(id) {
				w.check(id, path)
			}
		case errors.Is(err, fs.ErrNotExist):
			if w.known[id] != nil {
				w.forget(id)
				continue
			}
			// A directory, gone with the orders below it.
			rescan = rescan || w.knownBelow(id)
		}
		// Otherwise it cannot be told (its directory cannot be searched, say); the
		// next scan reports why.
	}
	if rescan {
		w.scan(fw)
	}
}

// knownBelow reports whether an order below the directory dir (an id) is known.
func (w *Watcher) knownBelow(dir string) bool {
	for id := range w.known {
		if below(id, dir) {
			return true
		}
	}
	return false
}

// hiddenPath reports whether any element of an id is ignored.
func hiddenPath(id string) bool {
	return slices.ContainsFunc(strings.Split(id, "/"), Ignored)
}

// forget drops an order whose file is gone. The handler hears of it even if the order
// was never valid, since an output of an earlier run may be left to archive; but not of
// an id the store refuses, which has no output.
func (w *Watcher) forget(id string) {
	switch e := w.known[id]; {
	case e == nil:
	case e.refused:
		w.refusedGone(id)
	default:
		w.handler.Remove(id, Deleted)
	}
	delete(w.known, id)
}

// check reads an order file if it changed since it was last read, and expires it when
// it has not been refreshed in time. A file that is not a regular one (a named pipe, a
// device) is never opened: it is reported once, as an invalid order is.
func (w *Watcher) check(id, path string) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir() {
		// Gone, which the next scan notices, or a linked directory, which is not followed.
		return
	}
	file := filepath.Join("orders", filepath.FromSlash(id))
	e := w.known[id]
	if e == nil {
		e = &entry{}
		w.known[id] = e
		if err := CheckID(w.base, id); err != nil {
			e.refused = true
			w.invalid(id, e, refusedID(file, err))
		}
	}
	e.seen = true
	if err != nil {
		// It cannot be examined (its directory cannot be searched, say), but it is not
		// gone: like an unreadable file, it is reported once, and what was loaded of it
		// goes on.
		if e.stat != (fileStat{}) || !e.invalid {
			e.stat = fileStat{}
			w.invalid(id, e, fmt.Errorf("%s: %w", file, err))
		}
		return
	}
	regular := fi.Mode().IsRegular()
	if age := w.opt.Now().Sub(fi.ModTime()); regular && age > w.opt.MaxAge {
		w.expire(id, e, age)
		return
	}
	e.expiring = false
	if e.refused {
		return
	}
	st := statOf(fi)
	tpath := filepath.Join(w.telegraf, filepath.FromSlash(id))
	var tst fileStat
	if tfi, err := os.Stat(tpath); err == nil && tfi.Mode().IsRegular() {
		tst = statOf(tfi)
	}
	if st == e.stat && tst == e.tstat {
		return
	}
	e.stat, e.tstat = st, tst
	var data []byte
	if regular {
		data, err = readLimited(path)
	} else {
		err = notRegular(fi.Mode())
	}
	if err != nil {
		w.invalid(id, e, fmt.Errorf("%s: %w", file, err))
		return
	}
	tfile := filepath.Join("telegraf", filepath.FromSlash(id))
	var tdata []byte
	if tst != (fileStat{}) {
		if tdata, err = readLimited(tpath); err != nil {
			w.log.Warn("ignoring unreadable telegraf file", "id", id, "file", tfile, "err", err)
			tst = fileStat{}
		}
	}
	sum := sha256.Sum256(append(append(slices.Clip(data), 0), tdata...))
	if sum == e.sum && (e.order != nil || e.invalid) {
		return
	}
	e.sum = sum
	o, err := Parse(file, id, data)
	if err != nil {
		w.invalid(id, e, err)
		return
	}
	if tst != (fileStat{}) {
		t, err := ParseTelegraf(tfile, tdata)
		if err != nil {
			// The order is fine; only its telegraf settings fall back to its own.
			w.log.Warn("ignoring invalid telegraf file", "id", id, "err", err)
		} else {
			o.Telegraf = t
		}
	}
	e.invalid = false
	e.order = o
	w.handler.Update(o)
}

// refusedGone tells Options.Invalid that the file of a refused id went away.
func (w *Watcher) refusedGone(id string) {
	if w.opt.Invalid != nil {
		w.opt.Invalid(id, nil)
	}
}

func (w *Watcher) invalid(id string, e *entry, err error) {
	e.invalid = true
	if w.opt.Invalid != nil {
		w.opt.Invalid(id, err)
	}
	if e.order != nil {
		w.log.Warn("invalid order, the previous version goes on", "id", id, "err", err)
		return
	}
	w.log.Warn("invalid order", "id", id, "err", err)
}

// expire removes an order that was not refreshed in time, after its output is archived.
func (w *Watcher) expire(id string, e *entry, age time.Duration) {
	if !e.expiring {
		w.log.Info("archiving old order", "id", id, "age", age.Truncate(time.Second).String())
		if !e.refused {
			w.handler.Remove(id, Expired)
		} else {
			w.refusedGone(id)
		}
		e.order = nil
	}
	if err := removeBelow(w.orders, id); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if !e.expiring {
			w.log.Error("cannot remove expired order", "id", id, "err", err)
		}
		e.expiring = true
		return
	}
	delete(w.known, id)
}

// removeBelow removes the file (or link) of an id below root. It follows root if that
// is a symbolic link, but no link between root and the file: a directory of the id
// swapped for a link since it was walked cannot lead the removal out of the tree.
func removeBelow(root, id string) error {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: root, Err: err}
	}
	names := strings.Split(id, "/")
	for i, name := range names[:len(names)-1] {
		sub, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dir)
		if err != nil {
			return &fs.PathError{Op: "open", Path: filepath.Join(root, filepath.Join(names[:i+1]...)), Err: err}
		}
		dir = sub
	}
	defer unix.Close(dir)
	if err := unix.Unlinkat(dir, names[len(names)-1], 0); err != nil {
		return &fs.PathError{Op: "unlink", Path: filepath.Join(root, filepath.FromSlash(id)), Err: err}
	}
	return nil
}

// readLimited reads a regular file of at most MaxSize bytes. The file was examined by
// name before, but what the name leads to can change in between: it is opened without
// blocking, since opening a named pipe waits for a writer, possibly for ever, and with
// it the watcher and the daemon's shutdown; and without making a terminal the
// controlling one. Then what was opened is checked.
func readLimited(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(fi.Mode())
	}
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if n > MaxSize {
		return nil, fmt.Errorf("larger than the %d bytes an order may have", MaxSize)
	}
	return b.Bytes(), nil
}

// notRegular says what a file that is not a regular file is.
func notRegular(mode fs.FileMode) error {
	kind := "special file"
	switch mode.Type() {
	case fs.ModeDir:
		kind = "directory"
	case fs.ModeNamedPipe:
		kind = "named pipe (FIFO)"
	case fs.ModeSocket:
		kind = "socket"
	case fs.ModeDevice:
		kind = "block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		kind = "character device"
	}
	return fmt.Errorf("not a regular file but a %s", kind)
}
