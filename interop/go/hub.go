package main

// Hub mode: a small multi-client Typha stand-in. Records on stdin fill a
// breadcrumb cache (breadcrumbs.go); every accepted connection is served as
// upstream Typha's syncserver serves it (hub_conn.go); {"cmd":"finish"}
// drains and closes every connection and reports.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

type hubConfig struct {
	commonServerFlags
	maxBatchSize   int
	maxMessageSize int
	minBatchingAge time.Duration
	pingInterval   time.Duration
	allowLegacy    bool
	events         bool

	// Not flags: the finish timeouts, and the breadcrumb clock (nil =
	// time.Now; tests mint old timestamps with it).
	catchUpTimeout time.Duration
	closeTimeout   time.Duration
	now            func() time.Time
}

const (
	hubCatchUpTimeout = 10 * time.Second
	hubCloseTimeout   = 5 * time.Second
)

func hubMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg := hubConfig{catchUpTimeout: hubCatchUpTimeout, closeTimeout: hubCloseTimeout}
	fs := flag.NewFlagSet("go-peer hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs, "disconnect after this long without a pong (also the ACK timeout)")
	fs.IntVar(&cfg.maxBatchSize, "max-batch-size", 100, "most updates per breadcrumb")
	fs.IntVar(&cfg.maxMessageSize, "max-message-size", 100, "coalesce breadcrumbs of a lagging client while a message has fewer updates than this")
	fs.DurationVar(&cfg.minBatchingAge, "min-batching-age", 10*time.Millisecond, "a breadcrumb this much older than the latest counts as lagging")
	fs.DurationVar(&cfg.pingInterval, "ping-interval", 20*time.Millisecond, "interval between pings once the snapshot is sent (0 = no pings)")
	fs.BoolVar(&cfg.allowLegacy, "allow-legacy-clients", false, "serve clients without SupportsModernPolicyKeys (new layout)")
	fs.BoolVar(&cfg.events, "events", false, "print a line when a connection is accepted, starts streaming deltas and ends")
	if !parseNoArgs(fs, args, stderr) || !cfg.check("go-peer hub", stderr) {
		return exitUsage
	}
	if cfg.batch < 1 || cfg.maxBatchSize < 1 || cfg.maxMessageSize < 1 {
		fmt.Fprintln(stderr, "go-peer hub: --batch, --max-batch-size and --max-message-size must be >= 1")
		return exitUsage
	}
	if cfg.minBatchingAge <= 0 || cfg.pingInterval < 0 || cfg.pongTimeout <= 0 || cfg.handshakeTimeout <= 0 || cfg.writeTimeout <= 0 {
		fmt.Fprintln(stderr, "go-peer hub: --min-batching-age and the timeouts must be > 0, --ping-interval >= 0")
		return exitUsage
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		printJSON(stdout, ordered{{"ok", false}, {"error", err.Error()}})
		return exitFail
	}
	return runHub(cfg, ln, stdin, stdout)
}

// lockedWriter makes each Write atomic, so that JSON lines printed from
// several goroutines never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type hub struct {
	cfg   hubConfig
	cache *crumbCache
	out   io.Writer
	ln    net.Listener

	mu    sync.Mutex
	conns []*hubConn // every accepted connection, in id order

	// finishing is closed by the finish command; finishBy is set before.
	finishing  chan struct{}
	finishBy   time.Time
	acceptDone chan struct{}
}

// runHub prints LISTENING, serves ln and processes stdin until finish (exit
// 0) or an error or EOF (exit 1).
func runHub(cfg hubConfig, ln net.Listener, stdin io.Reader, stdout io.Writer) int {
	if cfg.catchUpTimeout == 0 {
		cfg.catchUpTimeout = hubCatchUpTimeout
	}
	if cfg.closeTimeout == 0 {
		cfg.closeTimeout = hubCloseTimeout
	}
	h := &hub{
		cfg:        cfg,
		cache:      newCrumbCache(cfg.maxBatchSize, cfg.moveRV, cfg.now),
		out:        &lockedWriter{w: stdout},
		ln:         ln,
		finishing:  make(chan struct{}),
		acceptDone: make(chan struct{}),
	}
	fmt.Fprintf(h.out, "LISTENING %s\n", ln.Addr())
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	go h.acceptLoop()

	finished, err := h.readCommands(stdin)
	if err == nil && !finished {
		err = errors.New("stdin ended without a finish command")
	}
	if err != nil {
		h.abort(err)
		printJSON(h.out, ordered{{"ok", false}, {"error", err.Error()}, {"connections", h.connSummaries()}})
		return exitFail
	}
	h.finish()
	if cfg.stateOut != "" {
		if err := writeState(cfg.stateOut, h.cache.storeCopy()); err != nil {
			printJSON(h.out, ordered{{"ok", false}, {"error", err.Error()}, {"connections", h.connSummaries()}})
			return exitFail
		}
	}
	sum := h.cache.checksum()
	printJSON(h.out, ordered{{"ok", true}, {"connections", h.connSummaries()},
		{"checksum", sum.hex()}, {"kv_count", sum.KVCount}})
	return exitOK
}

