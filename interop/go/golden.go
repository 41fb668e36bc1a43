package main

// Golden mode: write the raw bytes of fixed gob streams, exactly as Go's
// encoder wrote them, with a JSON description of every message, for the
// Rust unit tests to decode without Go.

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"syncproto/interop/go/syncproto"
)

// goldenNames lists the vectors of this build's layout, in generation order.
func goldenNames() []string {
	names := []string{"first_ping", "server_session", "client_session", "large_value"}
	if syncproto.SupportsCompression {
		names = append(names, "compressed_session")
	}
	if syncproto.SupportsChecksums {
		names = append(names, "checksum_session", "checksum_alone")
	}
	return names
}

func goldenMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("go-peer golden", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output directory (required)")
	only := fs.String("only", "", "write just this vector, in this process (default: each vector in a fresh child process)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "go-peer golden: --out DIR is required and no positional arguments are taken")
		return exitUsage
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return failJSON(stdout, err)
	}
	if *only != "" {
		info, err := writeVector(*out, *only)
		if err != nil {
			return failJSON(stdout, err)
		}
		printJSON(stdout, info)
		return exitOK
	}
	// gob assigns type ids process-wide, in the order types are first
	// encoded; running each vector in a fresh process makes every vector's
	// ids start at 65 like a freshly started peer's, independent of the
	// other vectors.
	self, err := os.Executable()
	if err != nil {
		return failJSON(stdout, err)
	}
	for _, name := range goldenNames() {
		cmd := exec.Command(self, "golden", "--out", *out, "--only", name)
		cmd.Stdout = stdout
		cmd.Stderr = stderr
		if err := cmd.Run(); err != nil {
			return failJSON(stdout, fmt.Errorf("vector %s: %w", name, err))
		}
	}
	return exitOK
}

