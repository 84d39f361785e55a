package rrdfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Spec describes a new RRD file.
type Spec struct {
	Step  time.Duration // the PDP step, in whole seconds
	Start time.Time     // the file's last update time at creation; the zero value means 10 s ago, as rrdtool
	DS    []DS
	RRA   []RRA
	// Layout of the file; the zero value is LP64. Use NativeLayout for the running CPU.
	Layout Layout
}

var (
	dsNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,19}$`)
	knownCF   = []string{"AVERAGE", "MIN", "MAX", "LAST"}
	knownType = []string{"GAUGE", "COUNTER", "DERIVE", "ABSOLUTE", "DCOUNTER", "DDERIVE"}
)

func (s Spec) check() error {
	if s.Step < time.Second || s.Step%time.Second != 0 {
		return fmt.Errorf("step %v: want a whole number of seconds", s.Step)
	}
	if len(s.DS) == 0 || len(s.DS) > maxDS || len(s.RRA) == 0 || len(s.RRA) > maxRRA {
		return fmt.Errorf("%d data sources and %d RRAs: want 1..%d of each", len(s.DS), len(s.RRA), maxDS)
	}
	seen := map[string]bool{}
	for _, d := range s.DS {
		switch {
		case !dsNameRE.MatchString(d.Name):
			return fmt.Errorf("data source name %q: want 1-19 characters of [a-zA-Z0-9_-]", d.Name)
		case seen[d.Name]:
			return fmt.Errorf("data source %q defined twice", d.Name)
		case !slices.Contains(knownType, d.Type):
			return fmt.Errorf("data source %s: type %q is not supported (want %v)", d.Name, d.Type, knownType)
		case d.Heartbeat < 1:
			return fmt.Errorf("data source %s: heartbeat must be at least 1 s", d.Name)
		case !math.IsNaN(d.Min) && !math.IsNaN(d.Max) && d.Min >= d.Max:
			return fmt.Errorf("data source %s: min %v must be below max %v", d.Name, d.Min, d.Max)
		}
		seen[d.Name] = true
	}
	for i, r := range s.RRA {
		switch {
		case !slices.Contains(knownCF, r.CF):
			return fmt.Errorf("RRA %d: consolidation function %q is not supported (want %v)", i, r.CF, knownCF)
		case r.XFF < 0 || r.XFF >= 1 || math.IsNaN(r.XFF):
			return fmt.Errorf("RRA %d: xff %v must be in [0, 1)", i, r.XFF)
		case r.PDPs < 1 || r.Rows < 1:
			return fmt.Errorf("RRA %d: want at least one PDP per row and one row", i)
		}
	}
	return nil
}

// Create writes a new RRD file as rrdtool create would, with every row unknown. It refuses
// to replace an existing file. The file appears complete or not at all.
func Create(path string, spec Spec) error {
	if err := spec.check(); err != nil {
		return fmt.Errorf("rrdfmt: creating %s: %w", path, err)
	}
	start := spec.Start
	if start.IsZero() {
		start = time.Now().Add(-10 * time.Second)
	}
	version := "0003"
	if slices.ContainsFunc(spec.DS, func(d DS) bool { return d.Type == "DCOUNTER" || d.Type == "DDERIVE" }) {
		version = "0005" // as rrdtool marks these types, which older versions cannot read
	}
	h := &header{
		layout:  spec.Layout,
		version: version,
		step:    uint64(spec.Step / time.Second),
		ds:      slices.Clone(spec.DS),
		rra:     slices.Clone(spec.RRA),
		lastUp:  start.Unix(),
		pdp:     make([]pdpPrep, len(spec.DS)),
		cdp:     make([]cdpPrep, len(spec.DS)*len(spec.RRA)),
		curRow:  make([]uint64, len(spec.RRA)),
	}
	for i := range h.pdp {
		h.pdp[i] = pdpPrep{lastDS: "U", value: h.layout.unknown(), unknownSec: uint64(h.lastUp) % h.step}
	}
	for ri, r := range h.rra {
		for di := range h.ds {
			h.cdp[ri*len(h.ds)+di] = cdpPrep{
				value:      h.layout.unknown(),
				unknownPDP: ((uint64(h.lastUp) - h.pdp[di].unknownSec) % (h.step * r.PDPs)) / h.step,
			}
		}
		// rrdtool starts each RRA at a random row to spread writes over the file.
		h.curRow[ri] = rand.Uint64N(r.Rows)
	}
	return writeNew(path, h)
}

func writeNew(path string, h *header) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("rrdfmt: creating %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// 0644 whatever the umask, as rrdtool makes its files: graphing and status tools
	// running as another user read them (os.CreateTemp gives 0600).
	err = f.Chmod(0o644)
	if err == nil {
		err = writeContent(f, h)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A hard link fails if path exists, which rename would silently replace.
		err = os.Link(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("rrdfmt: creating %s: %w", path, err)
	}
	return nil
}

func writeContent(f *os.File, h *header) error {
	if _, err := f.Write(h.encode()); err != nil {
		return err
	}
	unknownRow := make([]byte, 8*len(h.ds)*1024)
	for i := 0; i < len(unknownRow); i += 8 {
		binary.LittleEndian.PutUint64(unknownRow[i:], math.Float64bits(h.layout.unknown()))
	}
	for _, r := range h.rra {
		left := int(r.Rows) * 8 * len(h.ds)
		for left > 0 {
			n, err := f.Write(unknownRow[:min(left, len(unknownRow))])
			if err != nil {
				return err
			}
			left -= n
		}
	}
	return f.Sync()
}

// Update is one reading: a time and one value per data source, as text the way rrdtool
// takes it ("U" for unknown). rrdtool keeps the text as the data source's last value.
type Update struct {
	Time   time.Time // whole seconds; later than the file's last update
	Values []string
}

// UpdateFile applies updates in order to the file at path, holding rrdtool's write lock.
// The file must have the given layout. On an error no update of this call is written.
func UpdateFile(path string, layout Layout, updates ...Update) error {
	f, h, err := openLocked(path, layout, true)
	if err != nil {
		return err
	}
	defer f.Close()
	return update(f, h, updates)
}

// An Updater applies updates to RRD files that its caller opened (beneath a directory,
// say), as UpdateFile does, and reuses the memory it reads their headers into from one
// call to the next: a daemon updates thousands of files a minute. It is not safe for
// concurrent use.
type Updater struct {
	Layout Layout // the layout the files must have
	buf    []byte
}

// Update applies updates in order to the RRD file f, open for reading and writing. It
// takes rrdtool's write lock, which goes when the caller closes f. On an error no update
// of this call is written.
func (u *Updater) Update(f *os.File, updates ...Update) error {
	if err := lock(f, unix.F_WRLCK); err != nil {
		return fmt.Errorf("rrdfmt: %s: %w", f.Name(), err)
	}
	h, err := readHeader(f, u.Layout, &u.buf)
	if err != nil {
		return fmt.Errorf("rrdfmt: %s: %w", f.Name(), err)
	}
	return update(f, h, updates)
}

// update applies updates to the locked file f whose header is h.
func update(f *os.File, h *header, updates []Update) error {
	path := f.Name()
	if err := h.updatable(); err != nil {
		return fmt.Errorf("rrdfmt: cannot update %s: %w", path, err)
	}
	var rows []rowWrite
	var err error
	for _, u := range updates {
		if rows, err = h.update(u.Time.Unix(), u.Values, rows); err != nil {
			return fmt.Errorf("rrdfmt: updating %s at %d: %w", path, u.Time.Unix(), err)
		}
	}
	// Rows first, then the header that points at them: a crash in between leaves a
	// file of the same length and a valid header, which rrdtool still opens.
	buf := make([]byte, 8*len(h.ds))
	for _, r := range rows {
		for i, v := range r.values {
			binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
		}
		off := h.rraOffset(r.rra) + int64(r.row)*int64(len(buf))
		if _, err := f.WriteAt(buf, off); err != nil {
			return fmt.Errorf("rrdfmt: writing %s: %w", path, err)
		}
	}
	// The live part only, in one call, as rrdtool writes it: the definitions before it
	// never change.
	live := h.layout.liveOffset(len(h.ds), len(h.rra))
	if _, err := f.WriteAt(h.encode()[live:], int64(live)); err != nil {
		return fmt.Errorf("rrdfmt: writing %s: %w", path, err)
	}
	return nil
}

// updatable refuses a file made by rrdtool with features whose update rules rrdfmt does
// not have (COMPUTE data sources, Holt-Winters archives), rather than updating it wrongly.
func (h *header) updatable() error {
	for _, d := range h.ds {
		if !slices.Contains(knownType, d.Type) {
			return fmt.Errorf("data source %s has type %q (supported: %v)", d.Name, d.Type, knownType)
		}
	}
	for i, r := range h.rra {
		if !slices.Contains(knownCF, r.CF) {
			return fmt.Errorf("RRA %d has consolidation function %q (supported: %v)", i, r.CF, knownCF)
		}
	}
	return nil
}

// openLocked opens an RRD file, takes rrdtool's read or write lock on it, and reads its
// header. The lock goes with the file's closing.
func openLocked(path string, layout Layout, write bool) (*os.File, *header, error) {
	flag, typ := unix.O_RDONLY, int16(unix.F_RDLCK)
	if write {
		flag, typ = unix.O_RDWR, unix.F_WRLCK
	}
	fd, err := unix.Open(path, flag|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(path, flag|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rrdfmt: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	// Not os.OpenFile: it offers a regular file to the poller, which costs four fcntl
	// and a failing epoll_ctl on every update for nothing.
	f := os.NewFile(uintptr(fd), path)
	if err := lock(f, typ); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("rrdfmt: %s: %w", path, err)
	}
	h, err := readHeader(f, layout, new([]byte))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("rrdfmt: %s: %w", path, err)
	}
	return f, h, nil
}

// readHeader reads and decodes the header of an open RRD file into *buf, which it grows
// when it is too small: the header decoded from it is valid until *buf is used again.
// The first read takes as many bytes as the header read last (its length is left in
// *buf), so that files of one shape take one read each.
func readHeader(f *os.File, layout Layout, buf *[]byte) (*header, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	read := func(n int) ([]byte, error) {
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		b := (*buf)[:n]
		if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b, nil
	}
	b, err := read(int(min(int64(max(len(*buf), minHeadRead)), st.Size())))
	if err != nil {
		return nil, err
	}
	// The header's length depends on the counts in it and on the layout: read enough
	// for the largest candidate that fits the file.
	need := min(minHeadRead, len(b))
	for _, l := range []Layout{LP64, ARM32, ARM32Time64} {
		c := &codec{b: b, off: countsOffset, layout: l}
		var ds, rra uint64
		if len(b) >= countsOffset+16 {
			c.ulong(&ds)
			c.ulong(&rra)
		}
		if ds > 0 && ds <= maxDS && rra > 0 && rra <= maxRRA {
			if hs := l.headerSize(int(ds), int(rra)); int64(hs) <= st.Size() {
				need = max(need, hs)
			}
		}
	}
	if need > len(b) {
		if b, err = read(need); err != nil {
			return nil, err
		}
	}
	b = b[:need]
	*buf = b
	return decodeHeader(b, st.Size(), layout)
}

// minHeadRead is the first read of a header whose length is not known yet: enough for
// the counts that give it.
const minHeadRead = 128

// lock takes rrdtool's fcntl lock on the whole file, waiting up to a second for another
// writer to finish.
func lock(f *os.File, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) || time.Now().After(deadline) {
			return fmt.Errorf("locking: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Info describes an RRD file, as the definitions part of rrdtool info does.
type Info struct {
	Layout     Layout
	Version    string
	Step       time.Duration
	LastUpdate time.Time
	DS         []DS
	RRA        []RRA
}

// ReadInfo reads the definitions and the last update time of the file at path, which must
// have the given layout. It holds rrdtool's read lock while reading.
func ReadInfo(path string, layout Layout) (*Info, error) {
	f, h, err := openLocked(path, layout, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return &Info{
		Layout:     h.layout,
		Version:    h.version,
		Step:       time.Duration(h.step) * time.Second,
		LastUpdate: time.Unix(h.lastUp, int64(h.lastUpUsec)*1000),
		DS:         h.ds,
		RRA:        h.rra,
	}, nil
}
