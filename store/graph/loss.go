package graph

import (
	"image/color"
	"maps"
	"slices"
	"strconv"
)

// lossBucket is one of Smokeping's loss colours: it colours rows with more than the
// previous bucket's Max lost pings, up to Max.
type lossBucket struct {
	Max   float64
	Label string // the counts it stands for: "0", "4-5", "20/20"
	Color color.NRGBA
}

// lossBuckets are Smokeping's loss colours and thresholds (2.8 and later) for rounds of
// the given number of pings. Smokeping keeps them in a table keyed by threshold, so for
// few pings a later threshold replaces an earlier equal one (p-1 and p win); here the
// same, except that no loss stays green even for one ping.
func lossBuckets(pings int) []lossBucket {
	p := pings
	per := func(frac float64, least int) int { return max(int(frac*float64(p)), least) }
	colours := map[int]uint32{0: 0x26ff00}
	for _, t := range []struct {
		max int
		rgb uint32
	}{
		{per(0.01, 1), 0x00b8ff},
		{per(0.05, 2), 0x0059ff},
		{per(0.10, 3), 0x7e00ff},
		{per(0.25, 4), 0xff00ff},
		{per(0.50, 5), 0xff5500},
		{p - 1, 0xff0000},
		{p, 0xa00000},
	} {
		if t.max > 0 && t.max <= p {
			colours[t.max] = t.rgb
		}
	}
	var b []lossBucket
	last := -1
	for _, m := range slices.Sorted(maps.Keys(colours)) {
		label := strconv.Itoa(last+1) + "-" + strconv.Itoa(m)
		switch {
		case m == p:
			label = strconv.Itoa(p) + "/" + strconv.Itoa(p)
		case m == last+1:
			label = strconv.Itoa(m)
		}
		b = append(b, lossBucket{float64(m), label, rgb(colours[m])})
		last = m
	}
	return b
}

// lossColor returns the colour of a row with loss lost pings, as Smokeping picks it:
// the first bucket whose Max is at least loss.
func lossColor(buckets []lossBucket, loss float64) color.NRGBA {
	for _, b := range buckets {
		if loss <= b.Max {
			return b.Color
		}
	}
	return buckets[len(buckets)-1].Color
}

func rgb(v uint32) color.NRGBA {
	return color.NRGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

// pastel lightens c two thirds of the way to white, as Smokeping's loss background does:
// the colour stays recognisable behind the smoke without hiding it.
func pastel(c color.NRGBA) color.NRGBA {
	light := func(v uint8) uint8 { return v + uint8((int(255-v)*2+1)/3) }
	return color.NRGBA{R: light(c.R), G: light(c.G), B: light(c.B), A: 0xff}
}

// LossColor is Smokeping's colour for a round of pings that lost loss of them, as the
// graphs draw the median line in it.
func LossColor(loss, pings int) color.NRGBA {
	if pings < 1 {
		return lossColor(lossBuckets(1), float64(loss))
	}
	return lossColor(lossBuckets(pings), float64(loss))
}
