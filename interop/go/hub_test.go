package main

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

// hubRun is the hub mode running in-process, driven through pipes.
type hubRun struct {
	t     *testing.T
	addr  string
	in    *io.PipeWriter
	lines chan string
	code  chan int
}

func testHubConfig() hubConfig {
	return hubConfig{
		commonServerFlags: commonServerFlags{
			batch:            2,
			pongTimeout:      10 * time.Second,
			handshakeTimeout: 5 * time.Second,
			writeTimeout:     10 * time.Second,
		},
		maxBatchSize:   3,
		maxMessageSize: 100,
		minBatchingAge: 10 * time.Millisecond,
		pingInterval:   5 * time.Millisecond,
		events:         true,
		closeTimeout:   5 * time.Second,
	}
}

func startHub(t *testing.T, cfg hubConfig) *hubRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &hubRun{t: t, in: inW, lines: make(chan string, 10000), code: make(chan int, 1)}
	go func() {
		code := runHub(cfg, ln, inR, outW)
		outW.Close()
		h.code <- code
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() { inW.Close() }) // EOF: a hub still running exits
	h.addr = listeningAddr(t, h.next())
	return h
}

func (h *hubRun) send(lines ...string) {
	h.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(h.in, l+"\n"); err != nil {
			h.t.Fatalf("writing to the hub: %v", err)
		}
	}
}

func (h *hubRun) next() string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatal("hub output ended")
		}
		return l
	case <-time.After(20 * time.Second):
		h.t.Fatal("timed out waiting for hub output")
	}
	return ""
}

// waitFor reads output lines until one has the field with the value.
func (h *hubRun) waitFor(field string, value interface{}) map[string]interface{} {
	h.t.Helper()
	for {
		l := h.next()
		var m map[string]interface{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			h.t.Fatalf("hub line %q: %v", l, err)
		}
		if v, ok := m[field]; ok && (value == nil || reflect.DeepEqual(v, value)) {
			return m
		}
	}
}

func (h *hubRun) sync(id int) {
	h.t.Helper()
	h.send(fmt.Sprintf(`{"cmd":"sync","id":%d}`, id))
	h.waitFor("synced", float64(id))
}

// finish sends finish and returns the summary's connections and the exit code.
func (h *hubRun) finish() ([]map[string]interface{}, int) {
	h.t.Helper()
	h.send(`{"cmd":"finish"}`)
	sum := h.waitFor("ok", nil)
	code := <-h.code
	if sum["ok"] != true {
		h.t.Fatalf("hub summary %v", sum)
	}
	var conns []map[string]interface{}
	for _, c := range sum["connections"].([]interface{}) {
		conns = append(conns, c.(map[string]interface{}))
	}
	return conns, code
}

type clientResult struct {
	summary ordered
	state   datastore
	err     error
}

func startClient(cfg clientConfig) chan clientResult {
	done := make(chan clientResult, 1)
	if cfg.readTimeout == 0 {
		cfg.readTimeout, cfg.dialTimeout = 10*time.Second, 5*time.Second
	}
	go func() {
		s, st, err := runClient(cfg)
		done <- clientResult{s, st, err}
	}()
	return done
}

