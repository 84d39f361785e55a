// Package rrdfmt reads and writes RRD files in the format of rrdtool (versions 0003 to
// 0005), in pure Go, with rrdtool's update semantics, so that rrdtool reads what
// pingmachine writes and pingmachine continues files that rrdtool made.
//
// rrdtool writes its C structs to disk as they are in memory, so a file's layout depends
// on the CPU it was made on: the width of long and time_t and the alignment of doubles.
// The layout of a file is detected when it is opened, and a file of another layout than
// the one asked for is refused rather than misread.
package rrdfmt

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
)

// Layout is the in-memory ABI of the rrdtool that writes a file.
type Layout int

// The layouts pingmachine ships to. All are little-endian with 8-byte aligned doubles.
const (
	// LP64 is amd64 and arm64: 8-byte long and time_t.
	LP64 Layout = iota
	// ARM32 is 32-bit ARM with a 32-bit time_t (Debian 12 armhf and older).
	ARM32
	// ARM32Time64 is 32-bit ARM with a 64-bit time_t (Debian 13 armhf and later).
	ARM32Time64
)

func (l Layout) String() string {
	switch l {
	case LP64:
		return "LP64 (amd64/arm64)"
	case ARM32:
		return "32-bit ARM, 32-bit time_t"
	case ARM32Time64:
		return "32-bit ARM, 64-bit time_t"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// NativeLayout is the layout of the running CPU. On 32-bit ARM it assumes a 64-bit time_t,
// which current distributions use; files of the older layout are still recognised.
func NativeLayout() Layout {
	if runtime.GOARCH == "arm" {
		return ARM32Time64
	}
	return LP64
}

// longSize is the width of C long (and of unival's count member).
func (l Layout) longSize() int {
	if l == LP64 {
		return 8
	}
	return 4
}

func (l Layout) timeSize() int {
	if l == ARM32 {
		return 4
	}
	return 8
}

// Sizes of rrdtool's on-disk structs (rrd_format.h) and the offsets inside them that
// depend on the layout.
const (
	univalSize   = 8
	parCount     = 10 // unival par[10] / scratch[10]
	nameSize     = 20 // ds_nam, dst, cf_nam
	lastDSSize   = 30
	dsDefSize    = 2*nameSize + parCount*univalSize // 120 everywhere
	pdpPrepSize  = 32 + parCount*univalSize         // last_ds[30] padded to 32, scratch[10]
	cdpPrepSize  = parCount * univalSize            // 80
	floatCookie  = 8.642135e130
	cookieOffset = 16 // float_cookie follows "RRD\0" and version[5], aligned to 8
	countsOffset = 24 // ds_cnt, rra_cnt, pdp_step
)

func align(n, a int) int { return (n + a - 1) / a * a }

func (l Layout) statHeadParOffset() int { return align(countsOffset+3*l.longSize(), 8) }
func (l Layout) statHeadSize() int      { return l.statHeadParOffset() + parCount*univalSize }
func (l Layout) rraRowCntOffset() int   { return align(nameSize, l.longSize()) }
func (l Layout) rraParOffset() int      { return align(l.rraRowCntOffset()+2*l.longSize(), 8) }
func (l Layout) rraDefSize() int        { return l.rraParOffset() + parCount*univalSize }
func (l Layout) liveHeadSize() int      { return align(l.timeSize()+l.longSize(), l.timeSize()) }
func (l Layout) rraPtrSize() int        { return l.longSize() }

// liveOffset is where the part of the header that updates change starts: the live
// header, followed by pdp_prep, cdp_prep and rra_ptr. The definitions are before it.
func (l Layout) liveOffset(ds, rra int) int {
	return l.statHeadSize() + ds*dsDefSize + rra*l.rraDefSize()
}

// headerSize is the length of everything before the data rows.
func (l Layout) headerSize(ds, rra int) int {
	return l.liveOffset(ds, rra) + l.liveHeadSize() + ds*pdpPrepSize + rra*ds*cdpPrepSize + rra*l.rraPtrSize()
}

// codec walks a header buffer field by field; the same walk reads and writes, so the two
// directions cannot disagree.
type codec struct {
	b      []byte
	off    int
	layout Layout
	write  bool
}

func (c *codec) at(off int) { c.off = off }

func (c *codec) str(s *string, size int) {
	field := c.b[c.off : c.off+size]
	if c.write {
		clear(field)
		copy(field[:size-1], *s)
	} else {
		n := 0
		for n < size && field[n] != 0 {
			n++
		}
		*s = string(field[:n])
	}
	c.off += size
}

// ulong is a C unsigned long: 4 or 8 bytes.
func (c *codec) ulong(v *uint64) {
	if c.layout.longSize() == 8 {
		c.u64(v)
		return
	}
	if c.write {
		binary.LittleEndian.PutUint32(c.b[c.off:], uint32(*v))
	} else {
		*v = uint64(binary.LittleEndian.Uint32(c.b[c.off:]))
	}
	c.off += 4
}

func (c *codec) u64(v *uint64) {
	if c.write {
		binary.LittleEndian.PutUint64(c.b[c.off:], *v)
	} else {
		*v = binary.LittleEndian.Uint64(c.b[c.off:])
	}
	c.off += 8
}

func (c *codec) timeT(v *int64) {
	if c.layout.timeSize() == 8 {
		u := uint64(*v)
		c.u64(&u)
		*v = int64(u)
		return
	}
	if c.write {
		binary.LittleEndian.PutUint32(c.b[c.off:], uint32(int32(*v)))
	} else {
		*v = int64(int32(binary.LittleEndian.Uint32(c.b[c.off:])))
	}
	c.off += 4
}

func (c *codec) double(v *float64) {
	u := math.Float64bits(*v)
	c.u64(&u)
	*v = math.Float64frombits(u)
}

// count is a unival used as unsigned long: the low bytes of the 8-byte slot, the rest zero.
func (c *codec) count(v *uint64) {
	start := c.off
	if c.write {
		clear(c.b[start : start+univalSize])
	}
	c.ulong(v)
	c.off = start + univalSize
}