// writeVector generates one vector, checks that it decodes back to what it
// describes, and writes the .bin / .json pair.
func writeVector(dir, name string) (ordered, error) {
	bin, msgs, err := buildVector(name)
	if err != nil {
		return nil, err
	}
	want, err := messagesJSON(msgs, timeHex)
	if err != nil {
		return nil, err
	}
	if err := checkVector(bin, msgs); err != nil {
		return nil, fmt.Errorf("vector %s: %w", name, err)
	}
	base := filepath.Join(dir, name+"."+syncproto.LayoutName)
	if err := os.WriteFile(base+".bin", bin, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(base+".json", want, 0o644); err != nil {
		return nil, err
	}
	return ordered{{"vector", name}, {"layout", syncproto.LayoutName}, {"bin_bytes", len(bin)}, {"json_bytes", len(want)}, {"messages", len(msgs)}}, nil
}

// checkVector decodes bin with encoding/gob and checks that it holds msgs
// (timestamps compared as instants: see instantHex).
func checkVector(bin []byte, msgs []interface{}) error {
	var decoded []interface{}
	if _, err := decodeStream(bin, true, func(m interface{}) error { decoded = append(decoded, m); return nil }); err != nil {
		return fmt.Errorf("does not decode: %w", err)
	}
	want, err := messagesJSON(msgs, instantHex)
	if err != nil {
		return err
	}
	got, err := messagesJSON(decoded, instantHex)
	if err != nil {
		return err
	}
	if !bytes.Equal(want, got) {
		return fmt.Errorf("decodes to something else than it describes")
	}
	return nil
}

// messagesJSON renders a JSON array, one message per line.
func messagesJSON(msgs []interface{}, th func(time.Time) string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, m := range msgs {
		o, err := messageJSONWith(m, th)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
		if i < len(msgs)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("]\n")
	return buf.Bytes(), nil
}

// streamRecorder encodes messages into memory and remembers them.
type streamRecorder struct {
	buf  bytes.Buffer
	enc  *gob.Encoder
	msgs []interface{}
}

func newRecorder() *streamRecorder {
	r := &streamRecorder{}
	r.enc = gob.NewEncoder(&r.buf)
	return r
}

func (r *streamRecorder) add(msgs ...interface{}) {
	for _, m := range msgs {
		if err := r.enc.Encode(&syncproto.Envelope{Message: m}); err != nil {
			panic(fmt.Sprintf("encoding %T: %v", m, err))
		}
		r.msgs = append(r.msgs, m)
	}
}

// Fixed timestamps.
var (
	goldenPingTime  = time.Date(2018, 2, 1, 14, 30, 0, 0, time.UTC)
	goldenUTCTime   = time.Date(2024, 5, 17, 9, 41, 26, 123456789, time.UTC)
	goldenPlusHour  = time.Date(2024, 5, 17, 10, 41, 27, 500, time.FixedZone("", 3600))
	goldenMinus50s  = time.Date(2024, 5, 17, 9, 40, 38, 999999999, time.FixedZone("", -50))
	goldenPongTime  = time.Date(2024, 5, 17, 9, 41, 26, 223456789, time.UTC)
	goldenPongTime2 = time.Date(2030, 12, 31, 23, 59, 59, 1, time.FixedZone("", -7*3600-30*60))
)

func buildVector(name string) ([]byte, []interface{}, error) {
	switch name {
	case "first_ping":
		r := newRecorder()
		r.add(syncproto.MsgPing{Timestamp: goldenPingTime}, syncproto.MsgPing{Timestamp: goldenPingTime})
		return r.buf.Bytes(), r.msgs, nil
	case "server_session":
		return serverSessionVector()
	case "client_session":
		r := newRecorder()
		r.add(
			syncproto.FullClientHello(),
			syncproto.MsgPong{PingTimestamp: goldenUTCTime, PongTimestamp: goldenPongTime},
		)
		if ack, ok := syncproto.NewACK(); ok {
			r.add(ack)
		}
		r.add(syncproto.MsgPong{PingTimestamp: goldenPongTime2})
		return r.buf.Bytes(), r.msgs, nil
	case "large_value":
		r := newRecorder()
		r.add(syncproto.MsgKVs{KVs: largeValueKVs()})
		return r.buf.Bytes(), r.msgs, nil
	case "compressed_session":
		if syncproto.SupportsCompression {
			return compressedSessionVector()
		}
	case "checksum_session":
		if syncproto.SupportsChecksums {
			return checksumSessionVector()
		}
	case "checksum_alone":
		// The state holding only upstream's golden entry ("ab", "c"), sent
		// twice on one encoder: the first carries the type definitions
		// (MsgChecksum's inside the value's own message, as gob does for a
		// type first met in an interface), the second is the message alone.
		if msg, ok := (stateChecksum{Checksum: entryDigest("ab", []byte("c")), KVCount: 1}).message(); ok {
			r := newRecorder()
			r.add(msg, msg)
			return r.buf.Bytes(), r.msgs, nil
		}
	}
	return nil, nil, fmt.Errorf("no vector %q in layout %s (have %s)", name, syncproto.LayoutName, strings.Join(goldenNames(), ", "))
}

func kv(key string, value []byte, rev interface{}, v3 string, ttl time.Duration, ut syncproto.UpdateType) syncproto.SerializedUpdate {
	u := syncproto.SerializedUpdate{Key: key, Value: value, Revision: rev, TTL: ttl, UpdateType: ut}
	syncproto.SetV3ResourceVersion(&u, v3)
	return u
}

const goldenWEP = `{"state":"active","name":"cali1234567890a","active_instance_id":"","mac":"ee:ee:ee:ee:ee:ee","profile_ids":["kns.ns","ksa.ns.default"],"ipv4_nets":["10.65.0.2/32"],"ipv6_nets":["fd00::2/128"],"labels":{"app":"web","projectcalico.org/namespace":"ns"}}`

func serverSessionVector() ([]byte, []interface{}, error) {
	r := newRecorder()
	r.add(syncproto.NewServerHello("v3.99.0-golden", "felix", 0x0102030405060708))
	r.add(syncproto.MsgKVs{KVs: []syncproto.SerializedUpdate{
		kv("/calico/v1/config/LogSeverityScreen", []byte("Info"), "17", "", 0, syncproto.UpdateTypeNew),
		kv("/calico/v1/host/node-1/workload/kubernetes/ns%2fpod-1/endpoint/eth0", []byte(goldenWEP), "123456", "123450", 0, syncproto.UpdateTypeNew),
		kv("/calico/v1/host/node-2/workload/kubernetes/ns%2fpod-2/endpoint/eth0", nil, "123457", "", 0, syncproto.UpdateTypeDeleted),
		kv("/calico/v1/Ready", []byte("true"), "9", "", 90*time.Second, syncproto.UpdateTypeUpdated),
		kv("/calico/v1/config/Description", []byte("grüße, 世界"), "10", "", 0, syncproto.UpdateTypeNew),
		kv("/calico/v1/config/Binary", []byte{0x00, 0xff, 0xfe, 0x80, 0x7f}, "11", "", -1, syncproto.UpdateTypeNew),
	}})
	r.add(syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync})
	r.add(syncproto.MsgPing{Timestamp: goldenUTCTime})

	revs := []interface{}{
		int(42), int(-1), int8(127), int8(-128), int16(32767), int16(-32768),
		int32(math.MaxInt32), int32(math.MinInt32), int64(math.MaxInt64), int64(math.MinInt64),
		uint(0), uint(7), uint8(255), uint16(65535), uint32(math.MaxUint32), uint64(math.MaxUint64),
		uintptr(0xdeadbeef), float32(1.5), float32(0.1), float64(-2.25), float64(1e300),
		true, false, complex64(complex(1, 2)), complex128(complex(-3.5, 0.25)),
		"", "abc", nil,
	}
	var kvs []syncproto.SerializedUpdate
	for i, rev := range revs {
		key := fmt.Sprintf("/calico/v1/config/Rev%02d_%T", i, rev)
		value := []byte(fmt.Sprintf("value %d", i))
		ut := syncproto.UpdateType(i % 4)
		if ut == syncproto.UpdateTypeDeleted {
			value = nil
		}
		kvs = append(kvs, kv(key, value, rev, "", time.Duration(i)*time.Millisecond, ut))
	}
	r.add(syncproto.MsgKVs{KVs: kvs})
	r.add(syncproto.MsgPing{Timestamp: goldenPlusHour})
	r.add(syncproto.MsgPing{Timestamp: goldenMinus50s})
	r.add(syncproto.MsgKVs{})
	r.add(syncproto.MsgSyncStatus{SyncStatus: syncproto.ResyncInProgress})
	r.add(syncproto.MsgSyncStatus{SyncStatus: syncproto.WaitForDatastore})
	if restart, ok := syncproto.NewDecoderRestart("golden: restart without compression", ""); ok {
		r.add(restart)
	}
	return r.buf.Bytes(), r.msgs, nil
}

func largeValueKVs() []syncproto.SerializedUpdate {
	const size = 300 * 1024
	var big strings.Builder
	big.WriteString(`{"kind":"GlobalNetworkSet","metadata":{"name":"big-set"},"spec":{"nets":[`)
	for i := 0; ; i++ {
		item := fmt.Sprintf(`"10.%d.%d.%d/32"`, (i>>16)&255, (i>>8)&255, i&255)
		if big.Len()+len(item)+1+3 > size {
			break
		}
		if i > 0 {
			big.WriteByte(',')
		}
		big.WriteString(item)
	}
	big.WriteString("]}}")
	for big.Len() < size {
		big.WriteByte(' ')
	}
	var kvs []syncproto.SerializedUpdate
	for i := 0; i < 151; i++ {
		if i == 75 {
			kvs = append(kvs, kv("/calico/v1/netset/big-set", []byte(big.String()), "900", "899", 0, syncproto.UpdateTypeNew))
			continue
		}
		kvs = append(kvs, kv(
			fmt.Sprintf("/calico/v1/host/node-%d/config/Small%03d", i%7, i),
			[]byte(fmt.Sprintf(`{"v":%d}`, i)),
			fmt.Sprint(1000+i), "", 0, syncproto.UpdateTypeNew))
	}
	return kvs
}

// compressedDataset is a fixed, realistic-looking snapshot of 2500 KVs in
// ascending key order.
func compressedDataset() []syncproto.SerializedUpdate {
	var kvs []syncproto.SerializedUpdate
	for i := 0; i < 2500; i++ {
		node := i / 25
		var key, value string
		switch i % 5 {
		case 0:
			key = fmt.Sprintf("/calico/v1/host/node-%03d/config/Setting%04d", node, i)
			value = fmt.Sprint(i % 3)
		default:
			key = fmt.Sprintf("/calico/v1/host/node-%03d/workload/kubernetes/ns-%d%%2fpod-%05d/endpoint/eth0", node, i%7, i)
			value = fmt.Sprintf(`{"state":"active","name":"cali%011x","mac":"ee:ee:ee:ee:ee:ee","profile_ids":["kns.ns-%d"],"ipv4_nets":["10.%d.%d.%d/32"]}`,
				i*7919, i%7, (i>>16)&255, (i>>8)&255, i&255)
		}
		kvs = append(kvs, kv(key, []byte(value), fmt.Sprint(50000+i), fmt.Sprint(40000+i), 0, syncproto.UpdateTypeNew))
	}
	sortKVs(kvs)
	return kvs
}

// compressedSessionVector is a compressed session as the server mode writes
// it (without the pre-snapshot ping): ServerHello, DecoderRestart(snappy),
// the snapshot blob (its own snappy + gob streams), then a new snappy stream
// with a new gob encoder, flushed after each message.
func compressedSessionVector() ([]byte, []interface{}, error) {
	r := newRecorder()
	r.add(syncproto.NewServerHello("v3.99.0-golden", "felix", 99))
	start, _ := syncproto.NewDecoderRestart(restartEnableMsg, syncproto.CompressionSnappy)
	r.add(start)

	snapshot := compressedDataset()
	r.buf.Write(compressedSnapshot(snapshot, compressedBatchMax, false))
	for i := 0; i < len(snapshot); i += compressedBatchMax {
		end := i + compressedBatchMax
		if end > len(snapshot) {
			end = len(snapshot)
		}
		r.msgs = append(r.msgs, syncproto.MsgKVs{KVs: snapshot[i:end]})
	}
	end, _ := syncproto.NewDecoderRestart(restartEndMsg, syncproto.CompressionSnappy)
	r.msgs = append(r.msgs, end)

	sw := newSnappyWriter(&r.buf, false)
	enc := gob.NewEncoder(sw)
	for _, m := range []interface{}{
		syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync},
		syncproto.MsgPing{Timestamp: goldenUTCTime},
		syncproto.MsgKVs{KVs: []syncproto.SerializedUpdate{
			kv("/calico/v1/host/node-000/config/Setting0000", []byte("updated"), "60000", "", 0, syncproto.UpdateTypeUpdated),
		}},
	} {
		if err := enc.Encode(&syncproto.Envelope{Message: m}); err != nil {
			return nil, nil, err
		}
		if err := sw.Flush(); err != nil {
			return nil, nil, err
		}
		r.msgs = append(r.msgs, m)
	}
	return r.buf.Bytes(), r.msgs, nil
}

