package main

// One hub connection, served as upstream Typha's syncserver serves one:
// handshake, the snappy dance (if asked and possible) or a streamed
// snapshot, then a delta sender following the breadcrumbs and a pinger
// sharing the encoder, while this connection's goroutine reads pongs and
// checks their liveness. At finish it catches up with the latest
// breadcrumb, stops sending, half-closes and waits for the client to close.

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"syncproto/interop/go/syncproto"
)

type hubConn struct {
	hub  *hub
	cfg  hubConfig
	id   uint64
	conn net.Conn

	// ctx is canceled when the connection fails (fail) or ends.
	ctx    context.Context
	cancel context.CancelFunc

	// readC carries the client's messages; the reader closes it when
	// reading ends, after setting readErr.
	readC   chan interface{}
	readErr error

	// writeMu serialises the writers (this goroutine during the snapshot,
	// then the delta sender and the pinger) and guards w.
	writeMu sync.Mutex
	w       *msgWriter

	senders sync.WaitGroup // the delta sender and the pinger
	// sentUpTo is 1 + the sequence number of the newest breadcrumb whose
	// deltas and status have been sent (0: not even the snapshot).
	sentUpTo atomic.Uint64

	mu            sync.Mutex
	failErr       error // the first failure; it ends the connection
	hostname      string
	compressed    bool
	refused       string
	pingsSent     int
	pongsReceived int
	pongsMatched  int
	kvsSent       int
	checksums     bool // negotiated: the client asked and checksums are on
	checksumsSent int
	unmatched     []time.Time // pings sent that no pong has matched yet
	end           string
	clientClosed  bool

	done chan struct{} // closed when the connection is over
}

func newHubConn(h *hub, id uint64, conn net.Conn) *hubConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &hubConn{
		hub:    h,
		cfg:    h.cfg,
		id:     id,
		conn:   conn,
		ctx:    ctx,
		cancel: cancel,
		readC:  make(chan interface{}),
		w:      newMsgWriter(conn, h.cfg.writeTimeout),
		done:   make(chan struct{}),
	}
}

// fail records the first failure and cancels the connection.
func (c *hubConn) fail(err error) {
	c.mu.Lock()
	if c.failErr == nil {
		c.failErr = err
	}
	c.mu.Unlock()
	c.cancel()
}

// failure is the recorded failure (or the context's error).
func (c *hubConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failErr != nil {
		return c.failErr
	}
	return c.ctx.Err()
}

func (c *hubConn) run() {
	defer close(c.done)
	go c.readLoop()
	if err := c.serve(); err != nil {
		c.fail(err)
	}
	c.cancel()
	c.conn.Close()
	c.senders.Wait()
	c.mu.Lock()
	c.end = "finished"
	if c.failErr != nil {
		c.end = c.failErr.Error()
	}
	end := c.end
	c.mu.Unlock()
	c.hub.event(ordered{{"event", "ended"}, {"id", c.id}, {"end", end}})
}

func (c *hubConn) readLoop() {
	defer close(c.readC)
	dec := gob.NewDecoder(c.conn)
	for {
		var env syncproto.Envelope
		if err := dec.Decode(&env); err != nil {
			c.readErr = fmt.Errorf("decoding a client message: %w", err)
			return
		}
		if env.Message == nil {
			c.readErr = errors.New("client sent an Envelope with a nil message")
			return
		}
		select {
		case c.readC <- env.Message:
		case <-c.ctx.Done():
			c.readErr = c.ctx.Err()
			return
		}
	}
}

// readEnd describes why readC was closed.
func (c *hubConn) readEnd() error {
	if errors.Is(c.readErr, io.EOF) {
		return errors.New("client closed the connection")
	}
	return c.readErr
}

