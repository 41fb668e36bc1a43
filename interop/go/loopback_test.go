package main

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

// writeTestData writes a snapshot of n records (assorted revision types,
// TTLs, v3 resource versions, binary values, a deletion) and an updates
// file (records and status lines, ending in resync) into dir.
func writeTestData(t *testing.T, dir string, n int) (snapshot, updates string) {
	t.Helper()
	var snap, upd strings.Builder
	for i := n - 1; i >= 0; i-- { // reverse order: the server must sort
		key := fmt.Sprintf("/calico/v1/host/node-%02d/workload/k8s/ns%%2fpod-%05d/endpoint/eth0", i%13, i)
		rec := map[string]interface{}{"key": key}
		switch i % 6 {
		case 0:
			rec["value"] = fmt.Sprintf(`{"name":"cali%05d","ipv4_nets":["10.0.%d.%d/32"]}`, i, i/256, i%256)
			rec["revision"] = fmt.Sprint(i)
		case 1:
			rec["value"] = "plain text ✓"
			rec["revision"] = i
			rec["ttl_ns"] = int64(i) * 1000
		case 2:
			rec["value_base64"] = "AP8Q/w=="
			rec["revision"] = map[string]string{"go_type": "uint32", "text": fmt.Sprint(i)}
			rec["type"] = "updated"
		case 3:
			rec["value"] = "v"
			rec["revision"] = map[string]string{"go_type": "float64", "text": "-1.25"}
			rec["v3_resource_version"] = fmt.Sprint(i * 2)
		case 4:
			rec["value"] = "x"
			rec["revision"] = map[string]string{"go_type": "bool", "text": "true"}
		case 5:
			if i%12 == 5 {
				rec["value"] = nil // a deletion in the snapshot
			} else {
				rec["value"] = "no revision"
			}
		}
		b, _ := json.Marshal(rec)
		snap.Write(b)
		snap.WriteByte('\n')
	}
	lines := []string{
		`{"key":"/calico/v1/config/LogSeverityScreen","value":"Debug","revision":"1000001"}`,
		`{"status":"resync"}`,
		`{"key":"/calico/v1/host/node-00/workload/k8s/ns%2fpod-00000/endpoint/eth0","type":"deleted","revision":"1000002"}`,
		`{"key":"/calico/v1/host/node-01/workload/k8s/ns%2fpod-00001/endpoint/eth0","value":"changed","revision":{"go_type":"int8","text":"-5"},"type":"updated"}`,
		``,
		`{"status":"in-sync"}`,
		`{"key":"/calico/v1/Ready","value":"true","ttl_ns":90000000000}`,
		`{"key":"/calico/v1/config/Gone","value":null}`,
		`{"status":"wait-for-ready"}`,
		`{"status":"resync"}`,
	}
	upd.WriteString(strings.Join(lines, "\n") + "\n")
	snapshot = filepath.Join(dir, "snapshot.jsonl")
	updates = filepath.Join(dir, "updates.jsonl")
	if err := os.WriteFile(snapshot, []byte(snap.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(updates, []byte(upd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return snapshot, updates
}

func testServerConfig() serverConfig {
	return serverConfig{
		commonServerFlags: commonServerFlags{
			batch:            100,
			pongTimeout:      10 * time.Second,
			handshakeTimeout: 10 * time.Second,
			writeTimeout:     10 * time.Second,
		},
		snapBatch:     compressedBatchMax,
		pingInterval:  5 * time.Millisecond,
		minPongs:      3,
		acceptTimeout: 10 * time.Second,
	}
}

type serverResult struct {
	summary ordered
	err     error
}

// startServer runs the server mode in-process on a loopback port.
func startServer(t *testing.T, cfg serverConfig, data *serverData) (addr string, done chan serverResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan serverResult, 1)
	go func() {
		s, err := runServer(cfg, ln, data)
		done <- serverResult{s, err}
	}()
	return ln.Addr().String(), done
}

func stateBytes(t *testing.T, d datastore) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state.jsonl")
	if err := writeState(p, d); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoopback(t *testing.T) {
	dir := t.TempDir()
	snapPath, updPath := writeTestData(t, dir, 2600)
	data, err := loadServerData(snapPath, updPath, false)
	if err != nil {
		t.Fatal(err)
	}
	wantKVs := len(data.snapshot) + 5
	for _, c := range []struct {
		name                   string
		serverCompress, client bool
		plainChunks            bool
	}{
		{"plain", false, false, false},
		{"compressed", true, true, false},
		{"compressed, plain chunks", true, true, true},
		{"server offers, client declines", true, false, false},
		{"client asks, server declines", false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testServerConfig()
			cfg.compress = c.serverCompress
			cfg.plainChunks = c.plainChunks
			addr, done := startServer(t, cfg, data)
			summary, state, err := runClient(clientConfig{
				connect: addr, syncer: "felix", compress: c.client, hostname: "test-client",
				readTimeout: 10 * time.Second, dialTimeout: 5 * time.Second,
			})
			res := <-done
			if res.err != nil {
				t.Fatalf("server: %v", res.err)
			}
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			if got, want := stateBytes(t, state), stateBytes(t, data.final); !bytes.Equal(got, want) {
				t.Fatalf("client state differs from the server's (%d vs %d bytes)", len(got), len(want))
			}
			compressed := c.serverCompress && c.client && syncproto.SupportsCompression
			if res.summary.get("compressed") != compressed {
				t.Errorf("server summary compressed = %v, want %v", res.summary.get("compressed"), compressed)
			}
			if res.summary.get("kvs_sent") != wantKVs || summary.get("kvs_received") != wantKVs {
				t.Errorf("kvs sent %v received %v, want %d", res.summary.get("kvs_sent"), summary.get("kvs_received"), wantKVs)
			}
			wantStatuses := []string{"in-sync", "resync", "in-sync", "wait-for-ready", "resync", "in-sync"}
			if got := summary.get("statuses"); !reflect.DeepEqual(got, wantStatuses) {
				t.Errorf("statuses %v, want %v", got, wantStatuses)
			}
			pings, pongs := res.summary.get("pings_sent").(int), res.summary.get("pongs_received").(int)
			if pongs < 3 || pings != pongs || summary.get("pings_answered") != pings {
				t.Errorf("pings %d pongs %d answered %v", pings, pongs, summary.get("pings_answered"))
			}
			wantRestarts := 0
			if compressed {
				wantRestarts = 2
			}
			if summary.get("restarts") != wantRestarts {
				t.Errorf("restarts %v, want %d", summary.get("restarts"), wantRestarts)
			}
			hello := res.summary.get("client_hello").(ordered)
			if hello.get("Hostname") != "test-client" {
				t.Errorf("client hello %v", hello)
			}
			if syncproto.SupportsCompression && hello.get("SupportsDecoderRestart") != c.client {
				t.Errorf("client hello %v", hello)
			}
		})
	}
}

func TestLoopbackEmptySnapshot(t *testing.T) {
	data, err := loadServerData("", "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, compress := range []bool{false, true} {
		cfg := testServerConfig()
		cfg.compress = compress
		addr, done := startServer(t, cfg, data)
		summary, state, err := runClient(clientConfig{connect: addr, compress: compress, readTimeout: 10 * time.Second, dialTimeout: 5 * time.Second})
		res := <-done
		if res.err != nil || err != nil {
			t.Fatalf("compress=%v: server %v, client %v", compress, res.err, err)
		}
		if len(state) != 0 || summary.get("kvs_received") != 0 {
			t.Errorf("compress=%v: state %v", compress, state)
		}
	}
}

func TestServerRejectsNonHello(t *testing.T) {
	data, _ := loadServerData("", "", false)
	addr, done := startServer(t, testServerConfig(), data)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sendRaw(conn, syncproto.MsgPong{}); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err == nil || !strings.Contains(res.err.Error(), "want ClientHello") {
		t.Errorf("server error %v", res.err)
	}
}

func TestServerRejectsBadPong(t *testing.T) {
	data, _ := loadServerData("", "", false)
	addr, done := startServer(t, testServerConfig(), data)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hello := syncproto.NewClientHello("h", "i", "v", "", false, 1)
	if err := sendRaw(conn, hello, syncproto.MsgPong{PingTimestamp: time.Unix(12345, 0)}); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err == nil || !strings.Contains(res.err.Error(), "no ping the server sent") {
		t.Errorf("server error %v", res.err)
	}
}

// sendRaw gob-encodes envelopes onto conn with a fresh encoder.
func sendRaw(conn net.Conn, msgs ...interface{}) error {
	enc := gob.NewEncoder(conn)
	for _, m := range msgs {
		if err := enc.Encode(&syncproto.Envelope{Message: m}); err != nil {
			return err
		}
	}
	return nil
}

// fakeServer accepts one connection, reads the hello and sends msgs.
func fakeServer(t *testing.T, msgs ...interface{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer ln.Close()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var env syncproto.Envelope
		if err := gob.NewDecoder(conn).Decode(&env); err != nil {
			return
		}
		_ = sendRaw(conn, msgs...)
	}()
	return ln.Addr().String()
}

func TestClientChecksServer(t *testing.T) {
	cc := func(addr, syncer string) clientConfig {
		return clientConfig{connect: addr, syncer: syncer, readTimeout: 5 * time.Second, dialTimeout: 5 * time.Second}
	}
	// Not a ServerHello first.
	_, _, err := runClient(cc(fakeServer(t, syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync}), "felix"))
	if err == nil || !strings.Contains(err.Error(), "want ServerHello") {
		t.Errorf("got %v", err)
	}
	// A second ServerHello.
	sh := syncproto.NewServerHello("x", "felix", 1)
	_, _, err = runClient(cc(fakeServer(t, sh, sh), "felix"))
	if err == nil || !strings.Contains(err.Error(), "second ServerHello") {
		t.Errorf("got %v", err)
	}
	// A DecoderRestart the client did not ask for.
	if restart, ok := syncproto.NewDecoderRestart("surprise", ""); ok {
		_, _, err = runClient(cc(fakeServer(t, sh, restart), "felix"))
		if err == nil || !strings.Contains(err.Error(), "did not advertise") {
			t.Errorf("got %v", err)
		}
	}
	if syncproto.LayoutName == "v325" {
		return
	}
	// Wrong syncer type; an empty one counts as felix.
	_, _, err = runClient(cc(fakeServer(t, syncproto.NewServerHello("x", "bgp", 1)), "felix"))
	if err == nil || !strings.Contains(err.Error(), "syncer type") {
		t.Errorf("got %v", err)
	}
	_, _, err = runClient(cc(fakeServer(t, syncproto.NewServerHello("x", "", 1)), ""))
	if err != nil {
		t.Errorf("empty syncer: %v", err)
	}
}

func TestRecordsParsing(t *testing.T) {
	good := []string{
		`{"key":"k","value":"v"}`,
		`{"key":"k","value":null,"revision":"1"}`,
		`{"key":"k","value_base64":"AAE=","revision":5,"ttl_ns":7,"type":"updated","v3_resource_version":"3"}`,
		`{"key":"k","revision":{"go_type":"uint64","text":"18446744073709551615"}}`,
		`{"key":"k","revision":{"go_type":"complex128","text":"(1+2i)"}}`,
		`{"status":"in-sync"}`,
	}
	for _, g := range good {
		if _, err := parseLine([]byte(g)); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	bad := []string{
		`{"value":"v"}`,
		`{"key":"k","value":"v","value_base64":"AA=="}`,
		`{"key":"k","value":5}`,
		`{"key":"k","revision":1.5}`,
		`{"key":"k","revision":{"go_type":"int8","text":"300"}}`,
		`{"key":"k","revision":{"go_type":"chan","text":"1"}}`,
		`{"key":"k","type":"gone"}`,
		`{"key":"k","valeu":"typo"}`,
		`{"status":"bored"}`,
		`{"status":"in-sync","key":"k"}`,
		`{"key":"k"} {"key":"j"}`,
	}
	for _, b := range bad {
		if _, err := parseLine([]byte(b)); err == nil {
			t.Errorf("%s: no error", b)
		}
	}
	l, _ := parseLine([]byte(`{"key":"k","value":"v","type":"deleted","revision":{"go_type":"int16","text":"-7"}}`))
	if l.update.Value != nil || l.update.Revision != int16(-7) {
		t.Errorf("%+v", l.update)
	}
}
