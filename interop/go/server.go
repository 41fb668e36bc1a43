package main

// Server mode: accept one client, do the handshake (and the compression
// dance if asked and possible), send the snapshot, in-sync and the updates,
// ping throughout, check every pong, then close and report.

import (
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"syncproto/interop/go/syncproto"
)

type serverConfig struct {
	commonServerFlags
	snapshotPath  string
	updatesPath   string
	snapBatch     int
	pingInterval  time.Duration
	minPongs      int
	plainChunks   bool
	acceptTimeout time.Duration
}

const (
	serverVersion = "go-peer"
	serverConnID  = 42
)

func serverMain(args []string, stdout, stderr io.Writer) int {
	var cfg serverConfig
	fs := flag.NewFlagSet("go-peer server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs, "time allowed, after everything is sent, for the pongs (also the ACK timeout)")
	fs.StringVar(&cfg.snapshotPath, "snapshot", "", "snapshot records file (JSON lines); empty = empty snapshot")
	fs.StringVar(&cfg.updatesPath, "updates", "", "updates file (records and status lines), sent after the snapshot")
	fs.DurationVar(&cfg.pingInterval, "ping-interval", 50*time.Millisecond, "interval between pings (0 = only the pre-snapshot ping)")
	fs.IntVar(&cfg.minPongs, "min-pongs", 3, "pongs required before finishing")
	fs.BoolVar(&cfg.plainChunks, "plain-chunks", false, "snappy: write only uncompressed (0x01) chunks")
	fs.DurationVar(&cfg.acceptTimeout, "accept-timeout", 60*time.Second, "give up if no client connects in this time (0 = wait forever)")
	if !parseNoArgs(fs, args, stderr) || !cfg.check("go-peer server", stderr) {
		return exitUsage
	}
	if cfg.batch < 1 || cfg.minPongs < 0 || cfg.pingInterval < 0 {
		fmt.Fprintln(stderr, "go-peer server: --batch must be >= 1, --min-pongs and --ping-interval >= 0")
		return exitUsage
	}
	if cfg.pingInterval == 0 && cfg.minPongs > 1 {
		fmt.Fprintln(stderr, "go-peer server: with --ping-interval 0 only one ping is sent, so --min-pongs must be <= 1")
		return exitUsage
	}
	cfg.snapBatch = compressedBatchMax

	data, err := loadServerData(cfg.snapshotPath, cfg.updatesPath, cfg.moveRV)
	if err != nil {
		return failJSON(stdout, err)
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return failJSON(stdout, err)
	}
	fmt.Fprintf(stdout, "LISTENING %s\n", ln.Addr())
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	summary, err := runServer(cfg, ln, data)
	if err != nil {
		return failJSON(stdout, err)
	}
	if cfg.stateOut != "" {
		if err := writeState(cfg.stateOut, data.final); err != nil {
			return failJSON(stdout, err)
		}
	}
	printJSON(stdout, summary)
	return exitOK
}

// serverData is what the server sends and the state it should leave.
type serverData struct {
	snapshot []syncproto.SerializedUpdate // ascending key order
	updates  []line
	final    datastore

	// The store's checksum after the snapshot, and after each line of
	// updates (sums[i] after updates[i]), kept incrementally while final is
	// built: what each MsgChecksum describes.
	snapshotSum stateChecksum
	sums        []stateChecksum
}

// loadServerData reads the files; moveRV applies moveResourceVersions to
// every record as loaded.
func loadServerData(snapshotPath, updatesPath string, moveRV bool) (*serverData, error) {
	d := &serverData{final: datastore{}}
	if snapshotPath != "" {
		lines, err := readRecordsFile(snapshotPath, false)
		if err != nil {
			return nil, err
		}
		byKey := map[string]syncproto.SerializedUpdate{}
		for _, l := range lines {
			if moveRV {
				moveResourceVersions(l.update)
			}
			byKey[l.update.Key] = *l.update // a later line for the same key wins
		}
		for _, u := range byKey {
			d.snapshot = append(d.snapshot, u)
		}
		sortKVs(d.snapshot)
		for _, u := range d.snapshot {
			d.final.applySum(u, &d.snapshotSum)
		}
	}
	if updatesPath != "" {
		lines, err := readRecordsFile(updatesPath, true)
		if err != nil {
			return nil, err
		}
		d.updates = lines
		sum := d.snapshotSum
		for _, l := range lines {
			if l.update != nil {
				if moveRV {
					moveResourceVersions(l.update)
				}
				d.final.applySum(*l.update, &sum)
			}
			d.sums = append(d.sums, sum)
		}
	}
	return d, nil
}

// sentPing is a ping the server sent and whether a pong answered it.
type sentPing struct {
	ts       time.Time
	answered bool
}

type serverConn struct {
	cfg  serverConfig
	conn net.Conn

	// writeMu serialises writers (main goroutine and pinger) and guards w,
	// whose encoder is replaced at the switch to snappy.
	writeMu sync.Mutex
	w       *msgWriter

	// stateMu guards what the reader goroutine shares.
	stateMu      sync.Mutex
	pings        []sentPing
	pongs        int
	acksExpected int

	helloC     chan syncproto.MsgClientHello
	ackC       chan struct{}
	failed     chan struct{}
	failOnce   sync.Once
	failErr    error
	closing    atomic.Bool
	readerDone chan struct{}
}

func (s *serverConn) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
		s.conn.Close() // unblock everyone
	})
}

