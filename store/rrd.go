package store

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/rrdfmt"
)

// rrdSpec is the Perl version's main.rrd: loss, median and one data source per ping,
// with a heartbeat of two steps, and the RRA set that its step and template choose.
func rrdSpec(step time.Duration, pings int, template string) rrdfmt.Spec {
	s := uint64(step / time.Second)
	hb := 2 * s
	spec := rrdfmt.Spec{Step: step, Layout: rrdfmt.NativeLayout()}
	spec.DS = append(spec.DS,
		rrdfmt.DS{Name: "loss", Type: "GAUGE", Heartbeat: hb, Min: 0, Max: float64(pings)},
		rrdfmt.DS{Name: "median", Type: "GAUGE", Heartbeat: hb, Min: 0, Max: 180})
	for i := 1; i <= pings; i++ {
		spec.DS = append(spec.DS, rrdfmt.DS{Name: "ping" + strconv.Itoa(i), Type: "GAUGE", Heartbeat: hb, Min: 0, Max: 180})
	}
	add := func(cfs string, seconds, rows uint64) {
		// The Perl version divides, and wrote a fraction for a step that does not divide
		// the period; rrdtool of its time read that with %lu, which truncates.
		pdps := max(1, seconds/s)
		for cf := range strings.SplitSeq(cfs, ",") {
			spec.RRA = append(spec.RRA, rrdfmt.RRA{CF: cf, XFF: 0.5, PDPs: pdps, Rows: rows})
		}
	}
	switch {
	case template == "smokeping" && s < 300:
		add("AVERAGE", s, 900)
		add("AVERAGE,MIN,MAX", 300, 864)
		add("AVERAGE,MIN,MAX", 1800, 480)
		add("AVERAGE,MIN,MAX", 3600, 960)
		add("AVERAGE,MAX,MIN", 43200, 800)
		add("AVERAGE,MAX,MIN", 604800, 520)
	case template == "smokeping" && s == 300:
		add("AVERAGE", 300, 864)
		add("AVERAGE,MIN,MAX", 1800, 480)
		add("AVERAGE,MIN,MAX", 3600, 960)
		add("AVERAGE,MAX,MIN", 43200, 800)
		add("AVERAGE,MAX,MIN", 604800, 520)
	default:
		add("AVERAGE", s, 1008)
		add("AVERAGE,MIN,MAX", 12*s, 4320)
		add("AVERAGE,MAX,MIN", 144*s, 720)
	}
	return spec
}

// backend writes RRD files: this process through rrdfmt, or an rrdcached.
type backend interface {
	create(path string, spec rrdfmt.Spec) error
	update(path string, u rrdfmt.Update) error
	// updateBeneath is update of the file rel below the base b, opened in one call that
	// refuses any symbolic link on the way. opened is false when it could not be opened
	// so (it is missing, a link is on the way, or the backend does not open files): the
	// caller then takes the careful way.
	updateBeneath(b *beneath, rel string, u rrdfmt.Update) (opened bool, err error)
	// flush makes the file on disk complete before it is renamed, and makes the backend
	// forget it.
	flush(path string) error
	// corrupt reports whether an update error says the file is not a usable RRD.
	corrupt(err error) bool
	close() error
}

// files is the embedded backend: each update is written by this process.
type files struct {
	layout rrdfmt.Layout
	// updaters holds *rrdfmt.Updater, one per writer at a time, so that the memory
	// headers are read into is reused.
	updaters sync.Pool
}

func (f *files) create(path string, spec rrdfmt.Spec) error { return rrdfmt.Create(path, spec) }
func (f *files) update(path string, u rrdfmt.Update) error {
	return rrdfmt.UpdateFile(path, f.layout, u)
}
func (f *files) updateBeneath(b *beneath, rel string, u rrdfmt.Update) (bool, error) {
	file, err := b.open(rel, unix.O_RDWR)
	if err != nil {
		return false, err
	}
	defer file.Close()
	up, _ := f.updaters.Get().(*rrdfmt.Updater)
	if up == nil {
		up = &rrdfmt.Updater{Layout: f.layout}
	}
	defer f.updaters.Put(up)
	return true, up.Update(file, u)
}
func (*files) flush(string) error { return nil }

func (*files) corrupt(err error) bool { return unusable(err) }

// unusable reports whether rrdfmt refused a file as no RRD it can update: not an RRD at
// all, or one of another CPU layout or format version.
func unusable(err error) bool {
	return errors.Is(err, rrdfmt.ErrNotRRD) || errors.Is(err, rrdfmt.ErrLayout) || errors.Is(err, rrdfmt.ErrVersion)
}

func (*files) close() error { return nil }
