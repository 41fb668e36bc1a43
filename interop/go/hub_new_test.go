//go:build !v325

package main

// Hub tests that need fields only the new layout has.

import (
	"io"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

// readAllBytes reads until the peer closes; it fails on anything but a
// clean EOF.
func readAllBytes(t *testing.T, c *rawClient) []byte {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.conn)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return b
}

func TestHubRefusesLegacyClients(t *testing.T) {
	cfg := testHubConfig()
	cfg.compress = true
	h := startHub(t, cfg)
	legacy := dialRaw(t, h.addr, syncproto.MsgClientHello{Hostname: "legacy", SupportsDecoderRestart: true,
		SupportedCompressionAlgorithms: []syncproto.CompressionAlgorithm{"snappy"}})
	if b := readAllBytes(t, legacy); len(b) != 0 {
		t.Errorf("a legacy client got %d bytes", len(b))
	}
	bgp := dialRaw(t, h.addr, syncproto.MsgClientHello{Hostname: "bgp", SyncerType: "bgp", SupportsModernPolicyKeys: true})
	if b := readAllBytes(t, bgp); len(b) != 0 {
		t.Errorf("a bgp client got %d bytes", len(b))
	}
	conns, code := h.finish()
	if code != exitOK || len(conns) != 2 {
		t.Fatalf("exit %d, %v", code, conns)
	}
	for i, want := range []string{"client does not support modern policy keys", `unsupported syncer type "bgp"`} {
		c := conns[i]
		if c["refused"] != want || c["end"] != "refused: "+want || c["kvs_sent"] != float64(0) || c["pings_sent"] != float64(0) {
			t.Errorf("connection %d: %v", i+1, c)
		}
	}
	if conns[0]["hostname"] != "legacy" || conns[1]["hostname"] != "bgp" {
		t.Errorf("hostnames: %v", conns)
	}
}

func TestHubAllowsLegacyClients(t *testing.T) {
	cfg := testHubConfig()
	cfg.allowLegacy = true
	h := startHub(t, cfg)
	h.send(`{"key":"k","value":"v"}`, `{"status":"in-sync"}`, `{"cmd":"flush"}`)
	h.sync(1)
	c := dialRaw(t, h.addr, syncproto.MsgClientHello{Hostname: "legacy"})
	sh, ok := c.mustRead().(syncproto.MsgServerHello)
	if !ok || sh.SyncerType != "felix" || sh.ServerConnID != 1 || !sh.SupportsNodeResourceUpdates || sh.Version != "go-peer" {
		t.Fatalf("hello %+v", sh)
	}
	if m, ok := c.mustRead().(syncproto.MsgKVs); !ok || len(m.KVs) != 1 || m.KVs[0].UpdateType != syncproto.UpdateTypeNew {
		t.Fatalf("snapshot %v", m)
	}
	// Ping answers are optional for the hub; drain answers none.
	drained := c.drain()
	conns, _ := h.finish()
	if err := <-drained; err != nil {
		t.Error(err)
	}
	if conns[0]["end"] != "finished" || conns[0]["refused"] != nil || conns[0]["client_closed"] != true {
		t.Errorf("connection %v", conns[0])
	}
}
