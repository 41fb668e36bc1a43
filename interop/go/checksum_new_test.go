//go:build !v325

package main

// Snapshot checksums end to end (the new layout only): the server and hub
// modes against the client mode and against hand-driven clients.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

// checksumClient is a client config asking for checksums and requiring
// them.
func checksumClient(addr string, compress bool) clientConfig {
	return clientConfig{connect: addr, syncer: "felix", compress: compress, hostname: "sums",
		readTimeout: 10 * time.Second, dialTimeout: 5 * time.Second, checksums: true, requireSums: true}
}

func TestLoopbackChecksums(t *testing.T) {
	dir := t.TempDir()
	snapPath, updPath := writeTestData(t, dir, 600)
	data, err := loadServerData(snapPath, updPath, false)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, l := range data.updates {
		if l.update != nil {
			records++
		}
	}
	final := fromScratch(data.final)
	for _, c := range []struct {
		name     string
		compress bool
		interval time.Duration
		want     int // checksums
	}{
		// After the initial in-sync, then after every record (a batch each).
		{"every batch", false, 0, 1 + records},
		{"every batch, compressed", true, 0, 1 + records},
		// The default interval: the run is over long before it passes.
		{"default interval", false, 30 * time.Second, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testServerConfig()
			cfg.compress = c.compress
			cfg.checksumInterval = c.interval
			addr, done := startServer(t, cfg, data)
			summary, state, err := runClient(checksumClient(addr, c.compress))
			res := <-done
			if res.err != nil || err != nil {
				t.Fatalf("server %v, client %v (%v)", res.err, err, summary)
			}
			if summary.get("checksums_verified") != c.want || summary.get("checksum_mismatches") != 0 ||
				res.summary.get("checksums_sent") != c.want || res.summary.get("checksums") != true {
				t.Errorf("client %v\nserver %v", summary, res.summary)
			}
			if got := fromScratch(state); got != final {
				t.Errorf("client state %+v, server's %+v", got, final)
			}
			for _, o := range []ordered{summary, res.summary} {
				if o.get("checksum") != final.hex() || o.get("kv_count") != final.KVCount {
					t.Errorf("final checksum in %v, want %s/%d", o, final.hex(), final.KVCount)
				}
			}
			if summary.get("last_server_checksum") != final.hex() && c.interval == 0 {
				t.Errorf("the last checksum is not the final state: %v", summary)
			}
			if sh := summary.get("server_hello").(ordered); sh.get("SupportsChecksum") != true {
				t.Errorf("server hello %v", sh)
			}
		})
	}
}

