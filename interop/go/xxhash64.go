package main

// XXH64, written from the xxHash specification (doc/xxhash_spec.md in the
// xxHash repository, "XXH64 Algorithm Description"). Upstream's snapshot
// checksum digests every entry with it (seed 0); the standard library has
// no xxHash, and this peer takes no dependencies, hence our own.
//
// All arithmetic is modulo 2^64 (Go's unsigned overflow), and every lane is
// read little-endian, whatever the host, as the specification requires.

import (
	"encoding/binary"
	"math/bits"
)

const (
	xxPrime1 uint64 = 0x9E3779B185EBCA87
	xxPrime2 uint64 = 0xC2B2AE3D27D4EB4F
	xxPrime3 uint64 = 0x165667B19E3779F9
	xxPrime4 uint64 = 0x85EBCA77C2B2AE63
	xxPrime5 uint64 = 0x27D4EB2F165667C5
)

// xxh64 is a streaming XXH64 state: the input may arrive in any number of
// Writes (the checksum digests a length prefix, a key and a value without
// copying them into one buffer), and the digest equals that of the
// concatenation.
type xxh64 struct {
	seed  uint64
	acc   [4]uint64 // the four stripe accumulators
	buf   [32]byte  // an incomplete stripe
	nbuf  int       // bytes held in buf
	total uint64    // bytes written in all
}

func newXXH64(seed uint64) *xxh64 {
	d := &xxh64{}
	d.Reset(seed)
	return d
}

// Reset starts a new digest with seed.
func (d *xxh64) Reset(seed uint64) {
	*d = xxh64{seed: seed}
	d.acc = [4]uint64{seed + xxPrime1 + xxPrime2, seed + xxPrime2, seed, seed - xxPrime1}
}

// xxRound mixes one 8-byte lane into an accumulator.
func xxRound(acc, lane uint64) uint64 {
	acc += lane * xxPrime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * xxPrime1
}

// xxMerge folds one stripe accumulator into the converged accumulator.
func xxMerge(acc, lane uint64) uint64 {
	acc ^= xxRound(0, lane)
	return acc*xxPrime1 + xxPrime4
}

// stripe consumes one 32-byte stripe, one lane per accumulator.
func (d *xxh64) stripe(p []byte) {
	for i := range d.acc {
		d.acc[i] = xxRound(d.acc[i], binary.LittleEndian.Uint64(p[8*i:]))
	}
}

// Write adds p to the input; it never fails.
func (d *xxh64) Write(p []byte) (int, error) {
	n := len(p)
	d.total += uint64(n)
	if d.nbuf > 0 {
		// Complete the buffered stripe first.
		c := copy(d.buf[d.nbuf:], p)
		d.nbuf += c
		p = p[c:]
		if d.nbuf < len(d.buf) {
			return n, nil
		}
		d.stripe(d.buf[:])
		d.nbuf = 0
	}
	for len(p) >= 32 {
		d.stripe(p[:32])
		p = p[32:]
	}
	d.nbuf = copy(d.buf[:], p)
	return n, nil
}

// Sum64 is the digest of everything written so far; the state is left as
// it was, so more may be written.
func (d *xxh64) Sum64() uint64 {
	var acc uint64
	if d.total >= 32 {
		// At least one full stripe went through the accumulators.
		a := d.acc
		acc = bits.RotateLeft64(a[0], 1) + bits.RotateLeft64(a[1], 7) +
			bits.RotateLeft64(a[2], 12) + bits.RotateLeft64(a[3], 18)
		for _, lane := range a {
			acc = xxMerge(acc, lane)
		}
	} else {
		// Short input: no stripe was processed; start from the seed.
		acc = d.seed + xxPrime5
	}
	acc += d.total

	// The remaining 0..31 bytes: 8-byte lanes, then a 4-byte one, then
	// single bytes.
	p := d.buf[:d.nbuf]
	for len(p) >= 8 {
		acc ^= xxRound(0, binary.LittleEndian.Uint64(p))
		acc = bits.RotateLeft64(acc, 27)*xxPrime1 + xxPrime4
		p = p[8:]
	}
	if len(p) >= 4 {
		acc ^= uint64(binary.LittleEndian.Uint32(p)) * xxPrime1
		acc = bits.RotateLeft64(acc, 23)*xxPrime2 + xxPrime3
		p = p[4:]
	}
	for _, b := range p {
		acc ^= uint64(b) * xxPrime5
		acc = bits.RotateLeft64(acc, 11) * xxPrime1
	}

	// Avalanche.
	acc ^= acc >> 33
	acc *= xxPrime2
	acc ^= acc >> 29
	acc *= xxPrime3
	acc ^= acc >> 32
	return acc
}

// xxhash64 is the one-shot digest of p with seed.
func xxhash64(p []byte, seed uint64) uint64 {
	d := newXXH64(seed)
	d.Write(p)
	return d.Sum64()
}