func TestHubTwoClients(t *testing.T) {
	cfg := testHubConfig()
	cfg.compress = true
	cfg.stateOut = filepath.Join(t.TempDir(), "hub-state.jsonl")
	h := startHub(t, cfg)
	h.send(
		`{"key":"/calico/v1/a","value":"1","revision":"1"}`,
		`{"key":"/calico/v1/b","value":"2","revision":2,"ttl_ns":5}`,
		`{"key":"/calico/v1/c","value_base64":"AP8=","revision":{"go_type":"uint16","text":"3"}}`,
		`{"key":"/calico/v1/d","value":"4","type":"updated"}`,
		`{"key":"/calico/v1/e","value":"5","v3_resource_version":"55"}`,
		`{"key":"/calico/v1/f","value":"6"}`,
		`{"key":"/calico/v1/g","value":"7"}`,
		`{"status":"resync"}`,
		`{"cmd":"flush"}`,
	)
	h.sync(1)

	zipped := startClient(clientConfig{connect: h.addr, syncer: "felix", compress: true, hostname: "zipped"})
	plain := startClient(clientConfig{connect: h.addr, hostname: "plain"})
	h.waitFor("event", "streaming")
	h.waitFor("event", "streaming")

	h.send(
		`{"key":"/calico/v1/a","value":"1","type":"updated","revision":"100"}`, // a no-op
		`{"key":"/calico/v1/b","value":""}`,                                    // an empty value: deletion
		`{"key":"/calico/v1/absent","value":null}`,                             // deletion of an absent key
		`{"key":"/calico/v1/h","value":"8"}`,
		`{"key":"/calico/v1/i","value":"9"}`,
		`{"key":"/calico/v1/j","value":"10"}`,
		`{"key":"/calico/v1/k","value":"11"}`,
		`{"status":"in-sync"}`,
		`{"cmd":"flush"}`,
		`{"cmd":"flush"}`, // nothing pending: nothing published
		`{"key":"/calico/v1/c","value":"changed","ttl_ns":9,"type":"updated"}`,
		`{"cmd":"flush"}`,
		`{"status":"resync"}`,
		`{"cmd":"flush"}`,
		`{"status":"in-sync"}`,
		`{"cmd":"flush"}`,
	)
	h.sync(2)
	time.Sleep(40 * time.Millisecond) // some pings
	conns, code := h.finish()
	if code != exitOK {
		t.Fatalf("hub exit code %d", code)
	}
	hubState, err := os.ReadFile(cfg.stateOut)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 2 {
		t.Fatalf("connections %v", conns)
	}
	const wantKVs = 7 + 6 + 1 // snapshot, then all but the no-op
	connIDs := map[string]interface{}{}
	for name, r := range map[string]chan clientResult{"zipped": zipped, "plain": plain} {
		res := <-r
		if res.err != nil {
			t.Fatalf("client %s: %v", name, res.err)
		}
		if got := stateBytes(t, res.state); !bytes.Equal(got, hubState) {
			t.Errorf("client %s state differs from the hub's:\n%s\nvs\n%s", name, got, hubState)
		}
		connIDs[name] = res.summary.get("server_hello").(ordered).get("ServerConnID")
		wantStatuses := []string{"resync", "in-sync", "resync", "in-sync"}
		if got := res.summary.get("statuses"); !reflect.DeepEqual(got, wantStatuses) {
			t.Errorf("client %s: statuses %v, want %v", name, got, wantStatuses)
		}
		if res.summary.get("kvs_received") != wantKVs || res.summary.get("pongs_sent") != res.summary.get("pings_received") {
			t.Errorf("client %s: summary %v", name, res.summary)
		}
	}
	byHost := map[string]map[string]interface{}{}
	for i, c := range conns {
		if c["id"] != float64(i+1) {
			t.Errorf("connection %d has id %v", i, c["id"])
		}
		byHost[c["hostname"].(string)] = c
		if c["end"] != "finished" || c["client_closed"] != true || c["refused"] != nil {
			t.Errorf("connection %v", c)
		}
		pings := c["pings_sent"].(float64)
		if pings < 1 || c["pongs_received"] != pings || c["pongs_matched"] != pings {
			t.Errorf("pings and pongs: %v", c)
		}
		if c["kvs_sent"] != float64(wantKVs) {
			t.Errorf("kvs_sent %v, want %d", c["kvs_sent"], wantKVs)
		}
		if id := connIDs[c["hostname"].(string)]; syncproto.LayoutName != "v325" && float64(id.(uint64)) != c["id"] {
			t.Errorf("ServerConnID %v for connection %v", id, c["id"])
		}
	}
	if byHost["zipped"]["compressed"] != syncproto.SupportsCompression || byHost["plain"]["compressed"] != false {
		t.Errorf("compressed: %v %v", byHost["zipped"], byHost["plain"])
	}
}

// rawClient is a hand-driven uncompressed client.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	dec  *gob.Decoder
}