func (h *hub) acceptLoop() {
	defer close(h.acceptDone)
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed by finish or abort
		}
		h.mu.Lock()
		c := newHubConn(h, uint64(len(h.conns)+1), conn)
		h.conns = append(h.conns, c)
		h.mu.Unlock()
		h.event(ordered{{"event", "accepted"}, {"id", c.id}, {"remote", conn.RemoteAddr().String()}})
		go c.run()
	}
}

// event prints an event line when --events is on.
func (h *hub) event(o ordered) {
	if h.cfg.events {
		printJSON(h.out, o)
	}
}

// hubCommand is a stdin line with "cmd".
type hubCommand struct {
	Cmd *string         `json:"cmd"`
	ID  json.RawMessage `json:"id"`
}

// readCommands processes stdin until finish (true), EOF (false) or an
// error.
func (h *hub) readCommands(stdin io.Reader) (bool, error) {
	ls := newLineScanner(stdin)
	for ls.next() {
		finished, err := h.handleLine(ls.text)
		if err != nil {
			return false, fmt.Errorf("line %d: %v", ls.n, err)
		}
		if finished {
			return true, nil
		}
	}
	if err := ls.err(); err != nil {
		return false, fmt.Errorf("reading stdin: %v", err)
	}
	return false, nil
}

func (h *hub) handleLine(text []byte) (finished bool, err error) {
	var probe struct {
		Cmd json.RawMessage `json:"cmd"`
	}
	if err := json.Unmarshal(text, &probe); err != nil {
		return false, err
	}
	if probe.Cmd == nil {
		l, err := parseLine(text)
		if err != nil {
			return false, err
		}
		if l.update != nil {
			h.cache.add(*l.update)
		} else {
			h.cache.setStatus(*l.status)
		}
		return false, nil
	}
	var cmd hubCommand
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return false, err
	}
	if cmd.Cmd == nil {
		return false, errors.New(`"cmd" must be a string`)
	}
	if *cmd.Cmd != "sync" && cmd.ID != nil {
		return false, fmt.Errorf(`"id" belongs to the sync command only`)
	}
	switch *cmd.Cmd {
	case "flush":
		h.cache.flush()
	case "sync":
		if cmd.ID == nil {
			return false, errors.New(`sync needs an "id"`)
		}
		var id bytes.Buffer
		if err := json.Compact(&id, cmd.ID); err != nil {
			return false, err
		}
		printJSON(h.out, ordered{{"synced", json.RawMessage(id.Bytes())}})
	case "finish":
		return true, nil
	default:
		return false, fmt.Errorf("unknown command %q (want flush, sync or finish)", *cmd.Cmd)
	}
	return false, nil
}

// stopAccepting closes the listener and waits for the accept loop.
func (h *hub) stopAccepting() []*hubConn {
	h.ln.Close()
	<-h.acceptDone
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*hubConn(nil), h.conns...)
}

// finish lets every connection catch up with the latest breadcrumb and
// close gracefully (hubConn.finishGracefully), and waits for them all.
func (h *hub) finish() {
	conns := h.stopAccepting()
	h.finishBy = time.Now().Add(h.cfg.catchUpTimeout)
	close(h.finishing)
	for _, c := range conns {
		<-c.done
	}
}

// abort resets every connection at once, recording err as their end.
func (h *hub) abort(err error) {
	conns := h.stopAccepting()
	for _, c := range conns {
		c.fail(fmt.Errorf("hub exiting: %v", err))
		if tc, ok := c.conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset: the client must not take this for a clean end
		}
		c.conn.Close()
	}
	for _, c := range conns {
		<-c.done
	}
}

func (h *hub) connSummaries() []ordered {
	h.mu.Lock()
	conns := append([]*hubConn(nil), h.conns...)
	h.mu.Unlock()
	out := make([]ordered, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.summary())
	}
	return out
}
