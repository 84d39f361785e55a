package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LastResult is what output/<id>/last_result says of an order's last round.
type LastResult struct {
	Time    time.Time // the round's RRD time stamp
	Updated time.Time // when the file was written
	Step    time.Duration
	Pings   int
	Loss    int // pings without an answer
	// Min, Median (the upper one) and Max are the RTTs of the answered pings; each is
	// negative when no ping was answered ("~" in the file).
	Min, Median, Max time.Duration
}

// lastResultKeys are the lines of last_result, in the order they are written.
var lastResultKeys = []string{"time", "updated", "step", "pings", "loss", "min", "median", "max"}

// maxLastResult bounds what is read of a last_result file: the daemon's are about 130
// bytes.
const maxLastResult = 4096

// ReadLastResult reads a last_result file, as the daemon and the Perl version write it.
// The error of a missing file is an fs.ErrNotExist; the others name the file, and the
// line where there is one.
func ReadLastResult(path string) (LastResult, error) {
	f, err := openRegular(path)
	if err != nil {
		return LastResult{}, err
	}
	defer f.Close()
	b := make([]byte, maxLastResult+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return LastResult{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if n > maxLastResult {
		return LastResult{}, fmt.Errorf("%s: longer than the %d bytes a last_result may have", path, maxLastResult)
	}
	r, err := parseLastResult(b[:n])
	if err != nil {
		return LastResult{}, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// openRegular opens a regular file for reading, without following a link, waiting on a
// FIFO or taking a terminal: last_result is in a directory others may write to.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// parseLastResult reads the eight "key: value" lines of a last_result. Other keys are
// left alone, for what a later version may add.
func parseLastResult(data []byte) (LastResult, error) {
	var ints [5]int64 // time, updated, step, pings, loss
	var rtts [3]time.Duration
	seen := make(map[string]bool, len(lastResultKeys))
	line := 0
	for text := range bytes.Lines(data) {
		line++
		key, value, ok := strings.Cut(strings.TrimRight(string(text), "\r\n"), ": ")
		if !ok {
			return LastResult{}, fmt.Errorf(`line %d: expected "key: value", got %q`, line, text)
		}
		i := slices.Index(lastResultKeys, key)
		switch {
		case i < 0:
			continue
		case seen[key]:
			return LastResult{}, fmt.Errorf("line %d: %s given twice", line, key)
		case i < len(ints):
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil || v < 0 {
				return LastResult{}, fmt.Errorf("line %d: %s: expected a whole number, got %q", line, key, value)
			}
			ints[i] = v
		default:
			d, err := rtt(value)
			if err != nil {
				return LastResult{}, fmt.Errorf("line %d: %s: %w", line, key, err)
			}
			rtts[i-len(ints)] = d
		}
		seen[key] = true
	}
	for _, key := range lastResultKeys {
		if !seen[key] {
			return LastResult{}, fmt.Errorf("no %s line", key)
		}
	}
	r := LastResult{
		Time: time.Unix(ints[0], 0), Updated: time.Unix(ints[1], 0),
		Step: time.Duration(ints[2]) * time.Second, Pings: int(ints[3]), Loss: int(ints[4]),
		Min: rtts[0], Median: rtts[1], Max: rtts[2],
	}
	switch {
	case ints[2] < 1 || ints[2] > 1<<31:
		return LastResult{}, fmt.Errorf("step: %d seconds out of range", ints[2])
	case ints[3] < 1 || ints[3] > 1<<31:
		return LastResult{}, fmt.Errorf("pings: %d out of range", ints[3])
	case r.Loss > r.Pings:
		return LastResult{}, fmt.Errorf("loss: %d of %d pings", r.Loss, r.Pings)
	}
	return r, nil
}

// rtt reads an RTT in seconds ("%.6e", or a plain number as the Perl version's ssh
// orders wrote them), or "~" for none, which it returns as -1.
func rtt(value string) (time.Duration, error) {
	if value == "~" {
		return -1, nil
	}
	s, err := strconv.ParseFloat(value, 64)
	// An hour is far beyond any timeout; the bound keeps the conversion exact.
	if err != nil || !(s >= 0 && s <= 3600) {
		return 0, fmt.Errorf("expected seconds (0 to 3600) or ~, got %q", value)
	}
	return time.Duration(math.Round(s * float64(time.Second))), nil
}