// checksumSessionVector is a server stream to a client that asked for
// checksums: the hello agreeing, a snapshot, the in-sync that ends the
// initial sync and its checksum, then deltas each followed by the checksum
// of the state after them, down to an empty store (a MsgChecksum with no
// fields on the wire). Every checksum is computed from the KVs before it,
// as a client would.
func checksumSessionVector() ([]byte, []interface{}, error) {
	r := newRecorder()
	hello := syncproto.NewServerHello("v3.99.0-golden", "felix", 7)
	syncproto.AgreeChecksums(&hello, true)
	r.add(hello)
	state, sum := datastore{}, stateChecksum{}
	kvs := func(updates ...syncproto.SerializedUpdate) {
		for _, u := range updates {
			state.applySum(u, &sum)
		}
		r.add(syncproto.MsgKVs{KVs: updates})
	}
	checksum := func() {
		msg, _ := sum.message()
		r.add(msg)
	}
	kvs(
		kv("/calico/v1/config/LogSeverityScreen", []byte("Info"), "17", "", 0, syncproto.UpdateTypeNew),
		kv("/calico/v1/host/node-1/workload/kubernetes/ns%2fpod-1/endpoint/eth0", []byte(goldenWEP), "123456", "123450", 0, syncproto.UpdateTypeNew),
		kv("/calico/v1/config/Binary", []byte{0x00, 0xff, 0xfe, 0x80, 0x7f}, "11", "", 0, syncproto.UpdateTypeNew),
		kv("/calico/v1/config/Description", []byte("grüße, 世界"), "10", "", 0, syncproto.UpdateTypeNew),
	)
	r.add(syncproto.MsgSyncStatus{SyncStatus: syncproto.InSync})
	checksum()
	kvs(
		kv("/calico/v1/config/LogSeverityScreen", []byte("Debug"), "18", "", 0, syncproto.UpdateTypeUpdated), // a replacement
		kv("/calico/v1/config/Binary", nil, "19", "", 0, syncproto.UpdateTypeDeleted),                        // a deletion
		kv("/calico/v1/config/Absent", nil, "20", "", 0, syncproto.UpdateTypeDeleted),                        // of an absent key: no change
		kv("/calico/v1/config/Description", []byte("grüße, 世界"), "21", "", 0, syncproto.UpdateTypeUpdated),   // the same value: no change
	)
	checksum()
	r.add(syncproto.MsgPing{Timestamp: goldenUTCTime})
	kvs(
		kv("/calico/v1/config/LogSeverityScreen", nil, "22", "", 0, syncproto.UpdateTypeDeleted),
		kv("/calico/v1/host/node-1/workload/kubernetes/ns%2fpod-1/endpoint/eth0", nil, "23", "", 0, syncproto.UpdateTypeDeleted),
		kv("/calico/v1/config/Description", nil, "24", "", 0, syncproto.UpdateTypeDeleted),
	)
	checksum()
	if sum != (stateChecksum{}) {
		return nil, nil, fmt.Errorf("checksum_session: the store should end empty, checksum %+v", sum)
	}
	return r.buf.Bytes(), r.msgs, nil
}