// A client that does not ask gets none, and the hello says so; a server
// with --no-checksums offers none to a client that asks.
func TestChecksumsOnlyWhenBothWant(t *testing.T) {
	dir := t.TempDir()
	snapPath, updPath := writeTestData(t, dir, 50)
	data, err := loadServerData(snapPath, updPath, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testServerConfig()
	addr, done := startServer(t, cfg, data)
	summary, _, err := runClient(clientConfig{connect: addr, readTimeout: 10 * time.Second, dialTimeout: 5 * time.Second})
	res := <-done
	if err != nil || res.err != nil {
		t.Fatalf("client %v, server %v", err, res.err)
	}
	if res.summary.get("checksums") != false || res.summary.get("checksums_sent") != 0 ||
		res.summary.get("client_hello").(ordered).get("SupportsChecksum") != false ||
		summary.get("server_hello").(ordered).get("SupportsChecksum") != false || summary.get("checksums_verified") != nil {
		t.Errorf("server %v\nclient %v", res.summary, summary)
	}

	cfg.noChecksums = true
	addr, done = startServer(t, cfg, data)
	summary, _, err = runClient(checksumClient(addr, false))
	res = <-done
	if res.err != nil || err == nil || !strings.Contains(err.Error(), "no checksum was verified") {
		t.Fatalf("server %v, client %v", res.err, err)
	}
	if summary.get("checksums_verified") != 0 || summary.get("last_server_checksum") != nil ||
		summary.get("server_hello").(ordered).get("SupportsChecksum") != false || res.summary.get("checksums_sent") != 0 {
		t.Errorf("client %v\nserver %v", summary, res.summary)
	}
}

func TestClientChecksChecksums(t *testing.T) {
	agreed := syncproto.NewServerHello("x", "felix", 1)
	agreed.SupportsChecksum = true
	plain := syncproto.NewServerHello("x", "felix", 1)
	kvs := syncproto.MsgKVs{KVs: []syncproto.SerializedUpdate{{Key: "k", Value: []byte("v")}}}
	good := syncproto.MsgChecksum{Checksum: entryDigest("k", []byte("v")), KVCount: 1}
	cc := func(addr string, asks bool) clientConfig {
		c := checksumClient(addr, false)
		c.checksums, c.requireSums = asks, asks
		return c
	}
	for _, c := range []struct {
		name string
		asks bool
		msgs []interface{}
		want string // error, "" for success
	}{
		{"verified", true, []interface{}{agreed, kvs, good}, ""},
		{"unasked", false, []interface{}{plain, kvs, good}, "server sent a checksum without being asked"},
		{"declined, then sent", true, []interface{}{plain, kvs, good}, "after its ServerHello declined them"},
		{"agreed unasked", false, []interface{}{agreed}, "which the client did not ask for"},
		{"wrong count", true, []interface{}{agreed, kvs, syncproto.MsgChecksum{Checksum: good.Checksum, KVCount: 2}, good},
			"1 of 2 checksums mismatched (first: checksum 1: server " + fmt.Sprintf("%#016x", good.Checksum) + " with 2 keys"},
		{"wrong sum", true, []interface{}{agreed, syncproto.MsgChecksum{Checksum: 1}, kvs, good},
			"1 of 2 checksums mismatched (first: checksum 1: server 0x0000000000000001 with 0 keys, client 0x0000000000000000 with 0 keys)"},
	} {
		summary, _, err := runClient(cc(fakeServer(t, c.msgs...), c.asks))
		if c.want == "" {
			if err != nil || summary.get("checksums_verified") != 1 {
				t.Errorf("%s: %v %v", c.name, err, summary)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// The hub with coalesced breadcrumbs: every checksum describes the state
// after the last breadcrumb of its message.
func TestHubChecksumsWithCoalescing(t *testing.T) {
	cfg := testHubConfig()
	cfg.pingInterval = 0
	cfg.maxMessageSize = 5
	cfg.checksumInterval = 0
	var clockMu sync.Mutex
	base, ticks := time.Now(), 0
	cfg.now = func() time.Time { // every breadcrumb a second younger
		clockMu.Lock()
		defer clockMu.Unlock()
		ticks++
		return base.Add(time.Duration(ticks) * time.Second)
	}
	h := startHub(t, cfg)
	h.send(`{"key":"s1","value":"x"}`, `{"key":"s2","value":"y"}`, `{"status":"in-sync"}`, `{"cmd":"flush"}`)
	h.sync(1)

	hello := syncproto.NewClientHello("sums", "i", "v", "", false, 1)
	syncproto.RequestChecksums(&hello, true)
	c := dialRaw(t, h.addr, hello)
	if sh, ok := c.mustRead().(syncproto.MsgServerHello); !ok || !sh.SupportsChecksum {
		t.Fatalf("hello %+v", sh)
	}
	mirror, sum := datastore{}, stateChecksum{}
	expectSum := func(what string) {
		t.Helper()
		m, ok := c.mustRead().(syncproto.MsgChecksum)
		if !ok || m.Checksum != sum.Checksum || m.KVCount != sum.KVCount {
			t.Fatalf("%s: got %+v, want %+v", what, m, sum)
		}
	}
	readKVs := func() int {
		t.Helper()
		m, ok := c.mustRead().(syncproto.MsgKVs)
		if !ok {
			t.Fatalf("got %v, want KVs", m)
		}
		for _, u := range m.KVs {
			mirror.applySum(u, &sum)
		}
		return len(m.KVs)
	}
	readKVs()
	if m := c.mustRead(); m != (syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync}) {
		t.Fatalf("after the snapshot: %v", m)
	}
	expectSum("after the initial in-sync")

	// Ten changes (replacements, a deletion, a no-op, a deletion of an
	// absent key) in breadcrumbs of 3, 3, 3, 1, coalesced into two
	// messages: each is followed by the checksum after its last breadcrumb.
	for i := 0; i < 8; i++ {
		h.send(fmt.Sprintf(`{"key":"d%02d","value":"v%d"}`, i, i))
	}
	h.send(`{"key":"s1","value":null}`, `{"key":"gone","value":null}`, `{"cmd":"flush"}`)
	var sizes []int
	for len(sizes) < 2 {
		sizes = append(sizes, readKVs())
		expectSum(fmt.Sprintf("after message %d", len(sizes)))
	}
	if fmt.Sprint(sizes) != "[6 4]" {
		t.Errorf("messages of %v", sizes)
	}
	h.send(`{"key":"s2","value":"y","type":"updated"}`, `{"key":"d00","value":"changed"}`, `{"cmd":"flush"}`)
	if n := readKVs(); n != 1 {
		t.Errorf("the no-op was sent: %d updates", n)
	}
	expectSum("after a single breadcrumb")

	drained := c.drain()
	conns, code := h.finish()
	if err := <-drained; err != nil {
		t.Errorf("client: %v", err)
	}
	if code != exitOK || conns[0]["checksums"] != true || conns[0]["checksums_sent"] != float64(4) {
		t.Errorf("exit %d, connections %v", code, conns)
	}
}

// Hub clients joining during churn, asking for checksums at every batch:
// all verify.
func TestHubChurnChecksums(t *testing.T) {
	cfg := testHubConfig()
	cfg.compress = true
	cfg.maxBatchSize = 5
	cfg.minBatchingAge = time.Millisecond
	cfg.checksumInterval = 0
	h := startHub(t, cfg)
	var clients []chan clientResult
	for round := 0; round < 12; round++ {
		for i := 0; i < 20; i++ {
			k := (round*7 + i*3) % 40
			if (round+i)%4 == 0 {
				h.send(fmt.Sprintf(`{"key":"/calico/v1/k%02d","value":null}`, k))
			} else {
				h.send(fmt.Sprintf(`{"key":"/calico/v1/k%02d","value":"r%d"}`, k, round%3))
			}
		}
		h.send([]string{`{"status":"resync"}`, `{"status":"in-sync"}`}[round%2], `{"cmd":"flush"}`)
		if round%4 == 1 {
			cc := checksumClient(h.addr, round%8 == 1)
			cc.hostname = fmt.Sprintf("c%d", round)
			clients = append(clients, startClient(cc))
		}
	}
	for range clients {
		h.waitFor("event", "streaming")
	}
	conns, code := h.finish()
	if code != exitOK || len(conns) != len(clients) {
		t.Fatalf("exit %d, %d connections", code, len(conns))
	}
	sent := map[string]interface{}{}
	for _, c := range conns {
		sent[c["hostname"].(string)] = c["checksums_sent"]
	}
	for i, r := range clients {
		res := <-r
		if res.err != nil {
			t.Fatalf("client %d: %v %v", i, res.err, res.summary)
		}
		host := fmt.Sprintf("c%d", 4*i+1)
		if v := res.summary.get("checksums_verified").(int); v < 1 || float64(v) != sent[host] {
			t.Errorf("client %s verified %d, hub sent %v", host, v, sent[host])
		}
	}
}
