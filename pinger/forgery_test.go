package pinger

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// Targets of TestScriptedForgeries: the neighbour's own, which it answers, and three without
// any responder, for which it forges what it can.
const (
	fOwn        = iota // answered by the responder: the neighbour sees these probes
	fReplies           // gets forged echo replies
	fErrors            // gets forged ICMP errors quoting a whole forged payload
	fShortQuote        // gets forged ICMP errors quoting only the ICMP header, as RFC 792 allows
	fTargets
)

// TestScriptedForgeries plays the owner of one target, who sees the probes to it and knows
// the engine's code, and forges answers for the other targets from them. The four
// rounds run in step, so the probes of one tick go out one after the other and each
// other target's probe has the identifier, the next sequence numbers and the next serials
// of the neighbour's own. None of the forgeries may answer or end a ping: those pings
// time out, and every forgery is counted.
func TestScriptedForgeries(t *testing.T) {
	pingtest.RequireRoot(t)
	link := pingtest.NewLink(t)
	link.Client.Sysctl(t, "net.ipv4.ping_group_range", allGroups)
	resp := pingtest.StartResponder(t, link.Server, func(dst netip.Addr, _ int) pingtest.Action {
		return pingtest.Action{Drop: dst != pingtest.Target4(fOwn) && dst != pingtest.Target6(fOwn)}
	})
	const delay = 5 * time.Millisecond
	resp.Forge(func(req pingtest.Request) []pingtest.Forgery {
		target := pingtest.Target4
		if req.Dst.Is6() {
			target = pingtest.Target6
		}
		if req.Dst != target(fOwn) || len(req.Payload) < MinSize {
			return nil
		}
		// The k-th probe after this one: its sequence number and serial are k higher.
		next := func(k int) (uint16, []byte) {
			p := append([]byte(nil), req.Payload...)
			serial := binary.BigEndian.Uint64(p[payloadSerialOffset:])
			binary.BigEndian.PutUint64(p[payloadSerialOffset:], serial+uint64(k))
			return req.Seq + uint16(k), p
		}
		seqR, replyPayload := next(fReplies)
		seqE, errorPayload := next(fErrors)
		seqS, _ := next(fShortQuote)
		return []pingtest.Forgery{
			{Delay: delay, From: target(fReplies), ID: req.ID, Seq: seqR, Payload: replyPayload},
			{Delay: delay, From: target(fOwn), ID: req.ID, Seq: seqE, Payload: errorPayload,
				Unreachable: true, Quoted: target(fErrors)},
			{Delay: delay, From: target(fOwn), ID: req.ID, Seq: seqS, Unreachable: true, Quoted: target(fShortQuote)},
		}
	})

	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		for _, fam := range []struct {
			name    string
			targets func(int) netip.Addr
		}{{"ipv4", pingtest.Target4}, {"ipv6", pingtest.Target6}} {
			t.Run(mode.String()+"/"+fam.name, func(t *testing.T) {
				e := runEngineIn(t, Options{Mode: mode}, link.Client)
				start := time.Now().Add(50 * time.Millisecond)
				rounds := make([]*Round, fTargets)
				for i := range rounds {
					rounds[i] = &Round{Target: fam.targets(i), Count: pings, Gap: 20 * time.Millisecond,
						Timeout: 200 * time.Millisecond, Start: start}
				}
				before := e.Stats()
				pingAll(t, e, rounds)
				// The last forgeries may still be on their way.
				time.Sleep(2 * delay)
				st := e.Stats()

				if got := rounds[fOwn].Received(); got != pings {
					t.Errorf("the neighbour's own target: %d of %d answered: %v", got, pings, rounds[fOwn].RTTs)
				}
				for _, i := range []int{fReplies, fErrors, fShortQuote} {
					if got := rounds[i].Received(); got != 0 {
						t.Errorf("target %d (%s), which nobody answers: %d of %d answered: %v", i, rounds[i].Target,
							got, pings, rounds[i].RTTs)
					}
				}
				counters := []struct {
					name      string
					got, want uint64
				}{
					{"timed out", st.TimedOut - before.TimedOut, 3 * pings},
					{"ICMP errors", st.ICMPErrors - before.ICMPErrors, 0},
					{"foreign replies", st.Foreign - before.Foreign, pings},
					{"unverified ICMP errors", st.UnverifiedErrors - before.UnverifiedErrors, 2 * pings},
				}
				for _, c := range counters {
					if c.got != c.want {
						t.Errorf("%s counted %d, want %d (stats %+v)", c.name, c.got, c.want, st)
					}
				}
			})
		}
	}
}
