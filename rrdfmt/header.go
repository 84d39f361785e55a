package rrdfmt

import (
	"errors"
	"fmt"
)

// DS defines a data source.
type DS struct {
	Name      string  // at most 19 characters of [a-zA-Z0-9_-]
	Type      string  // GAUGE, COUNTER, DERIVE, ABSOLUTE, DCOUNTER or DDERIVE
	Heartbeat uint64  // seconds without an update after which the value is unknown
	Min, Max  float64 // NaN for unbounded ("U")
}

// RRA defines a round-robin archive.
type RRA struct {
	CF   string  // AVERAGE, MIN, MAX or LAST
	XFF  float64 // the fraction of unknown PDPs above which a row is unknown
	PDPs uint64  // primary data points consolidated into one row
	Rows uint64
}

// cdpPrimary is the index of the primary value in cdp_prep.scratch (rrd_format.h); the
// secondary value follows it.
const cdpPrimary = 8

// Sanity limits that keep a corrupt header from causing huge allocations.
const (
	maxDS  = 1 << 12
	maxRRA = 1 << 12
)

type pdpPrep struct {
	lastDS     string
	unknownSec uint64
	value      float64
}

type cdpPrep struct {
	value      float64
	unknownPDP uint64
	primary    float64
	secondary  float64
}

// header is everything before the data rows. raw keeps the bytes of fields this package
// does not model (Holt-Winters parameters, unused par slots), so they survive a rewrite.
type header struct {
	layout     Layout
	version    string
	step       uint64
	ds         []DS
	rra        []RRA
	lastUp     int64
	lastUpUsec uint64
	pdp        []pdpPrep
	cdp        []cdpPrep // rra-major: cdp[rra*len(ds)+ds]
	curRow     []uint64
	raw        []byte
}

func (h *header) size() int { return h.layout.headerSize(len(h.ds), len(h.rra)) }

// rraOffset is the file offset of RRA i's first row.
func (h *header) rraOffset(i int) int64 {
	off := int64(h.size())
	for _, r := range h.rra[:i] {
		off += int64(r.Rows) * int64(len(h.ds)) * 8
	}
	return off
}

func (h *header) fileSize() int64 { return h.rraOffset(len(h.rra)) }

// walk reads or writes every modelled field of the header at its layout's offsets.
func (h *header) walk(c *codec) {
	l := h.layout
	magic := "RRD"
	c.at(0)
	c.str(&magic, 4)
	c.str(&h.version, 5)
	c.at(cookieOffset)
	fc := floatCookie
	c.double(&fc)
	dsCnt, rraCnt := uint64(len(h.ds)), uint64(len(h.rra))
	c.ulong(&dsCnt)
	c.ulong(&rraCnt)
	c.ulong(&h.step)

	off := l.statHeadSize()
	for i := range h.ds {
		d := &h.ds[i]
		c.at(off)
		c.str(&d.Name, nameSize)
		c.str(&d.Type, nameSize)
		c.count(&d.Heartbeat)
		c.double(&d.Min)
		c.double(&d.Max)
		off += dsDefSize
	}
	for i := range h.rra {
		r := &h.rra[i]
		c.at(off)
		c.str(&r.CF, nameSize)
		c.at(off + l.rraRowCntOffset())
		c.ulong(&r.Rows)
		c.ulong(&r.PDPs)
		c.at(off + l.rraParOffset())
		c.double(&r.XFF)
		off += l.rraDefSize()
	}
	c.at(off)
	c.timeT(&h.lastUp)
	c.ulong(&h.lastUpUsec)
	off += l.liveHeadSize()
	for i := range h.pdp {
		p := &h.pdp[i]
		c.at(off)
		c.str(&p.lastDS, lastDSSize)
		c.at(off + 32)
		c.count(&p.unknownSec)
		c.double(&p.value)
		off += pdpPrepSize
	}
	for i := range h.cdp {
		p := &h.cdp[i]
		c.at(off)
		c.double(&p.value)
		c.count(&p.unknownPDP)
		c.at(off + cdpPrimary*univalSize)
		c.double(&p.primary)
		c.double(&p.secondary)
		off += cdpPrepSize
	}
	for i := range h.curRow {
		c.at(off)
		c.ulong(&h.curRow[i])
		off += l.rraPtrSize()
	}
}

