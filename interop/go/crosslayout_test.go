package main

// Tests that need the built program: the other layout's peer against this
// layout's in-process peer (both directions), and reproducibility of the
// committed golden vectors. They build binaries with the go command, so
// they are skipped with -short.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// buildPeer builds go-peer with the given layout into a temp dir.
func buildPeer(t *testing.T, layout string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries; skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "go-peer-"+layout)
	args := []string{"build", "-o", out}
	if layout == "v325" {
		args = append(args, "-tags", "v325")
	}
	cmd := exec.Command(goTool(), append(args, ".")...)
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, b)
	}
	return out
}

// startPeer starts the peer binary with args, its stdout (and, with
// withStdin, its stdin) piped; the process is killed when the test ends.
func startPeer(t *testing.T, peer string, withStdin bool, args ...string) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(peer, args...)
	var stdin io.WriteCloser
	if withStdin {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, stdin, bufio.NewScanner(stdout)
}

// startListeningPeer is startPeer for the server and hub modes: it also
// reads the LISTENING line and returns the address.
func startListeningPeer(t *testing.T, peer string, withStdin bool, args ...string) (*exec.Cmd, io.WriteCloser, *bufio.Scanner, string) {
	t.Helper()
	cmd, stdin, sc := startPeer(t, peer, withStdin, args...)
	first := ""
	if sc.Scan() {
		first = sc.Text()
	}
	return cmd, stdin, sc, listeningAddr(t, first)
}

// listeningAddr is the address in the "LISTENING <host:port>" line that the
// server and hub modes print first.
func listeningAddr(t *testing.T, first string) string {
	t.Helper()
	if !strings.HasPrefix(first, "LISTENING ") {
		t.Fatalf("first line %q", first)
	}
	return strings.TrimPrefix(first, "LISTENING ")
}

func otherLayout() string {
	if syncproto.LayoutName == "v325" {
		return "new"
	}
	return "v325"
}

// stateLines parses a state file into JSON objects, dropping
// v3_resource_version when one side's layout does not have it.
func stateLines(t *testing.T, b []byte, dropV3 bool) []map[string]interface{} {
	t.Helper()
	var out []map[string]interface{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]interface{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if dropV3 {
			delete(m, "v3_resource_version")
		}
		out = append(out, m)
	}
	return out
}

