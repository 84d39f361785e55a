// Package store keeps the results of pingmachine's orders on disk as the Perl version
// did: output/<id>/main.rrd and output/<id>/last_result, archive/<id> for the outputs of
// orders that went away, and telegraf for whoever listens. Every path it writes is
// inside the base directory.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/store/telegraf"
)

// Series is what the store needs to know of an order.
type Series struct {
	ID          string
	Step        time.Duration
	Pings       int
	RRDTemplate string // "smokeping", "norrd", or another name that means Smokeping's defaults
	Measurement string // telegraf measurement; empty sends nothing
	Tags        map[string]string
}

// Sender takes points for telegraf without blocking.
type Sender interface {
	Send(p telegraf.Point)
}

// Observer hears of each order's last result as the store finds and writes it: the
// daemon's live state and its metrics. Its methods run on the writing goroutines with
// the order's lock held, so they must return at once: no I/O, no waiting.
type Observer interface {
	// Found reports what output/<id>/last_result holds when Prepare readies an order:
	// nil when there is none, err when it cannot be read.
	Found(id string, last *LastResult, err error)
	// Written reports a round the store took: r as measured, and last as last_result
	// now says; err says that last_result could not be written (it holds what it held).
	Written(r Result, last LastResult, err error)
}

// Options configure a Store.
type Options struct {
	// RRDCached is the address of an rrdcached (unix:/path, /path, or host:port) that
	// writes main.rrd instead of this process; it must see the same paths.
	RRDCached string
	Telegraf  Sender   // nil sends nothing
	Observer  Observer // nil tells no one
	Logger    *slog.Logger
	Now       func() time.Time // nil means time.Now
}

// Stats counts the writes that failed since Open, for the daemon's metrics.
type Stats struct {
	RRDErrors        uint64 // rounds main.rrd could not take
	LastResultErrors uint64 // rounds whose last_result could not be written
	// RRDCachedBacklog is the number of updates held while rrdcached is away, and
	// RRDCachedDropped those dropped for want of room; both zero without rrdcached.
	RRDCachedBacklog int
	RRDCachedDropped uint64
}

// Store writes the outputs of the orders below one base directory. Its methods are safe
// for concurrent use; those for one order run one at a time.
type Store struct {
	output, archive string
	base            *beneath
	rrd             backend
	opt             Options
	log             *slog.Logger

	mu     sync.Mutex
	active map[string]*Series

	seed  maphash.Seed
	locks [64]sync.Mutex

	rrdErrors, lastResultErrors atomic.Uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{RRDErrors: s.rrdErrors.Load(), LastResultErrors: s.lastResultErrors.Load()}
	if c, ok := s.rrd.(*cached); ok {
		st.RRDCachedBacklog, st.RRDCachedDropped = c.stats()
	}
	return st
}

// Open returns the store of the base directory, whose output/ and archive/ must exist.
func Open(ctx context.Context, base string, opt Options) (*Store, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		output:  filepath.Join(base, "output"),
		archive: filepath.Join(base, "archive"),
		opt:     opt,
		log:     log,
		active:  make(map[string]*Series),
		seed:    maphash.MakeSeed(),
	}
	var err error
	if s.base, err = openBeneath(base); err != nil {
		return nil, err
	}
	if opt.RRDCached != "" {
		b, err := dialCached(ctx, opt.RRDCached, log)
		if err != nil {
			s.base.close()
			return nil, err
		}
		s.rrd = b
	} else {
		s.rrd = &files{layout: rrdfmt.NativeLayout()}
	}
	return s, nil
}