// waitForMessage waits for the next client message. Once finish has begun,
// it waits no later than the finish deadline.
func (c *hubConn) waitForMessage(timeout time.Duration, what string) (interface{}, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTimer(timeout)
	defer t.Stop()
	finishing, limitedByFinish := c.hub.finishing, false
	for {
		select {
		case msg, ok := <-c.readC:
			if !ok {
				return nil, fmt.Errorf("waiting for %s: %v", what, c.readEnd())
			}
			return msg, nil
		case <-t.C:
			if limitedByFinish {
				return nil, fmt.Errorf("finish: timed out after %v waiting for %s", c.cfg.catchUpTimeout, what)
			}
			return nil, fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		case <-finishing:
			finishing = nil
			if c.hub.finishBy.Before(deadline) {
				deadline, limitedByFinish = c.hub.finishBy, true
				if !t.Stop() {
					<-t.C
				}
				t.Reset(time.Until(deadline))
			}
		case <-c.ctx.Done():
			return nil, c.failure()
		}
	}
}

// refuse ends the handshake without a reply.
func (c *hubConn) refuse(reason string) error {
	c.mu.Lock()
	c.refused = reason
	c.mu.Unlock()
	return errors.New("refused: " + reason)
}

func (c *hubConn) handshake() (syncproto.MsgClientHello, syncproto.SyncerType, error) {
	msg, err := c.waitForMessage(c.cfg.handshakeTimeout, "the ClientHello")
	if err != nil {
		return syncproto.MsgClientHello{}, "", err
	}
	hello, ok := msg.(syncproto.MsgClientHello)
	if !ok {
		return hello, "", fmt.Errorf("first client message is %s, want ClientHello", describe(msg))
	}
	c.mu.Lock()
	c.hostname = hello.Hostname
	c.mu.Unlock()
	syncer := requestedSyncer(hello)
	if syncer != syncproto.SyncerTypeFelix {
		return hello, syncer, c.refuse(fmt.Sprintf("unsupported syncer type %q", syncer))
	}
	if !c.cfg.allowLegacy && syncproto.LacksModernPolicyKeys(hello) {
		return hello, syncer, c.refuse("client does not support modern policy keys")
	}
	return hello, syncer, nil
}

func (c *hubConn) serve() error {
	hello, syncer, err := c.handshake()
	if err != nil {
		return err
	}
	compressed := c.cfg.compress && syncproto.ClientWantsSnappy(hello)
	checksums := c.cfg.checksumSchedule(hello) // nil: none for this client
	c.mu.Lock()
	c.compressed = compressed
	c.checksums = checksums != nil
	c.mu.Unlock()

	serverHello := syncproto.NewServerHello(serverVersion, syncer, c.id)
	syncproto.AgreeChecksums(&serverHello, checksums != nil)
	c.writeMu.Lock()
	var crumb *breadcrumb
	var kvs []syncproto.SerializedUpdate
	err = c.w.send(serverHello)
	if err == nil && compressed {
		err = snappyDance(c.w, func() []syncproto.SerializedUpdate {
			crumb, kvs = c.hub.cache.snapshot()
			return kvs
		}, compressedBatchMax, false, nil, c.waitACK)
	} else if err == nil {
		crumb, kvs = c.hub.cache.snapshot()
		for i := 0; i < len(kvs) && err == nil; i += c.cfg.batch {
			end := i + c.cfg.batch
			if end > len(kvs) {
				end = len(kvs)
			}
			err = c.w.send(syncproto.MsgKVs{KVs: kvs[i:end]})
		}
	}
	c.writeMu.Unlock()
	if err != nil {
		return err
	}
	c.addKVs(len(kvs))
	c.hub.event(ordered{{"event", "streaming"}, {"id", c.id}, {"compressed", compressed},
		{"snapshot_seq", crumb.seq}, {"snapshot_kvs", len(kvs)}})

	// Pings start only now, as upstream.
	sendCtx, stopSending := context.WithCancel(c.ctx)
	defer stopSending()
	c.senders.Add(2)
	go c.sendDeltas(sendCtx, crumb, checksums)
	go c.sendPings(sendCtx)
	return c.watch(stopSending)
}

