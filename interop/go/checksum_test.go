package main

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

// XXH64 of well-known strings (the values xxHash's own tools print).
func TestXXH64KnownStrings(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
	} {
		if got := xxhash64([]byte(c.in), 0); got != c.want {
			t.Errorf("xxhash64(%q) = %#016x, want %#016x", c.in, got, c.want)
		}
	}
}

// xxTestData is the input of the length vectors: byte i is (31i+7) mod 256.
func xxTestData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + 7) % 256)
	}
	return b
}

// Lengths on both sides of every path of the algorithm (the 1-, 4- and
// 8-byte tails, one and several 32-byte stripes) and a non-zero seed.
// The digests were computed with an independent implementation (the Rust
// xxhash-rust crate, 0.8.21).
var xxLengthVectors = []struct {
	n    int
	seed uint64
	want uint64
}{
	{0, 0x0, 0xef46db3751d8e999},
	{1, 0x0, 0xa96c7f0ce858bbb7},
	{3, 0x0, 0x56e6957632a487f9},
	{4, 0x0, 0xc60d15b1e3ff8f04},
	{7, 0x0, 0xafbefc3d6c6f9a8e},
	{8, 0x0, 0x3da5c7aa269683e0},
	{9, 0x0, 0x4b17a9ba9e215c09},
	{15, 0x0, 0xae2a37eb9357caa7},
	{16, 0x0, 0xa19ad429b02bc413},
	{31, 0x0, 0x4a74f3a1a39ad4a1},
	{32, 0x0, 0x8d57d6a4671cc43d},
	{33, 0x0, 0x62c9fd21ed857664},
	{63, 0x0, 0x5c320a0d2707057f},
	{64, 0x0, 0x7bbabbc45729d17e},
	{65, 0x0, 0xf3980c34bae65dc1},
	{100, 0x0, 0xefa0ad2d3e70c151},
	{1000, 0x0, 0x99594f4828043d35},
	{0, 0x9e3779b97f4a7c15, 0xc4349fc93c010000},
	{1, 0x9e3779b97f4a7c15, 0x585882422a6165e7},
	{3, 0x9e3779b97f4a7c15, 0x5acb303e78133c22},
	{4, 0x9e3779b97f4a7c15, 0x7d51d5e2461732b3},
	{7, 0x9e3779b97f4a7c15, 0x2ce9adec2b2c8104},
	{8, 0x9e3779b97f4a7c15, 0x758848f033fa76a2},
	{9, 0x9e3779b97f4a7c15, 0xd4576cf554b7d929},
	{15, 0x9e3779b97f4a7c15, 0xa18d5c90d722cee3},
	{16, 0x9e3779b97f4a7c15, 0xe3594f9058b426e7},
	{31, 0x9e3779b97f4a7c15, 0x8137041f5af88413},
	{32, 0x9e3779b97f4a7c15, 0x184ebcf3745cd46c},
	{33, 0x9e3779b97f4a7c15, 0x52fac3c981f3cc2e},
	{63, 0x9e3779b97f4a7c15, 0x64ef99a2e94cc7bd},
	{64, 0x9e3779b97f4a7c15, 0xf7f22435fe1ab128},
	{65, 0x9e3779b97f4a7c15, 0x7a0b76a812617c73},
	{100, 0x9e3779b97f4a7c15, 0xbc7ab33be7528c18},
	{1000, 0x9e3779b97f4a7c15, 0xda717f741f399f3f},
}

func TestXXH64Lengths(t *testing.T) {
	data := xxTestData(1000)
	for _, v := range xxLengthVectors {
		if got := xxhash64(data[:v.n], v.seed); got != v.want {
			t.Errorf("len %d seed %#x: %#016x, want %#016x", v.n, v.seed, got, v.want)
		}
	}
}

// However the input is split across Writes, the digest is the same, and
// Sum64 does not disturb the state.
func TestXXH64Streaming(t *testing.T) {
	data := xxTestData(1000)
	rng := rand.New(rand.NewSource(1))
	for _, v := range xxLengthVectors {
		for trial := 0; trial < 20; trial++ {
			d := newXXH64(v.seed)
			rest := data[:v.n]
			for len(rest) > 0 {
				k := rng.Intn(len(rest)+1) % 40
				d.Write(rest[:k])
				_ = d.Sum64()
				rest = rest[k:]
			}
			if got := d.Sum64(); got != v.want {
				t.Fatalf("len %d seed %#x split randomly: %#016x, want %#016x", v.n, v.seed, got, v.want)
			}
		}
	}
}

// Upstream's golden entry digests (DESIGN.md §1b).
func TestEntryDigestGoldenVectors(t *testing.T) {
	for _, c := range []struct {
		key, value string
		want       uint64
	}{
		{"", "", 0x34c96acdcadb1bbb},
		{"a", "", 0xbd1698eada10e1c3},
		{"", "a", 0xcb1a3b8dd9fbe162},
		{"ab", "c", 0x4b60798139549d1d},
		{"a", "bc", 0x414239d99b92288c},
	} {
		if got := entryDigest(c.key, []byte(c.value)); got != c.want {
			t.Errorf("entryDigest(%q, %q) = %#016x, want %#016x", c.key, c.value, got, c.want)
		}
	}
}

// fromScratch is the checksum of a store computed the slow way, for
// comparison with the incremental one.
func fromScratch(d datastore) stateChecksum {
	var s stateChecksum
	for k, u := range d {
		s.Checksum ^= entryDigest(k, u.Value)
		s.KVCount++
	}
	return s
}