func dialRaw(t *testing.T, addr string, hello interface{}) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := sendRaw(conn, hello); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, dec: gob.NewDecoder(conn)}
}

func (r *rawClient) read() (interface{}, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var env syncproto.Envelope
	if err := r.dec.Decode(&env); err != nil {
		return nil, err
	}
	return env.Message, nil
}

func (r *rawClient) mustRead() interface{} {
	r.t.Helper()
	m, err := r.read()
	if err != nil {
		r.t.Fatalf("reading: %v", err)
	}
	return m
}

// drain reads to EOF in the background, then closes.
func (r *rawClient) drain() chan error {
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := r.read(); err != nil {
				r.conn.Close()
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	return done
}

func TestHubCoalescing(t *testing.T) {
	cfg := testHubConfig()
	cfg.pingInterval = 0
	cfg.maxMessageSize = 5
	// Every breadcrumb is a second younger than the one before, so all but
	// the newest of a flush count as lagging.
	var clockMu sync.Mutex
	base, ticks := time.Now(), 0
	cfg.now = func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		ticks++
		return base.Add(time.Duration(ticks) * time.Second)
	}
	h := startHub(t, cfg)
	h.send(`{"key":"s1","value":"x"}`, `{"key":"s2","value":"y"}`, `{"status":"in-sync"}`, `{"cmd":"flush"}`)
	h.sync(1)

	c := dialRaw(t, h.addr, syncproto.NewClientHello("slow", "i", "v", "", false, 1))
	if _, ok := c.mustRead().(syncproto.MsgServerHello); !ok {
		t.Fatal("no ServerHello")
	}
	if m, ok := c.mustRead().(syncproto.MsgKVs); !ok || len(m.KVs) != 2 {
		t.Fatalf("snapshot %v", m)
	}
	if m := c.mustRead(); m != (syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync}) {
		t.Fatalf("after the snapshot: %v", m)
	}

	// Ten updates in breadcrumbs of 3, 3, 3 and 1: the first message takes
	// whole breadcrumbs until it has 5 or more (6), the second the rest,
	// ending with the newest, which is not lagging.
	for i := 0; i < 10; i++ {
		h.send(fmt.Sprintf(`{"key":"d%02d","value":"v"}`, i))
	}
	h.send(`{"status":"resync"}`, `{"cmd":"flush"}`)
	var sizes []int
	var keys []string
	for len(sizes) < 2 {
		m, ok := c.mustRead().(syncproto.MsgKVs)
		if !ok {
			t.Fatalf("got %v, want KVs", m)
		}
		sizes = append(sizes, len(m.KVs))
		for _, u := range m.KVs {
			keys = append(keys, u.Key)
		}
	}
	if fmt.Sprint(sizes) != "[6 4]" || keys[0] != "d00" || keys[9] != "d09" {
		t.Errorf("messages of %v: %v", sizes, keys)
	}
	if m := c.mustRead(); m != (syncproto.MsgSyncStatus{SyncStatus: syncproto.ResyncInProgress}) {
		t.Fatalf("after the deltas: %v", m)
	}

	// A single breadcrumb is not lagging: a message of its own.
	h.send(`{"key":"e1","value":"v"}`, `{"key":"e2","value":"v"}`, `{"cmd":"flush"}`)
	if m, ok := c.mustRead().(syncproto.MsgKVs); !ok || len(m.KVs) != 2 {
		t.Fatalf("got %v", m)
	}
	drained := c.drain()
	conns, code := h.finish()
	if err := <-drained; err != nil {
		t.Errorf("client: %v", err)
	}
	if code != exitOK || len(conns) != 1 || conns[0]["end"] != "finished" || conns[0]["kvs_sent"] != float64(14) {
		t.Errorf("exit %d, connections %v", code, conns)
	}
}

