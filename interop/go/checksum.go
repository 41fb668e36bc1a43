package main

// Snapshot checksums (upstream's newest generation, DESIGN.md §1b): each
// live entry's digest is xxhash64(seed 0) over uint64-LE(len(key)) ‖ key ‖
// value, the key and value bytes as they travel; a store's checksum is the
// XOR of its live entries' digests, with the number of live entries beside
// it. XOR is its own inverse and order-free, so the checksum is kept up to
// date change by change (never by scanning the store): an insert XORs the
// new digest in, a deletion XORs the old one out, a replacement does both.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"syncproto/interop/go/syncproto"
)

// entryDigest is one live entry's digest. The length prefix keeps
// ("ab","c") and ("a","bc") apart.
func entryDigest(key string, value []byte) uint64 {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(key)))
	d := newXXH64(0)
	d.Write(n[:])
	d.Write([]byte(key))
	d.Write(value)
	return d.Sum64()
}

// stateChecksum is a store's checksum and live-entry count, as MsgChecksum
// carries them.
type stateChecksum struct {
	Checksum uint64
	KVCount  int64
}

// replace accounts for key's entry changing from old to new, where an
// empty (or nil) value means the key is absent: an update with an empty
// value is a deletion on the wire, since gob omits empty byte slices. A
// write of an identical value and a deletion of an absent key change
// nothing.
func (s *stateChecksum) replace(key string, old, new []byte) {
	if bytes.Equal(old, new) {
		return
	}
	if len(old) > 0 {
		s.Checksum ^= entryDigest(key, old)
		s.KVCount--
	}
	if len(new) > 0 {
		s.Checksum ^= entryDigest(key, new)
		s.KVCount++
	}
}

// hex renders the checksum as the summaries print it: 0x and 16 digits.
func (s stateChecksum) hex() string { return fmt.Sprintf("0x%016x", s.Checksum) }

// message is the MsgChecksum for this state (ok false in v3.2.5).
func (s stateChecksum) message() (interface{}, bool) {
	return syncproto.NewChecksum(s.Checksum, s.KVCount)
}

// applySum is datastore.apply keeping sum in step with the change.
func (d datastore) applySum(u syncproto.SerializedUpdate, sum *stateChecksum) {
	sum.replace(u.Key, d[u.Key].Value, u.Value) // an absent key's zero value has a nil Value
	d.apply(u)
}

// checksumSchedule decides when one server-side connection sends a
// MsgChecksum, as upstream's server does: right after the SyncStatus(InSync)
// that ends the initial sync, then after a batch of deltas at most once per
// interval (0: after every batch), each describing the state after what
// was just sent. A nil schedule (checksums not negotiated) never sends.
type checksumSchedule struct {
	interval time.Duration
	synced   bool      // the first in-sync went out
	lastSent time.Time // when the last checksum went out
}

// newChecksumSchedule is the schedule of a connection whose client asked
// for checksums (wanted), or nil when it did not or they are disabled.
func newChecksumSchedule(enabled, wanted bool, interval time.Duration) *checksumSchedule {
	if !enabled || !wanted || !syncproto.SupportsChecksums {
		return nil
	}
	return &checksumSchedule{interval: interval}
}

// after is called once the connection has sent a message of deltas
// (deltas), a status (statusSent, status), or both (a hub breadcrumb's
// deltas then its status); it reports whether a checksum goes next.
func (s *checksumSchedule) after(deltas bool, statusSent bool, status syncproto.SyncStatus, now time.Time) bool {
	if s == nil {
		return false
	}
	if statusSent && status == syncproto.InSync && !s.synced {
		// The initial sync ends: a checksum at once, whatever the interval.
		s.synced, s.lastSent = true, now
		return true
	}
	// Before the initial sync ends, deltas get no checksum: the client's
	// state is not yet meant to be complete.
	if deltas && s.synced && now.Sub(s.lastSent) >= s.interval {
		s.lastSent = now
		return true
	}
	return false
}

// checksumCheck is a client's side: the checksum of what it received, kept
// as updates are applied, and its comparisons with the server's.
type checksumCheck struct {
	local         stateChecksum
	verified      int
	mismatches    int
	last          *stateChecksum // the server's latest, nil before the first
	firstMismatch string
}

func newChecksumCheck() *checksumCheck { return &checksumCheck{} }

// compare checks a server checksum against the state received so far. The
// comparison is full (checksum and count): this peer always knows both.
func (c *checksumCheck) compare(server stateChecksum) {
	c.last = &server
	if server == c.local {
		c.verified++
		return
	}
	c.mismatches++
	if c.firstMismatch == "" {
		c.firstMismatch = fmt.Sprintf("checksum %d: server %s with %d keys, client %s with %d keys",
			c.verified+c.mismatches, server.hex(), server.KVCount, c.local.hex(), c.local.KVCount)
	}
}

// fields are the summary's checksum fields (last_server_* null before any).
func (c *checksumCheck) fields() ordered {
	var lastSum, lastCount interface{}
	if c.last != nil {
		lastSum, lastCount = c.last.hex(), c.last.KVCount
	}
	return ordered{
		{"checksums_verified", c.verified},
		{"checksum_mismatches", c.mismatches},
		{"last_server_checksum", lastSum},
		{"last_server_kv_count", lastCount},
		{"checksum", c.local.hex()},
		{"kv_count", c.local.KVCount},
	}
}

// required is --require-checksums: at least one verified, none mismatched.
func (c *checksumCheck) required() error {
	if c.mismatches > 0 {
		return fmt.Errorf("%d of %d checksums mismatched (first: %s)", c.mismatches, c.verified+c.mismatches, c.firstMismatch)
	}
	if c.verified == 0 {
		return errors.New("no checksum was verified: the server sent none")
	}
	return nil
}
