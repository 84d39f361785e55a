package view

import (
	"encoding/json"
	"errors"
	"time"

	"pingmachine/orders"
)

// The JSON document of a View; README.md describes it for its readers.
type (
	jsonView struct {
		Base   string      `json:"basedir"`
		Time   time.Time   `json:"time"`
		Daemon jsonDaemon  `json:"daemon"`
		Orders []jsonOrder `json:"orders"`
	}
	jsonDaemon struct {
		Lock    string `json:"lock"`
		Running bool   `json:"running"`
		Error   string `json:"error,omitempty"`
	}
	jsonOrder struct {
		ID          string        `json:"id"`
		State       State         `json:"state"`
		User        string        `json:"user,omitempty"`
		Step        int64         `json:"step,omitempty"` // seconds
		Pings       int           `json:"pings,omitempty"`
		Probe       string        `json:"probe,omitempty"`
		Target      string        `json:"target,omitempty"`
		Interface   string        `json:"interface,omitempty"`
		Source      string        `json:"source,omitempty"`
		Error       string        `json:"error,omitempty"`
		Problems    []jsonProblem `json:"problems,omitempty"`
		Result      *jsonResult   `json:"result,omitempty"`
		ResultError string        `json:"result_error,omitempty"`
	}
	jsonProblem struct {
		Line    int    `json:"line,omitempty"`
		Key     string `json:"key,omitempty"`
		Message string `json:"message"`
	}
	jsonResult struct {
		Time        int64    `json:"time"`    // the round's time stamp, Unix seconds
		Updated     int64    `json:"updated"` // when it was written, Unix seconds
		Age         int64    `json:"age"`     // seconds from updated to the view's time
		Step        int64    `json:"step"`
		Pings       int      `json:"pings"`
		Loss        int      `json:"loss"`
		LossPercent float64  `json:"loss_percent"`
		Min         *float64 `json:"min"` // seconds; null when no ping was answered
		Median      *float64 `json:"median"`
		Max         *float64 `json:"max"`
	}
)

// MarshalJSON writes the view as the JSON document of status --json: the same facts as
// WriteText, every order in one list sorted by id, each with its state.
func (v *View) MarshalJSON() ([]byte, error) {
	doc := jsonView{Base: v.Base, Time: v.Time, Orders: make([]jsonOrder, 0, len(v.Orders)),
		Daemon: jsonDaemon{Lock: v.Daemon.Lock, Running: v.Daemon.Running, Error: errorText(v.Daemon.Err)}}
	for i := range v.Orders {
		o := &v.Orders[i]
		j := jsonOrder{ID: o.ID, State: o.State(v.Time), Error: errorText(o.Err), ResultError: errorText(o.ResultErr)}
		if o.Order != nil {
			j.User, j.Step, j.Pings, j.Probe = o.Order.User, int64(o.Order.Step/time.Second), o.Order.Pings, o.Order.Probe
			j.Target = o.Order.Destination()
			j.Interface, j.Source = o.Via()
		}
		if perr := (*orders.Error)(nil); errors.As(o.Err, &perr) {
			for _, p := range perr.Problems {
				j.Problems = append(j.Problems, jsonProblem{Line: p.Line, Key: p.Key, Message: p.Msg})
			}
		}
		if r := o.Result; r != nil {
			j.Result = &jsonResult{Time: r.Time.Unix(), Updated: r.Updated.Unix(), Age: int64(o.Age(v.Time) / time.Second),
				Step: int64(r.Step / time.Second), Pings: r.Pings, Loss: r.Loss, LossPercent: o.LossPercent(),
				Min: secondsOrNull(r.Min), Median: secondsOrNull(r.Median), Max: secondsOrNull(r.Max)}
		}
		doc.Orders = append(doc.Orders, j)
	}
	return json.Marshal(doc)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func secondsOrNull(d time.Duration) *float64 {
	if d < 0 {
		return nil
	}
	s := d.Seconds()
	return &s
}