func TestHubResourceVersionsAndReportKey(t *testing.T) {
	cfg := testHubConfig()
	cfg.moveRV = true
	cfg.stateOut = filepath.Join(t.TempDir(), "hub-state.jsonl")
	h := startHub(t, cfg)
	value := func(rv string) string {
		b, _ := json.Marshal(`{"kind":"NetworkPolicy","metadata":{"name":"p","resourceVersion":"` + rv + `","uid":"u"},"spec":{}}`)
		return string(b)
	}
	h.send(`{"key":"`+v3Key+`","value":`+value("1")+`}`, `{"status":"in-sync"}`, `{"cmd":"flush"}`)
	h.sync(1)
	var events bytes.Buffer
	wb := startClient(clientConfig{connect: h.addr, hostname: "write-back", writeBackRV: true, reportKey: "/calico/v1/sentinel", events: &events})
	plain := startClient(clientConfig{connect: h.addr, hostname: "plain"})
	h.waitFor("event", "streaming")
	h.waitFor("event", "streaming")
	// Only the resource version changes: a no-op once it is moved out.
	h.send(`{"key":"`+v3Key+`","value":`+value("2")+`,"type":"updated"}`, `{"cmd":"flush"}`)
	h.send(`{"key":"/calico/v1/sentinel","value":"done"}`, `{"cmd":"flush"}`)
	h.sync(2)
	conns, _ := h.finish()
	resWB, resPlain := <-wb, <-plain
	if resWB.err != nil || resPlain.err != nil {
		t.Fatalf("clients: %v, %v", resWB.err, resPlain.err)
	}
	hubState, _ := os.ReadFile(cfg.stateOut)
	if got := stateBytes(t, resPlain.state); !bytes.Equal(got, hubState) {
		t.Errorf("plain client state %s, hub %s", got, hubState)
	}
	moved := resPlain.state[v3Key]
	wb1 := resWB.state[v3Key]
	wantKVs := 2
	if syncproto.HasV3ResourceVersion {
		if string(moved.Value) != `{"kind":"NetworkPolicy","metadata":{"name":"p","uid":"u"},"spec":{}}` || syncproto.V3ResourceVersion(&moved) != "1" {
			t.Errorf("hub stored %s %q", moved.Value, syncproto.V3ResourceVersion(&moved))
		}
		if string(wb1.Value) != `{"kind":"NetworkPolicy","metadata":{"name":"p","uid":"u","resourceVersion":"1"},"spec":{}}` || syncproto.V3ResourceVersion(&wb1) != "1" {
			t.Errorf("written back %s", wb1.Value)
		}
	} else {
		wantKVs = 3 // nothing moved, so the second version is a change
		if !bytes.Equal(moved.Value, wb1.Value) {
			t.Errorf("v325: %s vs %s", moved.Value, wb1.Value)
		}
	}
	for _, c := range conns {
		if c["kvs_sent"] != float64(wantKVs) || c["end"] != "finished" {
			t.Errorf("connection %v", c)
		}
	}
	if events.String() != `{"event":"key","key":"/calico/v1/sentinel","value":"done"}`+"\n" {
		t.Errorf("events %q", events.String())
	}
}

func TestHubStdinErrors(t *testing.T) {
	for _, c := range []struct{ name, input, want string }{
		{"malformed", `{"key":"k","value":"v"}` + "\n\n" + `{"key":"k","valeu":"v"}`, "line 3: "},
		{"unknown command", `{"cmd":"shout"}`, "line 1: unknown command"},
		{"sync without id", `{"cmd":"sync"}`, `line 1: sync needs an "id"`},
		{"not an object", `[1]`, "line 1: "},
		{"no finish", `{"key":"k","value":"v"}` + "\n" + `{"cmd":"flush"}`, "stdin ended without a finish command"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		code := runHub(testHubConfig(), ln, strings.NewReader(c.input+"\n"), &out)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var sum map[string]interface{}
		if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &sum) != nil {
			t.Fatalf("%s: output %q", c.name, out.String())
		}
		if code != exitFail || sum["ok"] != false || !strings.HasPrefix(sum["error"].(string), c.want) {
			t.Errorf("%s: exit %d, %v", c.name, code, sum)
		}
	}
}