// waitACK waits for the ACK of a DecoderRestart (pong timeout, as upstream).
func (c *hubConn) waitACK(what string) error {
	msg, err := c.waitForMessage(c.cfg.pongTimeout, "the ACK "+what)
	if err != nil {
		return err
	}
	if !syncproto.IsACK(msg) {
		return fmt.Errorf("expected the ACK %s, got %s", what, describe(msg))
	}
	return nil
}

// watch reads the client's pongs and checks their liveness until the
// connection fails or finish has closed it.
func (c *hubConn) watch(stopSending func()) error {
	lastPong := time.Now()
	var pongCheck <-chan time.Time
	if c.cfg.pingInterval > 0 {
		every := c.cfg.pingInterval / 2
		if every < time.Millisecond {
			every = time.Millisecond
		}
		t := time.NewTicker(every)
		defer t.Stop()
		pongCheck = t.C
	}
	finishing := c.hub.finishing
	var catchUp <-chan time.Time
	var target uint64
	for {
		select {
		case msg, ok := <-c.readC:
			if !ok {
				return c.readEnd()
			}
			pong, isPong := msg.(syncproto.MsgPong)
			if !isPong {
				return fmt.Errorf("unexpected client message %s", describe(msg))
			}
			lastPong = time.Now()
			c.notePong(pong)
		case <-pongCheck:
			if since := time.Since(lastPong); since > c.cfg.pongTimeout {
				return fmt.Errorf("no pong from the client for %v (pong timeout %v)", since.Round(time.Millisecond), c.cfg.pongTimeout)
			}
		case <-finishing:
			finishing = nil
			target = c.hub.cache.latest().seq + 1
			t := time.NewTicker(2 * time.Millisecond)
			defer t.Stop()
			catchUp = t.C
		case <-catchUp:
			if c.sentUpTo.Load() >= target {
				return c.finishGracefully(stopSending)
			}
			if time.Now().After(c.hub.finishBy) {
				return fmt.Errorf("finish: timed out after %v: breadcrumbs sent up to %d, latest %d",
					c.cfg.catchUpTimeout, int64(c.sentUpTo.Load())-1, target-1)
			}
		case <-c.ctx.Done():
			return c.failure()
		}
	}
}

// finishGracefully stops the delta sender and the pinger, half-closes so
// that the client sees a clean EOF, then keeps reading (pongs still count)
// until the client closes or closeTimeout passes.
func (c *hubConn) finishGracefully(stopSending func()) error {
	stopSending()
	c.senders.Wait()
	if c.ctx.Err() != nil {
		return c.failure()
	}
	c.writeMu.Lock()
	var err error
	if tc, ok := c.conn.(*net.TCPConn); ok {
		err = tc.CloseWrite()
	}
	c.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("half-closing the connection: %v", err)
	}
	t := time.NewTimer(c.cfg.closeTimeout)
	defer t.Stop()
	for {
		select {
		case msg, ok := <-c.readC:
			if !ok {
				if errors.Is(c.readErr, io.EOF) {
					c.mu.Lock()
					c.clientClosed = true
					c.mu.Unlock()
					return nil
				}
				return fmt.Errorf("after the server's FIN: %v", c.readEnd())
			}
			pong, isPong := msg.(syncproto.MsgPong)
			if !isPong {
				return fmt.Errorf("after the server's FIN: unexpected client message %s", describe(msg))
			}
			c.notePong(pong)
		case <-t.C:
			return nil // finished, but client_closed stays false
		case <-c.ctx.Done():
			return c.failure()
		}
	}
}