func TestOtherLayoutClient(t *testing.T) {
	peer := buildPeer(t, otherLayout())
	dir := t.TempDir()
	snapPath, updPath := writeTestData(t, dir, 1200)
	data, err := loadServerData(snapPath, updPath, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testServerConfig()
	cfg.compress = true // only used if both sides are the new layout
	addr, done := startServer(t, cfg, data)
	statePath := filepath.Join(dir, "client-state.jsonl")
	cmd := exec.Command(peer, "client", "--connect", addr, "--compress", "--state-out", statePath)
	outB, err := cmd.Output()
	res := <-done
	if err != nil {
		t.Fatalf("client: %v\n%s", err, outB)
	}
	if res.err != nil {
		t.Fatalf("server: %v", res.err)
	}
	var summary map[string]interface{}
	if err := json.Unmarshal(outB, &summary); err != nil || summary["ok"] != true || summary["layout"] != otherLayout() {
		t.Fatalf("client summary %s (%v)", outB, err)
	}
	got, _ := os.ReadFile(statePath)
	want := stateBytes(t, data.final)
	if g, w := stateLines(t, got, true), stateLines(t, want, true); !jsonEqual(g, w) {
		t.Errorf("client state differs: %d vs %d lines", len(g), len(w))
	}
	if res.summary.get("compressed") != false {
		t.Errorf("compressed across layouts: %v", res.summary)
	}
}

func TestOtherLayoutServer(t *testing.T) {
	peer := buildPeer(t, otherLayout())
	dir := t.TempDir()
	snapPath, updPath := writeTestData(t, dir, 1200)
	statePath := filepath.Join(dir, "server-state.jsonl")
	cmd, _, sc, addr := startListeningPeer(t, peer, false, "server", "--snapshot", snapPath, "--updates", updPath,
		"--compress", "--ping-interval", "5ms", "--state-out", statePath)
	summary, state, err := runClient(clientConfig{connect: addr, syncer: "felix", compress: true, readTimeout: 10 * time.Second, dialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	var rest bytes.Buffer
	for sc.Scan() {
		rest.WriteString(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server: %v\n%s", err, rest.String())
	}
	var ss map[string]interface{}
	if err := json.Unmarshal(rest.Bytes(), &ss); err != nil || ss["ok"] != true || ss["compressed"] != false {
		t.Fatalf("server summary %s (%v)", rest.String(), err)
	}
	if summary.get("restarts") != 0 {
		t.Errorf("restarts across layouts: %v", summary)
	}
	got := stateBytes(t, state)
	want, _ := os.ReadFile(statePath)
	if g, w := stateLines(t, got, true), stateLines(t, want, true); !jsonEqual(g, w) {
		t.Errorf("client state differs: %d vs %d lines", len(g), len(w))
	}
}

func jsonEqual(a, b interface{}) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// The committed golden vectors of this layout are exactly what the golden
// mode writes today.
func TestGoldenReproducible(t *testing.T) {
	committed := filepath.Join("..", "..", "tests", "golden", "gob")
	if !fileExists(committed) {
		t.Skip("no committed golden vectors")
	}
	peer := buildPeer(t, syncproto.LayoutName)
	out := t.TempDir()
	if b, err := exec.Command(peer, "golden", "--out", out).CombinedOutput(); err != nil {
		t.Fatalf("golden: %v\n%s", err, b)
	}
	fresh, _ := filepath.Glob(filepath.Join(out, "*"))
	old, _ := filepath.Glob(filepath.Join(committed, "*."+syncproto.LayoutName+".*"))
	names := func(ps []string) []string {
		var n []string
		for _, p := range ps {
			n = append(n, filepath.Base(p))
		}
		sort.Strings(n)
		return n
	}
	if !jsonEqual(names(fresh), names(old)) {
		t.Fatalf("files differ: fresh %v, committed %v", names(fresh), names(old))
	}
	for _, p := range fresh {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join(committed, filepath.Base(p)))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the committed copy", filepath.Base(p))
		}
	}
}

// Every golden vector round-trips through encoding/gob (in-process, so
// type ids differ from the committed files; only the content is checked).
func TestGoldenVectorsDecode(t *testing.T) {
	for _, name := range goldenNames() {
		bin, msgs, err := buildVector(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkVector(bin, msgs); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The other layout's client binary against this layout's hub: a v3.2.5
// hello has no SupportsModernPolicyKeys, so the new hub must allow legacy
// clients to serve it.
func TestOtherLayoutClientOnHub(t *testing.T) {
	peer := buildPeer(t, otherLayout())
	cfg := testHubConfig()
	cfg.compress = true
	cfg.allowLegacy = true
	cfg.stateOut = filepath.Join(t.TempDir(), "hub-state.jsonl")
	h := startHub(t, cfg)
	h.send(`{"key":"/calico/v1/a","value":"1","v3_resource_version":"3"}`, `{"status":"in-sync"}`, `{"cmd":"flush"}`)
	h.sync(1)
	statePath := filepath.Join(t.TempDir(), "client-state.jsonl")
	cmd, _, sc := startPeer(t, peer, false, "client", "--connect", h.addr, "--compress", "--state-out", statePath,
		"--report-key", "/calico/v1/z")
	h.waitFor("event", "streaming")
	h.send(`{"key":"/calico/v1/z","value":"sentinel"}`, `{"cmd":"flush"}`)
	if !sc.Scan() || sc.Text() != `{"event":"key","key":"/calico/v1/z","value":"sentinel"}` {
		t.Fatalf("first client line %q", sc.Text())
	}
	conns, code := h.finish()
	if !sc.Scan() {
		t.Fatal("no client summary")
	}
	summary := sc.Text()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client: %v\n%s", err, summary)
	}
	if code != exitOK || len(conns) != 1 || conns[0]["end"] != "finished" || conns[0]["compressed"] != false {
		t.Errorf("hub: exit %d, %v", code, conns)
	}
	got, _ := os.ReadFile(statePath)
	want, _ := os.ReadFile(cfg.stateOut)
	if g, w := stateLines(t, got, true), stateLines(t, want, true); !jsonEqual(g, w) {
		t.Errorf("client state %s, hub %s", got, want)
	}
}

// The other layout's hub binary, driven over stdin, against this layout's
// client.
func TestOtherLayoutHub(t *testing.T) {
	peer := buildPeer(t, otherLayout())
	hubState := filepath.Join(t.TempDir(), "hub-state.jsonl")
	cmd, stdin, sc, addr := startListeningPeer(t, peer, true, "hub", "--compress", "--allow-legacy-clients",
		"--ping-interval", "5ms", "--events", "--state-out", hubState)
	waitFor := func(prefix string) string {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				return sc.Text()
			}
		}
		t.Fatalf("no line starting %s", prefix)
		return ""
	}
	io.WriteString(stdin, `{"key":"/calico/v1/a","value":"1"}`+"\n"+`{"status":"resync"}`+"\n"+`{"cmd":"flush"}`+"\n")
	done := startClient(clientConfig{connect: addr, syncer: "felix", compress: true, hostname: "cross"})
	waitFor(`{"event":"streaming"`)
	io.WriteString(stdin, `{"key":"/calico/v1/b","value":"2"}`+"\n"+`{"status":"in-sync"}`+"\n"+`{"cmd":"flush"}`+"\n")
	io.WriteString(stdin, `{"cmd":"sync","id":1}`+"\n")
	waitFor(`{"synced":1}`)
	time.Sleep(20 * time.Millisecond)
	io.WriteString(stdin, `{"cmd":"finish"}`+"\n")
	summary := waitFor(`{"ok":`)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hub: %v\n%s", err, summary)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("client: %v", res.err)
	}
	var ss struct {
		OK          bool                     `json:"ok"`
		Connections []map[string]interface{} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(summary), &ss); err != nil || !ss.OK || len(ss.Connections) != 1 {
		t.Fatalf("hub summary %s (%v)", summary, err)
	}
	c := ss.Connections[0]
	if c["end"] != "finished" || c["compressed"] != false || c["hostname"] != "cross" || c["kvs_sent"] != float64(2) ||
		c["pongs_matched"] != c["pings_sent"] {
		t.Errorf("connection %v", c)
	}
	want, _ := os.ReadFile(hubState)
	if g, w := stateLines(t, stateBytes(t, res.state), true), stateLines(t, want, true); !jsonEqual(g, w) {
		t.Errorf("client state differs from the hub's")
	}
	if got := res.summary.get("statuses"); !reflect.DeepEqual(got, []string{"resync", "in-sync"}) {
		t.Errorf("statuses %v", got)
	}
}