func TestHubAbortEndsConnections(t *testing.T) {
	h := startHub(t, testHubConfig())
	c := startClient(clientConfig{connect: h.addr, hostname: "left-behind"})
	h.waitFor("event", "streaming")
	h.in.Close()
	sum := h.waitFor("ok", false)
	if code := <-h.code; code != exitFail {
		t.Errorf("exit %d", code)
	}
	conns := sum["connections"].([]interface{})
	if len(conns) != 1 || !strings.HasPrefix(conns[0].(map[string]interface{})["end"].(string), "hub exiting: stdin ended") {
		t.Errorf("summary %v", sum)
	}
	if res := <-c; res.err == nil {
		t.Error("the client saw a clean end of an aborted hub")
	}
}

func TestHubPongTimeout(t *testing.T) {
	cfg := testHubConfig()
	cfg.pongTimeout = 50 * time.Millisecond
	h := startHub(t, cfg)
	c := dialRaw(t, h.addr, syncproto.NewClientHello("silent", "i", "v", "", false, 1))
	drained := c.drain() // reads everything, answers no ping
	ended := h.waitFor("event", "ended")
	<-drained
	conns, _ := h.finish()
	for _, end := range []interface{}{ended["end"], conns[0]["end"]} {
		if !strings.HasPrefix(end.(string), "no pong from the client for ") {
			t.Errorf("end %q", end)
		}
	}
	if conns[0]["pings_sent"].(float64) < 5 || conns[0]["pongs_received"] != float64(0) {
		t.Errorf("connection %v", conns[0])
	}
}

// Clients join while flushes keep coming: whatever breadcrumb a client's
// snapshot is taken at, snapshot plus deltas must end at the hub's store.
func TestHubChurn(t *testing.T) {
	cfg := testHubConfig()
	cfg.compress = true
	cfg.batch = 7
	cfg.maxBatchSize = 13
	cfg.maxMessageSize = 20
	cfg.minBatchingAge = time.Millisecond
	cfg.stateOut = filepath.Join(t.TempDir(), "hub-state.jsonl")
	h := startHub(t, cfg)
	var clients []chan clientResult
	for round := 0; round < 30; round++ {
		for i := 0; i < 40; i++ {
			k := (round*17 + i*7) % 150
			switch (round + i) % 5 {
			case 0:
				h.send(fmt.Sprintf(`{"key":"/calico/v1/k%03d","value":null}`, k))
			case 1:
				h.send(fmt.Sprintf(`{"key":"/calico/v1/k%03d","value":"same","type":"updated"}`, k))
			default:
				h.send(fmt.Sprintf(`{"key":"/calico/v1/k%03d","value":"r%d","revision":%d}`, k, round, round*100+i))
			}
		}
		h.send([]string{`{"status":"resync"}`, `{"status":"in-sync"}`}[round%2], `{"cmd":"flush"}`)
		if round%6 == 2 {
			clients = append(clients, startClient(clientConfig{connect: h.addr, compress: round%12 == 2,
				hostname: fmt.Sprintf("c%d", round)}))
		}
	}
	// Finish closes the listener: a client still in the backlog would be
	// reset, so wait until every one is streaming.
	for range clients {
		h.waitFor("event", "streaming")
	}
	conns, code := h.finish()
	hubState, _ := os.ReadFile(cfg.stateOut)
	for i, r := range clients {
		res := <-r
		if res.err != nil {
			t.Fatalf("client %d: %v", i, res.err)
		}
		if got := stateBytes(t, res.state); !bytes.Equal(got, hubState) {
			t.Errorf("client %d state differs from the hub's", i)
		}
		if st := res.summary.get("statuses").([]string); st[len(st)-1] != "in-sync" {
			t.Errorf("client %d: statuses %v", i, st)
		}
	}
	if code != exitOK || len(conns) != len(clients) {
		t.Fatalf("exit %d, %d connections", code, len(conns))
	}
	for _, c := range conns {
		if c["end"] != "finished" || c["client_closed"] != true {
			t.Errorf("connection %v", c)
		}
	}
}
