package rrdfmt

import (
	"math"
	"strings"
)

// The NaN rrdtool stores for "unknown" is its CPU's 0.0/0.0: negative on x86, positive
// on ARM.
const (
	x86NaN = 0xfff8000000000000
	armNaN = 0x7ff8000000000000
)

// unknown returns the NaN rrdtool writes on the layout's usual CPU, so the files we write
// match rrdtool's byte for byte.
func (l Layout) unknown() float64 {
	if l == LP64 {
		return math.Float64frombits(x86NaN)
	}
	return math.Float64frombits(armNaN)
}

// Exponent range of IEEE doubles (C's DBL_MIN_EXP and DBL_MAX_EXP).
const (
	dblMinExp = -1021
	dblMaxExp = 1024
)

// parseNumber reads a reading the way rrdtool 1.5 and later do (rrd_strtodbl). rrdtool
// does not round correctly: it accumulates the digits in a double and scales by powers of
// ten found by repeated squaring. The last bit of the result can therefore differ from
// strconv.ParseFloat, and a file must get rrdtool's bit to continue as rrdtool would.
// The whole string must be a number, or one of nan, -nan, inf, -inf.
func parseNumber(s string) (float64, bool) {
	p := strings.TrimLeft(s, " \t\n\v\f\r")
	negative := false
	if p != "" && (p[0] == '-' || p[0] == '+') {
		negative = p[0] == '-'
		p = p[1:]
	}
	number := 0.0
	digits, decimals := 0, 0
	for p != "" && isDigit(p[0]) {
		number = float64(number*10) + float64(p[0]-'0') // unfused, as rrdtool on amd64
		p, digits = p[1:], digits+1
	}
	if p != "" && p[0] == '.' {
		p = p[1:]
		for p != "" && isDigit(p[0]) {
			number = float64(number*10) + float64(p[0]-'0')
			p, digits, decimals = p[1:], digits+1, decimals+1
		}
	}
	if digits == 0 {
		return special(s)
	}
	if negative {
		number = -number
	}
	exponent := -decimals
	if p != "" && (p[0] == 'e' || p[0] == 'E') {
		p = p[1:]
		negExp := false
		if p != "" && (p[0] == '-' || p[0] == '+') {
			negExp = p[0] == '-'
			p = p[1:]
		}
		n := 0
		for p != "" && isDigit(p[0]) {
			n = n*10 + int(p[0]-'0')
			p = p[1:]
			if n > 1<<20 {
				return 0, false
			}
		}
		if negExp {
			n = -n
		}
		exponent += n
	}
	if exponent < dblMinExp || exponent > dblMaxExp || p != "" {
		return 0, false
	}
	p10 := 10.0
	for n := abs(exponent); n > 0; n >>= 1 {
		if n&1 != 0 {
			if exponent < 0 {
				number /= p10
			} else {
				number *= p10
			}
		}
		p10 *= p10
	}
	return number, true
}

// special recognises the words rrdtool takes for NaN and infinity (by prefix, as it does).
func special(s string) (float64, bool) {
	l := strings.ToLower(s)
	switch {
	case strings.HasPrefix(l, "-nan"), strings.HasPrefix(l, "nan"):
		return math.NaN(), true
	case strings.HasPrefix(l, "inf"):
		return math.Inf(1), true
	case strings.HasPrefix(l, "-inf"):
		return math.Inf(-1), true
	}
	return 0, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