// encode writes the header into h.raw, keeping the bytes it does not model.
func (h *header) encode() []byte {
	if len(h.raw) != h.size() {
		raw := make([]byte, h.size())
		copy(raw, h.raw)
		h.raw = raw
	}
	h.walk(&codec{b: h.raw, layout: h.layout, write: true})
	return h.raw
}

// Errors wrapped by the errors for files that cannot be read at all, so that a caller can
// tell them from an update that failed and, like the Perl pingmachine, move such a file
// aside and create it again.
var (
	// ErrNotRRD: the file is not an RRD file, or one cut short.
	ErrNotRRD = errors.New("not an RRD file")
	// ErrLayout: an RRD file made on a CPU with another layout of rrdtool's structs.
	ErrLayout = errors.New("RRD file of another CPU layout")
	// ErrVersion: an RRD file of a format version this package does not handle.
	ErrVersion = errors.New("unsupported RRD version")
)

// decodeHeader parses the header at the start of b, of a file of fileSize bytes, and
// keeps b as the header's bytes (it is read for each update: a copy would cost). The
// layout is the one whose struct sizes account for the file's length exactly; a file of
// another layout than want is refused with an error naming both.
func decodeHeader(b []byte, fileSize int64, want Layout) (*header, error) {
	if len(b) < 64 || string(b[:4]) != "RRD\x00" {
		return nil, ErrNotRRD
	}
	var version string
	(&codec{b: b, off: 4}).str(&version, 5)
	// 0004 and 0005 only mark files that use Holt-Winters smoothing or DCOUNTER/DDERIVE;
	// the layout is that of 0003.
	if version != "0003" && version != "0004" && version != "0005" {
		return nil, fmt.Errorf("%w %q (only 0003 to 0005)", ErrVersion, version)
	}
	fc := 0.0
	(&codec{b: b, off: cookieOffset}).double(&fc)
	if fc != floatCookie {
		return nil, fmt.Errorf("%w: float cookie mismatch (another byte order or alignment)", ErrNotRRD)
	}
	if h := tryLayout(b, fileSize, want); h != nil {
		return h, nil
	}
	var match []*header
	for _, l := range []Layout{LP64, ARM32, ARM32Time64} {
		if h := tryLayout(b, fileSize, l); h != nil {
			match = append(match, h)
		}
	}
	if len(match) > 0 {
		return nil, fmt.Errorf("%w: the file has the %s layout; this build reads and writes %s (convert with rrdtool dump and restore)",
			ErrLayout, match[0].layout, want)
	}
	return nil, fmt.Errorf("%w: its length %d fits no known layout (truncated?)", ErrNotRRD, fileSize)
}

// tryLayout decodes b as layout l, returning nil if the counts do not fit the file.
func tryLayout(b []byte, fileSize int64, l Layout) *header {
	c := &codec{b: b, off: countsOffset, layout: l}
	var dsCnt, rraCnt, step uint64
	c.ulong(&dsCnt)
	c.ulong(&rraCnt)
	c.ulong(&step)
	if dsCnt == 0 || dsCnt > maxDS || rraCnt == 0 || rraCnt > maxRRA || step == 0 {
		return nil
	}
	hs := l.headerSize(int(dsCnt), int(rraCnt))
	if hs > len(b) || int64(hs) > fileSize {
		return nil
	}
	h := &header{
		layout: l,
		ds:     make([]DS, dsCnt),
		rra:    make([]RRA, rraCnt),
		pdp:    make([]pdpPrep, dsCnt),
		cdp:    make([]cdpPrep, dsCnt*rraCnt),
		curRow: make([]uint64, rraCnt),
		raw:    b[:hs:hs],
	}
	h.walk(&codec{b: h.raw, layout: l})
	total := int64(hs)
	for _, r := range h.rra {
		if r.Rows == 0 || r.PDPs == 0 || r.Rows > uint64(fileSize) {
			return nil
		}
		total += int64(r.Rows) * int64(dsCnt) * 8
		if total > fileSize {
			return nil
		}
	}
	if total != fileSize {
		return nil
	}
	for i, cur := range h.curRow {
		if cur >= h.rra[i].Rows {
			return nil
		}
	}
	return h
}