// failure returns the recorded failure, or err.
func (s *serverConn) failure(err error) error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return err
	}
}

// sendLocked encodes one message through the current encoder; the caller
// holds writeMu.
func (s *serverConn) sendLocked(msg interface{}) error {
	if err := s.w.send(msg); err != nil {
		return s.failure(err)
	}
	return nil
}

func (s *serverConn) send(msg interface{}) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.sendLocked(msg)
}

// pingLocked records and sends a ping; the caller holds writeMu.
func (s *serverConn) pingLocked() error {
	ts := time.Now()
	s.stateMu.Lock()
	s.pings = append(s.pings, sentPing{ts: ts})
	s.stateMu.Unlock()
	return s.sendLocked(syncproto.MsgPing{Timestamp: ts})
}

func (s *serverConn) expectACK() {
	s.stateMu.Lock()
	s.acksExpected++
	s.stateMu.Unlock()
}

func (s *serverConn) waitACK(what string) error {
	t := time.NewTimer(s.cfg.pongTimeout)
	defer t.Stop()
	select {
	case <-s.ackC:
		return nil
	case <-s.failed:
		return s.failErr
	case <-t.C:
		err := fmt.Errorf("timed out after %v waiting for the ACK %s", s.cfg.pongTimeout, what)
		s.fail(err)
		return err
	}
}

// readLoop decodes everything the client sends.
func (s *serverConn) readLoop() {
	defer close(s.readerDone)
	dec := gob.NewDecoder(s.conn)
	first := true
	for {
		var env syncproto.Envelope
		if err := dec.Decode(&env); err != nil {
			if s.closing.Load() {
				return
			}
			if errors.Is(err, io.EOF) {
				s.fail(errors.New("client closed the connection before the server finished"))
			} else {
				s.fail(fmt.Errorf("decoding a client message: %w", err))
			}
			return
		}
		if first {
			first = false
			hello, ok := env.Message.(syncproto.MsgClientHello)
			if !ok {
				s.fail(fmt.Errorf("first client message is %s, want ClientHello", describe(env.Message)))
				return
			}
			s.helloC <- hello
			continue
		}
		switch m := env.Message.(type) {
		case syncproto.MsgPong:
			if err := s.notePong(m); err != nil {
				s.fail(err)
				return
			}
		default:
			if !syncproto.IsACK(m) {
				s.fail(fmt.Errorf("unexpected client message %s", describe(m)))
				return
			}
			s.stateMu.Lock()
			expected := s.acksExpected > 0
			if expected {
				s.acksExpected--
			}
			s.stateMu.Unlock()
			if !expected {
				s.fail(errors.New("unexpected ACK from client (no DecoderRestart outstanding)"))
				return
			}
			s.ackC <- struct{}{}
		}
	}
}

