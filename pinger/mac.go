package pinger

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// macKey is an engine's secret key for authenticating its probes: SipHash-2-4 (Aumasson
// and Bernstein, "SipHash: a fast short-input PRF", 2012), a keyed function made for
// authenticating short messages. It is drawn at random for each engine and never leaves
// the process, so whoever sees some probes (the owner of one target sees all probes to
// it) cannot compute the MAC of any other.
type macKey struct{ k0, k1 uint64 }

func newMACKey() macKey {
	var b [16]byte
	rand.Read(b[:]) // never fails: it crashes the program if the kernel has no randomness
	return macKey{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

// probeMAC authenticates a probe's serial together with its identifier and sequence
// number: it is the SipHash-2-4 of the 12-byte message made of the serial, the identifier
// and the sequence number, each little-endian. The target address is not part of it: a
// probe's identifier, sequence number and serial name the one slot, and thus the one
// round and target, that it was sent for, and without the target a reply can be checked
// even after its round ended and its slot was reused.
func (k macKey) probeMAC(serial uint64, id, seq uint16) uint64 {
	const msgLen = 12
	s := newSipHash(k)
	s.compress(serial)
	s.compress(uint64(id) | uint64(seq)<<16 | msgLen<<56)
	return s.finish()
}

// sipHash is the state of one SipHash-2-4 computation, written from the paper: the
// message is read as little-endian 64-bit words, the last of which holds the final
// bytes and, in its top byte, the message length modulo 256.
type sipHash struct{ v0, v1, v2, v3 uint64 }

func newSipHash(k macKey) sipHash {
	return sipHash{
		v0: k.k0 ^ 0x736f6d6570736575,
		v1: k.k1 ^ 0x646f72616e646f6d,
		v2: k.k0 ^ 0x6c7967656e657261,
		v3: k.k1 ^ 0x7465646279746573,
	}
}

// compress absorbs one message word with c = 2 rounds.
func (s *sipHash) compress(m uint64) {
	s.v3 ^= m
	s.rounds(2)
	s.v0 ^= m
}

// finish returns the 64-bit result after d = 4 rounds.
func (s *sipHash) finish() uint64 {
	s.v2 ^= 0xff
	s.rounds(4)
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}

// rounds applies n SipRounds.
func (s *sipHash) rounds(n int) {
	v0, v1, v2, v3 := s.v0, s.v1, s.v2, s.v3
	for range n {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	s.v0, s.v1, s.v2, s.v3 = v0, v1, v2, v3
}