func TestStateChecksumIncremental(t *testing.T) {
	put := func(k, v string) syncproto.SerializedUpdate {
		var value []byte
		if v != "" {
			value = []byte(v)
		}
		return syncproto.SerializedUpdate{Key: k, Value: value}
	}
	d := datastore{}
	var sum stateChecksum
	d.applySum(put("a", "1"), &sum)
	d.applySum(put("b", "2"), &sum)
	before := sum

	// A write of an identical value and a deletion of an absent key change
	// nothing; an empty value deletes like nil.
	d.applySum(put("a", "1"), &sum)
	d.applySum(put("absent", ""), &sum)
	if sum != before {
		t.Fatalf("no-ops changed the checksum: %+v -> %+v", before, sum)
	}
	d.applySum(syncproto.SerializedUpdate{Key: "b", Value: []byte{}}, &sum)
	if want := (stateChecksum{entryDigest("a", []byte("1")), 1}); sum != want {
		t.Fatalf("after deleting b: %+v, want %+v", sum, want)
	}
	// A replacement takes the old digest out and puts the new one in.
	d.applySum(put("a", "changed"), &sum)
	if want := (stateChecksum{entryDigest("a", []byte("changed")), 1}); sum != want {
		t.Fatalf("after replacing a: %+v, want %+v", sum, want)
	}
	// Deleting everything gets back to zero.
	d.applySum(put("a", ""), &sum)
	if sum != (stateChecksum{}) {
		t.Fatalf("empty store: %+v", sum)
	}

	// Random churn: always equal to the checksum computed from scratch, and
	// independent of the order the final entries were written in.
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 5000; i++ {
		k := fmt.Sprintf("k%02d", rng.Intn(40))
		v := []string{"", "x", "y", "a longer value of more than thirty-two bytes"}[rng.Intn(4)]
		d.applySum(put(k, v), &sum)
		if i%97 == 0 {
			if want := fromScratch(d); sum != want {
				t.Fatalf("step %d: incremental %+v, from scratch %+v", i, sum, want)
			}
		}
	}
	var rebuilt stateChecksum
	fresh := datastore{}
	for _, k := range d.sortedKeys() {
		fresh.applySum(d[k], &rebuilt)
	}
	if rebuilt != sum || sum != fromScratch(d) {
		t.Fatalf("rebuilt %+v, incremental %+v", rebuilt, sum)
	}
}

func TestChecksumSchedule(t *testing.T) {
	start := time.Now()
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	var none *checksumSchedule
	if none.after(true, true, syncproto.InSync, at(0)) {
		t.Error("a nil schedule sent a checksum")
	}
	if newChecksumSchedule(true, false, 0) != nil || newChecksumSchedule(false, true, 0) != nil {
		t.Error("a schedule for a client that did not ask, or with checksums disabled")
	}
	if !syncproto.SupportsChecksums {
		if newChecksumSchedule(true, true, 0) != nil {
			t.Error("a schedule in a layout without checksums")
		}
		return
	}
	s := newChecksumSchedule(true, true, 30*time.Second)
	steps := []struct {
		deltas, statusSent bool
		status             syncproto.SyncStatus
		at                 int
		want               bool
	}{
		{true, false, 0, 0, false},                          // deltas before the initial sync: none
		{false, true, syncproto.ResyncInProgress, 0, false}, // not in-sync
		{true, true, syncproto.InSync, 1, true},             // the initial sync ends: at once
		{true, false, 0, 10, false},                         // within the interval
		{true, false, 0, 31, true},                          // the interval has passed
		{false, true, syncproto.InSync, 100, false},         // a later in-sync alone: none
		{true, true, syncproto.ResyncInProgress, 100, true}, // deltas, interval passed
		{false, false, 0, 200, false},                       // nothing sent
	}
	for i, st := range steps {
		if got := s.after(st.deltas, st.statusSent, st.status, at(st.at)); got != st.want {
			t.Errorf("step %d: %v, want %v", i, got, st.want)
		}
	}
	every := newChecksumSchedule(true, true, 0)
	every.after(false, true, syncproto.InSync, at(0))
	for i := 0; i < 3; i++ {
		if !every.after(true, false, 0, at(0)) {
			t.Errorf("interval 0: batch %d without a checksum", i)
		}
	}
}

// A v3.2.5 hello cannot ask for checksums, so --require-checksums fails
// there; in the new layout the initial checksum verifies. Either way the
// summary's own checksum is that of the state received.
func TestRequireChecksumsByLayout(t *testing.T) {
	dir := t.TempDir()
	snapPath, updPath := writeTestData(t, dir, 40)
	data, err := loadServerData(snapPath, updPath, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testServerConfig()
	cfg.checksumInterval = time.Hour // only the initial checksum
	addr, done := startServer(t, cfg, data)
	summary, state, err := runClient(clientConfig{connect: addr, readTimeout: 10 * time.Second, dialTimeout: 5 * time.Second,
		checksums: true, requireSums: true})
	if res := <-done; res.err != nil {
		t.Fatalf("server: %v", res.err)
	}
	if syncproto.SupportsChecksums {
		if err != nil || summary.get("checksums_verified") != 1 {
			t.Fatalf("client %v %v", err, summary)
		}
	} else if err == nil || !strings.Contains(err.Error(), "no checksum was verified") || summary == nil {
		t.Fatalf("client %v %v", err, summary)
	}
	if want := fromScratch(state); summary.get("checksum") != want.hex() || summary.get("kv_count") != want.KVCount {
		t.Errorf("summary %v, state %+v", summary, want)
	}
}