// Close releases the RRD backend after flushing what it holds.
func (s *Store) Close() error {
	// rrdcached's FLUSHALL only starts the writes; FLUSH of one file waits for it.
	if _, ok := s.rrd.(*cached); ok {
		s.mu.Lock()
		var paths []string
		for id, se := range s.active {
			if se.RRDTemplate != "norrd" {
				out, _ := dir(s.output, id)
				paths = append(paths, filepath.Join(out, "main.rrd"))
			}
		}
		s.mu.Unlock()
		for _, p := range paths {
			if err := s.rrd.flush(p); err != nil {
				s.log.Warn("flushing through rrdcached", "file", p, "err", err)
				if unreachable(err) {
					break // the rest would fail alike; close reports what is lost
				}
			}
		}
	}
	return errors.Join(s.rrd.close(), s.base.close())
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// lock serialises the file operations of one order.
func (s *Store) lock(id string) func() {
	m := &s.locks[maphash.String(s.seed, id)%uint64(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// dir returns output/<id> or archive/<id>. Order ids come from file names below orders/,
// so they are clean relative paths, but a path is checked once more here, where it is
// used: nothing may be written outside the base directory.
func dir(root, id string) (string, error) {
	if err := localID(id); err != nil {
		return "", err
	}
	// A symbolic link below root could lead anywhere: never write through one. What
	// does not exist yet is created as a real directory.
	path := root
	for part := range strings.SplitSeq(id, "/") {
		path = filepath.Join(path, part)
		fi, err := os.Lstat(path)
		if err != nil {
			break
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%s is a symbolic link: nothing is written through it", path)
		}
	}
	return filepath.Join(root, filepath.FromSlash(id)), nil
}

// localID checks that an id names a path below a directory. An id that names the
// directory itself ("." or "a/..") is refused too: Archive would move every order's output.
func localID(id string) error {
	if p := filepath.FromSlash(id); !filepath.IsLocal(p) || filepath.Clean(p) == "." || strings.ContainsRune(id, '\\') {
		return fmt.Errorf("order id %q is not a path inside the base directory", id)
	}
	return nil
}

// isLink reports whether path is a symbolic link.
func isLink(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// Prepare makes an order's output ready for results: its output comes back from the
// archive if it was archived, the directory is created, and main.rrd is created, or
// replaced when it is corrupt or was made for another step or number of pings. It
// returns the time stamp of the last result the output holds (zero if none): the order's
// next result must be stamped later, or main.rrd refuses it.
func (s *Store) Prepare(se Series) (time.Time, error) {
	out, err := dir(s.output, se.ID)
	if err != nil {
		return time.Time{}, err
	}
	defer s.lock(se.ID)()
	// Active before anything can fail: Write retries what failed here (a full disk, say)
	// instead of dropping the results.
	s.mu.Lock()
	s.active[se.ID] = &se
	s.mu.Unlock()
	arch, err := dir(s.archive, se.ID)
	if err == nil {
		err = s.restore(se.ID, out, arch)
	}
	if err != nil {
		s.log.Error("cannot restore archived output", "id", se.ID, "err", err)
	}
	if s.opt.Observer != nil {
		s.found(se.ID, filepath.Join(out, "last_result"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return time.Time{}, fmt.Errorf("store: %w", err)
	}
	last := lastResultTime(filepath.Join(out, "last_result"))
	if se.RRDTemplate != "norrd" {
		rrdLast, err := s.checkRRD(&se, filepath.Join(out, "main.rrd"))
		return latest(last, rrdLast), err
	}
	return last, nil
}

// found tells the observer what the last_result at path holds.
func (s *Store) found(id, path string) {
	r, err := ReadLastResult(path)
	switch {
	case err == nil:
		s.opt.Observer.Found(id, &r, nil)
	case errors.Is(err, fs.ErrNotExist):
		s.opt.Observer.Found(id, nil, nil)
	default:
		s.opt.Observer.Found(id, nil, err)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// lastResultTime is the time stamp in a last_result file, zero if there is none to read.
func lastResultTime(path string) time.Time {
	f, err := openRegular(path)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	b := make([]byte, 64)
	n, _ := io.ReadFull(f, b)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	if v, ok := strings.CutPrefix(line, "time: "); ok {
		if t, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(t, 0)
		}
	}
	return time.Time{}
}

// restore moves archive/<id> back to output/<id>, unless there is an output already.
func (s *Store) restore(id, out, arch string) error {
	if _, err := os.Lstat(arch); err != nil {
		return nil
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("both %s and %s exist: keeping the output, the archive stays", out, arch)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.Rename(arch, out); err != nil {
		return err
	}
	s.log.Info("revived archived order", "id", id)
	s.prune(s.archive, filepath.Dir(arch))
	return nil
}

// checkRRD makes sure main.rrd exists and fits the order, and returns its last update.
func (s *Store) checkRRD(se *Series, path string) (time.Time, error) {
	if isLink(path) {
		return s.replaceCorrupt(se, path, errors.New("main.rrd is a symbolic link"))
	}
	info, err := rrdfmt.ReadInfo(path, rrdfmt.NativeLayout())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.createRRD(se, path)
	case unusable(err):
		return s.replaceCorrupt(se, path, err)
	case err != nil:
		// Unreadable for now (permissions, a lock held too long): not corrupt.
		return time.Time{}, fmt.Errorf("store: %w", err)
	case info.Step != se.Step || len(info.DS) != se.Pings+2:
		// Keep the history under a name that says what it was made for, and that no
		// earlier kept file has.
		old := keptName(path, info.Step, len(info.DS)-2, 0)
		for i := 2; exists(old); i++ {
			old = keptName(path, info.Step, len(info.DS)-2, i)
		}
		if err := s.moveAside(path, old); err != nil {
			return time.Time{}, err
		}
		s.log.Info("step or pings changed: kept the old main.rrd", "id", se.ID, "old", filepath.Base(old))
		if back, last := s.keptFor(se, path); back != "" {
			// The order went back to a step and pings it had: its history goes on.
			if err := os.Rename(back, path); err != nil {
				return time.Time{}, fmt.Errorf("store: %w", err)
			}
			s.log.Info("step and pings as before: took the kept RRD back", "id", se.ID, "kept", filepath.Base(back))
			return last, nil
		}
		return s.createRRD(se, path)
	}
	return info.LastUpdate, nil
}

// keptName is the name main.rrd (path) is kept under when its order's step or pings
// change: main.step<S>.pings<N>.rrd, or with .<n> before .rrd for the n-th such file.
func keptName(path string, step time.Duration, pings, n int) string {
	name := fmt.Sprintf("main.step%d.pings%d", step/time.Second, pings)
	if n > 0 {
		name += "." + strconv.Itoa(n)
	}
	return filepath.Join(filepath.Dir(path), name+".rrd")
}

// keptFor finds the kept RRD made for se's step and pings next to path, the one updated
// last if there are several, and returns it with its last update; "" if there is none.
func (s *Store) keptFor(se *Series, path string) (string, time.Time) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return "", time.Time{}
	}
	plain := filepath.Base(keptName(path, se.Step, se.Pings, 0))
	prefix := strings.TrimSuffix(plain, ".rrd") + "."
	var best string
	var last time.Time
	for _, e := range entries {
		name := e.Name()
		if n, ok := strings.CutPrefix(name, prefix); name != plain && (!ok || !isCount(strings.TrimSuffix(n, ".rrd")) || !strings.HasSuffix(n, ".rrd")) {
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		full := filepath.Join(filepath.Dir(path), name)
		info, err := rrdfmt.ReadInfo(full, rrdfmt.NativeLayout())
		if err == nil && info.Step == se.Step && len(info.DS) == se.Pings+2 && (best == "" || info.LastUpdate.After(last)) {
			best, last = full, info.LastUpdate
		}
	}
	return best, last
}

// isCount reports whether s is a whole number from 2 on, as keptName numbers files.
func isCount(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 2 && strconv.Itoa(n) == s
}

func (s *Store) replaceCorrupt(se *Series, path string, cause error) (time.Time, error) {
	if err := s.moveAside(path, filepath.Join(filepath.Dir(path), "corrupted_main.rrd")); err != nil {
		return time.Time{}, err
	}
	s.log.Warn("detected corrupted RRD file, moved it to corrupted_main.rrd and created a new one", "id", se.ID, "err", cause)
	return s.createRRD(se, path)
}

func (s *Store) moveAside(path, to string) error {
	if err := s.rrd.flush(path); err != nil {
		s.log.Warn("flushing before rename", "file", path, "err", err)
	}
	if err := os.Rename(path, to); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// createRRD creates main.rrd for se and returns its last update, the time it starts at.
func (s *Store) createRRD(se *Series, path string) (time.Time, error) {
	spec := rrdSpec(se.Step, se.Pings, se.RRDTemplate)
	if se.RRDTemplate != "smokeping" {
		s.log.Warn("unknown rrd_template, using Smokeping defaults", "id", se.ID, "rrd_template", se.RRDTemplate)
	}
	// Two steps back: the first round's stamp is one step back and must be later.
	now := s.opt.Now().Unix()
	step := int64(se.Step / time.Second)
	spec.Start = time.Unix(now-now%step-2*step, 0)
	if err := s.rrd.create(path, spec); err != nil {
		return time.Time{}, fmt.Errorf("store: creating %s: %w", path, err)
	}
	return spec.Start, nil
}

// Archive moves an order's output to archive/<id>. Results of the order that arrive
// later are dropped. An order without output is no error.
func (s *Store) Archive(id string) error {
	out, err := dir(s.output, id)
	if err != nil {
		return err
	}
	arch, err := dir(s.archive, id)
	if err != nil {
		return fmt.Errorf("store: archiving %s: %w", id, err)
	}
	defer s.lock(id)()
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
	if _, err := os.Lstat(out); err != nil {
		return nil
	}
	if err := s.rrd.flush(filepath.Join(out, "main.rrd")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("flushing before archiving", "id", id, "err", err)
	}
	if err := os.MkdirAll(filepath.Dir(arch), 0o755); err != nil {
		return fmt.Errorf("store: archiving %s: %w", id, err)
	}
	// rename(2) replaces an empty directory but not a full one: an archive that is
	// already there is kept, and so is the output.
	// os.Rename refuses any existing directory as the target, so rename(2) itself.
	if err := syscall.Rename(out, arch); err != nil {
		err = &os.LinkError{Op: "rename", Old: out, New: arch, Err: err}
		return fmt.Errorf("store: can't archive output to %s: %w", arch, err)
	}
	s.prune(s.output, filepath.Dir(out))
	return nil
}

// prune removes the empty directories from dir up to root, which stays.
func (s *Store) prune(root, dir string) {
	for dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// Reconcile archives the outputs in output/ whose orders are not present: those of
// orders deleted while the daemon was stopped. An output is a directory holding
// last_result or main.rrd.
func (s *Store) Reconcile(present map[string]bool) {
	var gone []string
	filepath.WalkDir(s.output, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || path == s.output {
			return nil
		}
		if !isOutput(path) {
			return nil
		}
		rel, _ := filepath.Rel(s.output, path)
		if id := filepath.ToSlash(rel); !present[id] {
			gone = append(gone, id)
		}
		return filepath.SkipDir
	})
	for _, id := range gone {
		s.mu.Lock()
		active := s.active[id] != nil
		s.mu.Unlock()
		if active {
			continue
		}
		if err := s.Archive(id); err != nil {
			s.log.Error("archiving the output of a missing order", "id", id, "err", err)
			continue
		}
		s.log.Info("archived the output of a missing order", "id", id)
	}
}

func isOutput(dir string) bool {
	for _, name := range []string{"last_result", "main.rrd"} {
		if fi, err := os.Lstat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// Write records a round: main.rrd, then last_result, then telegraf, then the observer. A result for an
// order that is not prepared, or for another step or number of pings than the prepared
// version, is dropped.
func (s *Store) Write(r Result) error {
	if err := localID(r.ID); err != nil {
		return err
	}
	defer s.lock(r.ID)()
	s.mu.Lock()
	cur := s.active[r.ID]
	s.mu.Unlock()
	if cur == nil || cur.Step != r.Step || cur.Pings != len(r.RTTs) {
		s.log.Debug("discarding results for a removed or changed order", "id", r.ID)
		return nil
	}
	se := cur
	sum := r.summarize()
	var errs []error
	if se.RRDTemplate != "norrd" {
		if err := s.updateRRD(se, r.ID, r.Time, sum); err != nil {
			s.rrdErrors.Add(1)
			errs = append(errs, err)
		}
	}
	text, lerr := s.writeLastResult(se, r.ID, r.Time, sum)
	if lerr != nil {
		s.lastResultErrors.Add(1)
		errs = append(errs, lerr)
	}
	if s.opt.Telegraf != nil && se.Measurement != "" {
		s.opt.Telegraf.Send(telegraf.Point{
			Measurement: se.Measurement, Tags: se.Tags, Time: r.Time, Step: se.Step, RTTs: r.RTTs,
		})
	}
	if s.opt.Observer != nil {
		// Read back from the text, so that the figures are exactly those a reader of
		// the file gets (rounded to %.6e).
		last, err := parseLastResult(text)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("store: reading back last_result: %w", err))...)
		}
		s.opt.Observer.Written(r, last, lerr)
	}
	return errors.Join(errs...)
}

// updateRRD applies a round to main.rrd, replacing a missing or corrupt file first.
// The usual case opens it in one call that refuses any symbolic link on the way; when
// that cannot be, the directories are checked one by one and made again if they went.
func (s *Store) updateRRD(se *Series, id string, t time.Time, sum summary) error {
	u := rrdfmt.Update{Time: t, Values: sum.rrdValues()}
	opened, err := s.rrd.updateBeneath(s.base, "output/"+id+"/main.rrd", u)
	if opened && err == nil {
		return nil
	}
	out, derr := dir(s.output, id)
	if derr != nil {
		return derr
	}
	// The directory may have been removed under us; the results still have a home.
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(out, "main.rrd")
	if !opened {
		if isLink(path) {
			if _, err := s.replaceCorrupt(se, path, errors.New("main.rrd is a symbolic link")); err != nil {
				return err
			}
		}
		if err = s.rrd.update(path, u); err == nil {
			return nil
		}
	}
	switch _, serr := os.Lstat(path); {
	case errors.Is(serr, fs.ErrNotExist):
		_, err = s.createRRD(se, path)
	case errors.Is(err, rrdfmt.ErrNotRRD) || s.rrd.corrupt(err):
		_, err = s.replaceCorrupt(se, path, err)
	default:
		return fmt.Errorf("store: error while updating %s: %w", path, err)
	}
	if err != nil {
		return err
	}
	// The new file starts before this round: what was measured is not lost.
	if err := s.rrd.update(path, u); err != nil {
		return fmt.Errorf("store: error while updating %s: %w", path, err)
	}
	return nil
}

// writeLastResult replaces last_result with the round's figures: written to a temporary
// file and renamed over the old one, so that a reader always finds a whole file. Its
// directory is created if it went away. It returns the text, written or not.
func (s *Store) writeLastResult(se *Series, id string, t time.Time, sum summary) ([]byte, error) {
	value := func(d time.Duration) string {
		if len(sum.sorted) == 0 {
			return "~"
		}
		return seconds(d)
	}
	var b strings.Builder
	b.WriteString("time: " + strconv.FormatInt(t.Unix(), 10) + "\n")
	b.WriteString("updated: " + strconv.FormatInt(s.opt.Now().Unix(), 10) + "\n")
	b.WriteString("step: " + strconv.FormatInt(int64(se.Step/time.Second), 10) + "\n")
	b.WriteString("pings: " + strconv.Itoa(se.Pings) + "\n")
	b.WriteString("loss: " + strconv.Itoa(sum.loss) + "\n")
	b.WriteString("min: " + value(sum.min) + "\n")
	b.WriteString("median: " + value(sum.median) + "\n")
	b.WriteString("max: " + value(sum.max) + "\n")
	text := []byte(b.String())
	return text, s.base.replace("output/"+id, "last_result", text)
}