func (s *serverConn) notePong(m syncproto.MsgPong) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	for i := range s.pings {
		p := &s.pings[i]
		if p.ts.Equal(m.PingTimestamp) {
			if p.answered {
				return fmt.Errorf("second pong for the ping of %s", m.PingTimestamp.Format(time.RFC3339Nano))
			}
			p.answered = true
			s.pongs++
			return nil
		}
	}
	return fmt.Errorf("pong echoes %s, which is no ping the server sent", m.PingTimestamp.Format(time.RFC3339Nano))
}

func (s *serverConn) pongCounts() (pings, pongs int) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return len(s.pings), s.pongs
}

// requestedSyncer is the syncer type hello asks for, felix if it names
// none (as upstream; both the server and the hub modes answer this way).
func requestedSyncer(hello syncproto.MsgClientHello) syncproto.SyncerType {
	if syncer := syncproto.RequestedSyncer(hello); syncer != "" {
		return syncer
	}
	return syncproto.SyncerTypeFelix
}

// describe names a decoded message's type for error messages.
func describe(msg interface{}) string {
	if msg == nil {
		return "a nil message"
	}
	return fmt.Sprintf("%T", msg)
}

// runServer serves one connection from ln and returns the summary.
func runServer(cfg serverConfig, ln net.Listener, data *serverData) (ordered, error) {
	if cfg.acceptTimeout > 0 {
		if tl, ok := ln.(*net.TCPListener); ok {
			_ = tl.SetDeadline(time.Now().Add(cfg.acceptTimeout))
		}
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("accepting a connection: %w", err)
	}
	defer conn.Close()
	s := &serverConn{
		cfg:        cfg,
		conn:       conn,
		w:          newMsgWriter(conn, cfg.writeTimeout),
		helloC:     make(chan syncproto.MsgClientHello, 1),
		ackC:       make(chan struct{}, 2),
		failed:     make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	go s.readLoop()
	summary, err := s.serve(data)
	if err != nil {
		s.fail(err)
		return nil, s.failErr
	}
	return summary, nil
}

func (s *serverConn) serve(data *serverData) (ordered, error) {
	cfg := s.cfg
	// Handshake.
	var hello syncproto.MsgClientHello
	t := time.NewTimer(cfg.handshakeTimeout)
	select {
	case hello = <-s.helloC:
		t.Stop()
	case <-s.failed:
		return nil, s.failErr
	case <-t.C:
		return nil, fmt.Errorf("no ClientHello within %v", cfg.handshakeTimeout)
	}
	syncer := requestedSyncer(hello)
	compressed := cfg.compress && syncproto.ClientWantsSnappy(hello)
	checksums := cfg.checksumSchedule(hello) // nil: no checksums for this client
	checksumsSent := 0
	// sendChecksumIf sends sum when the schedule says one is due after what
	// was just sent (deltas, or a status).
	sendChecksumIf := func(deltas, statusSent bool, status syncproto.SyncStatus, sum stateChecksum) error {
		if !checksums.after(deltas, statusSent, status, time.Now()) {
			return nil
		}
		msg, _ := sum.message()
		checksumsSent++
		return s.send(msg)
	}

	serverHello := syncproto.NewServerHello(serverVersion, syncer, serverConnID)
	syncproto.AgreeChecksums(&serverHello, checksums != nil)
	s.writeMu.Lock()
	err := s.sendLocked(serverHello)
	if err == nil {
		// One ping before the snapshot, so that pongs arrive during it.
		err = s.pingLocked()
	}
	if err == nil && compressed {
		err = s.compressionDanceLocked(data.snapshot)
	}
	s.writeMu.Unlock()
	if err != nil {
		return nil, err
	}
	kvsSent := 0
	if compressed {
		kvsSent += len(data.snapshot)
	}

	// Pinger.
	stopPings := make(chan struct{})
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		if cfg.pingInterval <= 0 {
			return
		}
		tick := time.NewTicker(cfg.pingInterval)
		defer tick.Stop()
		for {
			select {
			case <-stopPings:
				return
			case <-s.failed:
				return
			case <-tick.C:
			}
			s.writeMu.Lock()
			select {
			case <-stopPings:
				s.writeMu.Unlock()
				return
			default:
			}
			err := s.pingLocked()
			s.writeMu.Unlock()
			if err != nil {
				s.fail(err)
				return
			}
		}
	}()
	stopPinger := func() {
		select {
		case <-stopPings:
		default:
			close(stopPings)
		}
		<-pingerDone
	}
	defer stopPinger()

	// Uncompressed snapshot, in batches (pings may interleave).
	if !compressed {
		for i := 0; i < len(data.snapshot); i += cfg.batch {
			end := i + cfg.batch
			if end > len(data.snapshot) {
				end = len(data.snapshot)
			}
			if err := s.send(syncproto.MsgKVs{KVs: data.snapshot[i:end]}); err != nil {
				return nil, err
			}
			kvsSent += end - i
		}
	}
	// The in-sync that ends the initial sync, and its checksum.
	if err := s.send(syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync}); err != nil {
		return nil, err
	}
	if err := sendChecksumIf(false, true, syncproto.InSync, data.snapshotSum); err != nil {
		return nil, err
	}
	last := syncproto.InSync
	for i, l := range data.updates {
		// Each record is a batch of deltas of its own; a checksum after it
		// describes the state including it.
		var msg interface{}
		if l.update != nil {
			msg = syncproto.MsgKVs{KVs: []syncproto.SerializedUpdate{*l.update}}
			kvsSent++
		} else {
			msg = syncproto.MsgSyncStatus{SyncStatus: *l.status}
			last = *l.status
		}
		if err := s.send(msg); err != nil {
			return nil, err
		}
		if err := sendChecksumIf(l.update != nil, l.status != nil, last, data.sums[i]); err != nil {
			return nil, err
		}
	}
	if last != syncproto.InSync {
		if err := s.send(syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync}); err != nil {
			return nil, err
		}
	}
	finalSum := data.snapshotSum
	if n := len(data.sums); n > 0 {
		finalSum = data.sums[n-1]
	}

	// Finish: enough pongs, then stop pinging, then every ping answered.
	deadline := time.Now().Add(cfg.pongTimeout)
	waitFor := func(cond func(pings, pongs int) bool, what string) error {
		for {
			if cond(s.pongCounts()) {
				return nil
			}
			select {
			case <-s.failed:
				return s.failErr
			case <-time.After(2 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				pings, pongs := s.pongCounts()
				return fmt.Errorf("timed out after %v waiting for %s (pings sent %d, pongs received %d)",
					cfg.pongTimeout, what, pings, pongs)
			}
		}
	}
	if err := waitFor(func(_, pongs int) bool { return pongs >= cfg.minPongs }, fmt.Sprintf("%d pongs", cfg.minPongs)); err != nil {
		return nil, err
	}
	stopPinger()
	if err := waitFor(func(pings, pongs int) bool { return pongs == pings }, "a pong for every ping"); err != nil {
		return nil, err
	}

	// Close gracefully: FIN first so the client sees a clean EOF, then
	// give it a moment to close its side.
	s.closing.Store(true)
	if tc, ok := s.conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		select {
		case <-s.readerDone:
		case <-time.After(2 * time.Second):
		}
	}
	s.conn.Close()
	select {
	case <-s.failed:
		return nil, s.failErr
	default:
	}

	pings, pongs := s.pongCounts()
	helloJSON, _ := messageJSON(hello)
	return ordered{
		{"ok", true},
		{"layout", syncproto.LayoutName},
		{"client_hello", helloJSON.without("type")},
		{"pings_sent", pings},
		{"pongs_received", pongs},
		{"kvs_sent", kvsSent},
		{"compressed", compressed},
		{"checksums", checksums != nil},
		{"checksums_sent", checksumsSent},
		{"checksum", finalSum.hex()},
		{"kv_count", finalSum.KVCount},
	}, nil
}

// compressionDanceLocked switches the connection to snappy and sends the
// snapshot as a compressed blob; the caller holds writeMu.
func (s *serverConn) compressionDanceLocked(snapshot []syncproto.SerializedUpdate) error {
	err := snappyDance(s.w, func() []syncproto.SerializedUpdate { return snapshot },
		s.cfg.snapBatch, s.cfg.plainChunks, s.expectACK, s.waitACK)
	if err != nil {
		return s.failure(err)
	}
	return nil
}
