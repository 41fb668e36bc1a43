package main

// The sending half of a server-side connection, shared by the server and hub
// modes: the current gob encoder (replaced when the connection switches to
// snappy), write deadlines, and the snappy decoder-restart dance with its
// compressed snapshot blob.

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"net"
	"time"

	"syncproto/interop/go/syncproto"
)

const (
	compressedBatchMax = 1000
	restartEnableMsg   = "enable compression: snappy;send binary snapshot"
	restartEndMsg      = "End of compressed snapshot."
)

// msgWriter writes messages to a connection. It does no locking: callers
// serialise (the server and hub modes each hold a write mutex).
type msgWriter struct {
	conn         net.Conn
	writeTimeout time.Duration
	enc          *gob.Encoder
	flush        func() error
}

func newMsgWriter(conn net.Conn, writeTimeout time.Duration) *msgWriter {
	return &msgWriter{
		conn:         conn,
		writeTimeout: writeTimeout,
		enc:          gob.NewEncoder(conn),
		flush:        func() error { return nil },
	}
}

// send encodes one message through the current encoder and flushes it,
// under a fresh write deadline.
func (w *msgWriter) send(msg interface{}) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.writeTimeout)); err != nil {
		return err
	}
	if err := w.enc.Encode(&syncproto.Envelope{Message: msg}); err != nil {
		return fmt.Errorf("sending %T: %w", msg, err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("flushing %T: %w", msg, err)
	}
	return nil
}

// writeRaw writes bytes that bypass the encoder (the snapshot blob).
func (w *msgWriter) writeRaw(b []byte, what string) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.writeTimeout)); err != nil {
		return err
	}
	if _, err := w.conn.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	return nil
}

// useSnappy replaces the encoder with a new one over a new snappy framing
// stream, flushed after every message.
func (w *msgWriter) useSnappy(plainChunks bool) {
	sw := newSnappyWriter(w.conn, plainChunks)
	w.enc = gob.NewEncoder(sw)
	w.flush = sw.Flush
}

// snappyDance switches the connection to snappy as upstream Typha does:
// DecoderRestart{restartEnableMsg, "snappy"}, wait for the ACK, write the
// snapshot blob (see compressedSnapshot; snapshot is called only after the
// first ACK, so it can take the then-current state), wait for the second
// ACK, then a new encoder over a new snappy stream. expectACK (may be nil)
// is called before each restart goes out; waitACK must return once the
// client's ACK for it has arrived. The caller holds its write mutex.
func snappyDance(w *msgWriter, snapshot func() []syncproto.SerializedUpdate, batch int, plainChunks bool,
	expectACK func(), waitACK func(what string) error) error {
	if expectACK == nil {
		expectACK = func() {}
	}
	restart, _ := syncproto.NewDecoderRestart(restartEnableMsg, syncproto.CompressionSnappy)
	expectACK()
	if err := w.send(restart); err != nil {
		return err
	}
	if err := waitACK("for the first DecoderRestart"); err != nil {
		return err
	}
	blob := compressedSnapshot(snapshot(), batch, plainChunks)
	expectACK()
	if err := w.writeRaw(blob, "the compressed snapshot"); err != nil {
		return err
	}
	if err := waitACK("for the end of the compressed snapshot"); err != nil {
		return err
	}
	w.useSnappy(plainChunks)
	return nil
}

// compressedSnapshot is the shared snapshot blob: a fresh snappy stream
// holding a fresh gob stream of KVs batches, ending with a DecoderRestart.
func compressedSnapshot(snapshot []syncproto.SerializedUpdate, batch int, plainChunks bool) []byte {
	var buf bytes.Buffer
	sw := newSnappyWriter(&buf, plainChunks)
	enc := gob.NewEncoder(sw)
	must := func(err error) {
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
	}
	for i := 0; i < len(snapshot); i += batch {
		end := i + batch
		if end > len(snapshot) {
			end = len(snapshot)
		}
		must(enc.Encode(&syncproto.Envelope{Message: syncproto.MsgKVs{KVs: snapshot[i:end]}}))
	}
	restart, _ := syncproto.NewDecoderRestart(restartEndMsg, syncproto.CompressionSnappy)
	must(enc.Encode(&syncproto.Envelope{Message: restart}))
	must(sw.Flush())
	return buf.Bytes()
}