// sendDeltas follows the breadcrumbs after the snapshot's, as upstream's
// sendDeltaUpdatesToClient: one KVs per breadcrumb, or, while the client
// lags by at least --min-batching-age, whole breadcrumbs coalesced while
// the message has fewer than --max-message-size updates; after each, the
// status if it changed, then a MsgChecksum if checksums says one is due:
// the checksum of the last breadcrumb sent, which is the state after
// everything just sent, coalesced or not.
func (c *hubConn) sendDeltas(ctx context.Context, crumb *breadcrumb, checksums *checksumSchedule) {
	defer c.senders.Done()
	send := func(msg interface{}) error {
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		return c.w.send(msg)
	}
	fail := func(err error) {
		if ctx.Err() == nil {
			c.fail(err)
		}
	}
	lastSent := syncproto.WaitForDatastore
	// finishMessage sends, after a message of deltas (or none), the status
	// if it changed and then the checksum if one is due.
	finishMessage := func(deltas bool) error {
		statusSent := crumb.status != lastSent
		if statusSent {
			if err := send(syncproto.MsgSyncStatus{SyncStatus: crumb.status}); err != nil {
				return err
			}
			lastSent = crumb.status
		}
		if checksums.after(deltas, statusSent, crumb.status, time.Now()) {
			msg, _ := crumb.sum.message()
			if err := send(msg); err != nil {
				return err
			}
			c.mu.Lock()
			c.checksumsSent++
			c.mu.Unlock()
		}
		return nil
	}
	if err := finishMessage(false); err != nil {
		fail(err)
		return
	}
	// Only now is the breadcrumb sent: finish waits for this, so the
	// checksum after the last breadcrumb is not cut off.
	c.sentUpTo.Store(crumb.seq + 1)
	for {
		var deltas []syncproto.SerializedUpdate
		for len(deltas) < c.cfg.maxMessageSize {
			next, err := crumb.nextCrumb(ctx)
			if err != nil {
				return
			}
			crumb = next
			age := c.hub.cache.latest().timestamp.Sub(crumb.timestamp)
			if age < c.cfg.minBatchingAge && deltas == nil {
				deltas = crumb.deltas // not behind: this breadcrumb alone
				break
			}
			deltas = append(deltas, crumb.deltas...)
			if age < c.cfg.minBatchingAge {
				break // caught up
			}
		}
		if len(deltas) > 0 {
			if err := send(syncproto.MsgKVs{KVs: deltas}); err != nil {
				fail(err)
				return
			}
			c.addKVs(len(deltas))
		}
		if err := finishMessage(len(deltas) > 0); err != nil {
			fail(err)
			return
		}
		c.sentUpTo.Store(crumb.seq + 1)
	}
}

// sendPings sends Ping{time.Now()} every --ping-interval.
func (c *hubConn) sendPings(ctx context.Context) {
	defer c.senders.Done()
	if c.cfg.pingInterval <= 0 {
		return
	}
	t := time.NewTicker(c.cfg.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.writeMu.Lock()
		if ctx.Err() != nil {
			c.writeMu.Unlock()
			return
		}
		ts := time.Now()
		c.mu.Lock()
		c.unmatched = append(c.unmatched, ts)
		c.mu.Unlock()
		err := c.w.send(syncproto.MsgPing{Timestamp: ts})
		c.writeMu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		c.mu.Lock()
		c.pingsSent++
		c.mu.Unlock()
	}
}

// notePong counts a pong, and matches it against an unmatched ping.
func (c *hubConn) notePong(m syncproto.MsgPong) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pongsReceived++
	for i, ts := range c.unmatched {
		if ts.Equal(m.PingTimestamp) {
			c.unmatched = append(c.unmatched[:i], c.unmatched[i+1:]...)
			c.pongsMatched++
			return
		}
	}
}

func (c *hubConn) addKVs(n int) {
	c.mu.Lock()
	c.kvsSent += n
	c.mu.Unlock()
}

// summary is this connection's entry in the hub's summary line.
func (c *hubConn) summary() ordered {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := ordered{
		{"id", c.id},
		{"hostname", c.hostname},
		{"compressed", c.compressed},
		{"end", c.end},
		{"pings_sent", c.pingsSent},
		{"pongs_received", c.pongsReceived},
		{"pongs_matched", c.pongsMatched},
		{"kvs_sent", c.kvsSent},
		{"checksums", c.checksums},
		{"checksums_sent", c.checksumsSent},
	}
	if c.end == "finished" {
		o = append(o, field{"client_closed", c.clientClosed})
	}
	if c.refused != "" {
		o = append(o, field{"refused", c.refused})
	}
	return o
}
