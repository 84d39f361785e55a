package pinger

import (
	"encoding/binary"
	"testing"
)

// FuzzParseICMP: whatever arrives on a socket, the parser never panics, and what it
// takes for a reply or an error lies inside the message. The seeds are in
// testdata/fuzz/FuzzParseICMP.
//
//	go test -run '^$' -fuzz FuzzParseICMP -fuzztime 1m ./pinger/
func FuzzParseICMP(f *testing.F) {
	echo := make([]byte, icmpHeaderLen+DefaultSize)
	writeEcho(echo[:echoHeadLen], echo[echoHeadLen:], false, 0x1234, 7, 0xfeedface, 42)
	reply := append([]byte(nil), echo...)
	reply[0] = icmp4EchoReply
	f.Add(reply, false)
	f.Add(reply[:icmpHeaderLen+3], true)
	f.Fuzz(func(t *testing.T, msg []byte, v6 bool) {
		var p packet
		parseICMP(msg, v6, &p)
		switch p.kind {
		case kindReply:
			if len(msg) < icmpHeaderLen || len(p.payload) != len(msg)-icmpHeaderLen || p.id != binary.BigEndian.Uint16(msg[4:]) {
				t.Fatalf("reply %+v does not match the message % x", p, msg)
			}
		case kindError:
			if len(p.payload) > len(msg) {
				t.Fatalf("error payload of %d bytes from a %d-byte message", len(p.payload), len(msg))
			}
		}
		patternIntact(p.payload)
		parseEchoRequest(msg, v6, &p)
		if p.kind == kindError && len(p.payload) != len(msg)-icmpHeaderLen {
			t.Fatalf("echo request payload %d bytes from a %d-byte message", len(p.payload), len(msg))
		}
	})
}
