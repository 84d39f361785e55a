package pinger

import (
	"encoding/binary"
	"net/netip"
)

// ICMP message types the engine sends, expects, or treats as an error for one ping.
const (
	icmp4EchoReply      = 0
	icmp4Unreachable    = 3
	icmp4Echo           = 8
	icmp4TimeExceeded   = 11
	icmp4ParamProblem   = 12
	icmp6Unreachable    = 1
	icmp6PacketTooBig   = 2
	icmp6TimeExceeded   = 3
	icmp6ParamProblem   = 4
	icmp6Echo           = 128
	icmp6EchoReply      = 129
	icmpHeaderLen       = 8
	payloadSerialOffset = 0 // 8 bytes: the probe's serial number
	payloadMACOffset    = 8 // 8 bytes: its MAC (macKey.probeMAC)
)

// fillPattern writes the payload filler after the serial and MAC. Replies must echo it
// unchanged; a reply whose filler differs was corrupted on the way.
func fillPattern(payload []byte) {
	for i := MinSize; i < len(payload); i++ {
		payload[i] = byte(i)
	}
}

// patternIntact reports whether the filler part of a received payload is unchanged.
func patternIntact(payload []byte) bool {
	for i := MinSize; i < len(payload); i++ {
		if payload[i] != byte(i) {
			return false
		}
	}
	return true
}

// echoHeadLen is the part of an echo request written per probe: the ICMP header, the
// serial and its MAC. The filler after it is the same for every probe of a size.
const echoHeadLen = icmpHeaderLen + MinSize

// writeEcho fills in an echo request's header, serial and MAC in head, which is sent
// followed by filler, the rest of the payload: so many probes can share one filler. On
// IPv4 raw sockets we compute the checksum; the kernel does it for ICMPv6 and for
// datagram sockets, where it also sets the identifier.
func writeEcho(head, filler []byte, v6 bool, id, seq uint16, serial, mac uint64) {
	if v6 {
		head[0] = icmp6Echo
	} else {
		head[0] = icmp4Echo
	}
	head[1] = 0
	head[2], head[3] = 0, 0
	binary.BigEndian.PutUint16(head[4:], id)
	binary.BigEndian.PutUint16(head[6:], seq)
	binary.BigEndian.PutUint64(head[icmpHeaderLen+payloadSerialOffset:], serial)
	binary.BigEndian.PutUint64(head[icmpHeaderLen+payloadMACOffset:], mac)
	if !v6 {
		// head has an even length, so the filler's 16-bit words line up with the message's.
		binary.BigEndian.PutUint16(head[2:], fold(sum16(head[:echoHeadLen])+sum16(filler)))
	}
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	return fold(sum16(b))
}

// sum16 adds up b as big-endian 16-bit words, an odd last byte padded with zero. It does
// not overflow for the 64 KiB of the largest message.
func sum16(b []byte) uint32 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// fold turns a sum of 16-bit words into the Internet checksum.
func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// packetKind classifies a received ICMP message.
type packetKind uint8

const (
	kindOther packetKind = iota // not for us: ignored
	kindReply                   // an echo reply
	kindError                   // an ICMP error quoting one of our echo requests
)

// packet is what the receive path extracts from one ICMP message, without allocating.
type packet struct {
	kind    packetKind
	id, seq uint16
	// payload of the echo reply, or of the quoted echo request in an ICMP error (which
	// may be cut short by the router)
	payload []byte
	// quotedDst is the destination of the quoted request (errors only), in 16-byte form.
	quotedDst [16]byte
}

// parseICMP parses an ICMP message (starting at the ICMP header) received on a socket of
// the given family. IPv4 raw sockets include the IP header, which the caller strips.
func parseICMP(msg []byte, v6 bool, p *packet) {
	p.kind = kindOther
	if len(msg) < icmpHeaderLen {
		return
	}
	typ := msg[0]
	switch {
	case !v6 && typ == icmp4EchoReply, v6 && typ == icmp6EchoReply:
		p.kind = kindReply
		p.id = binary.BigEndian.Uint16(msg[4:])
		p.seq = binary.BigEndian.Uint16(msg[6:])
		p.payload = msg[icmpHeaderLen:]
	case !v6 && (typ == icmp4Unreachable || typ == icmp4TimeExceeded || typ == icmp4ParamProblem):
		parseQuoted4(msg[icmpHeaderLen:], p)
	case v6 && (typ == icmp6Unreachable || typ == icmp6PacketTooBig || typ == icmp6TimeExceeded || typ == icmp6ParamProblem):
		parseQuoted6(msg[icmpHeaderLen:], p)
	}
}

// parseQuoted4 reads the IPv4 echo request that an ICMP error quotes.
func parseQuoted4(q []byte, p *packet) {
	if len(q) < 20 || q[0]>>4 != 4 {
		return
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl+icmpHeaderLen || q[9] != 1 || q[ihl] != icmp4Echo {
		return
	}
	p.quotedDst = netip.AddrFrom4([4]byte(q[16:20])).As16()
	echo := q[ihl:]
	p.kind = kindError
	p.id = binary.BigEndian.Uint16(echo[4:])
	p.seq = binary.BigEndian.Uint16(echo[6:])
	p.payload = echo[icmpHeaderLen:]
}

// parseQuoted6 reads the IPv6 echo request that an ICMPv6 error quotes. Extension
// headers are not followed: our requests carry none.
func parseQuoted6(q []byte, p *packet) {
	const ip6HeaderLen = 40
	if len(q) < ip6HeaderLen+icmpHeaderLen || q[0]>>4 != 6 || q[6] != 58 || q[ip6HeaderLen] != icmp6Echo {
		return
	}
	p.quotedDst = [16]byte(q[24:40])
	echo := q[ip6HeaderLen:]
	p.kind = kindError
	p.id = binary.BigEndian.Uint16(echo[4:])
	p.seq = binary.BigEndian.Uint16(echo[6:])
	p.payload = echo[icmpHeaderLen:]
}

// parseEchoRequest reads one of our own echo requests as the kernel hands it back on a
// datagram socket's error queue.
func parseEchoRequest(msg []byte, v6 bool, p *packet) {
	p.kind = kindOther
	want := byte(icmp4Echo)
	if v6 {
		want = icmp6Echo
	}
	if len(msg) < icmpHeaderLen || msg[0] != want {
		return
	}
	p.kind = kindError
	p.id = binary.BigEndian.Uint16(msg[4:])
	p.seq = binary.BigEndian.Uint16(msg[6:])
	p.payload = msg[icmpHeaderLen:]
}
