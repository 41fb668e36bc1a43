package main

// Client mode: hello, then follow the server's stream until it closes the
// connection, answering pings and restarting the decoder when told to.

import (
	"encoding/base64"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"syncproto/interop/go/syncproto"
)

type clientConfig struct {
	connect       string
	syncer        string
	compress      bool
	stateOut      string
	hostname      string
	pongTimestamp bool
	readTimeout   time.Duration
	dialTimeout   time.Duration
	reportKey     string
	writeBackRV   bool
	checksums     bool      // ask for snapshot checksums and check them
	requireSums   bool      // fail unless one verified and none mismatched
	events        io.Writer // --report-key lines go here (nil: nowhere)
}

const (
	clientInfo    = "go-peer"
	clientVersion = "go-peer"
	clientConnID  = 7
)

func clientMain(args []string, stdout, stderr io.Writer) int {
	var cfg clientConfig
	fs := flag.NewFlagSet("go-peer client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.connect, "connect", "", "server address host:port (required)")
	fs.StringVar(&cfg.syncer, "syncer", "felix", "syncer type to request (new layout)")
	fs.BoolVar(&cfg.compress, "compress", false, "advertise SupportsDecoderRestart and snappy (new layout; ignored by v325)")
	fs.StringVar(&cfg.stateOut, "state-out", "", "write the final datastore here (JSON lines, sorted by key)")
	fs.StringVar(&cfg.hostname, "hostname", "go-client", "Hostname in the ClientHello")
	fs.BoolVar(&cfg.pongTimestamp, "pong-timestamp", false, "set PongTimestamp to the current time (upstream leaves it zero)")
	fs.DurationVar(&cfg.readTimeout, "read-timeout", 30*time.Second, "fail if the server sends nothing for this long")
	fs.DurationVar(&cfg.dialTimeout, "dial-timeout", 10*time.Second, "connect timeout")
	fs.StringVar(&cfg.reportKey, "report-key", "", "print an event line whenever an update for this key arrives")
	fs.BoolVar(&cfg.writeBackRV, "write-back-resource-versions", false, "in --state-out, write V3ResourceVersion back into /calico/resources/v3/ values, as Felix does (new layout)")
	fs.BoolVar(&cfg.checksums, "checksums", false, "ask for snapshot checksums (SupportsChecksum) and check each against the state received (new layout)")
	fs.BoolVar(&cfg.requireSums, "require-checksums", false, "fail unless at least one checksum verified and none mismatched (implies --checksums)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg.checksums = cfg.checksums || cfg.requireSums
	if fs.NArg() != 0 || cfg.connect == "" {
		fmt.Fprintln(stderr, "go-peer client: --connect ADDR is required and no positional arguments are taken")
		return exitUsage
	}
	cfg.events = stdout
	summary, state, err := runClient(cfg)
	if err != nil && summary != nil {
		// The stream ended cleanly but a check of the whole run failed:
		// the summary, marked failed.
		o := ordered{{"ok", false}, {"layout", syncproto.LayoutName}, {"error", err.Error()}}
		printJSON(stdout, append(o, summary.without("ok").without("layout")...))
		return exitFail
	}
	if err != nil {
		return failJSON(stdout, err)
	}
	if cfg.stateOut != "" {
		if err := writeState(cfg.stateOut, state); err != nil {
			return failJSON(stdout, err)
		}
	}
	printJSON(stdout, summary)
	return exitOK
}

// runClient follows one connection to EOF and returns the summary and the
// state to write (with --write-back-resource-versions applied). An error
// with a summary is a failed --require-checksums: the stream itself was
// fine.
func runClient(cfg clientConfig) (ordered, datastore, error) {
	conn, err := net.DialTimeout("tcp", cfg.connect, cfg.dialTimeout)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()

	enc := gob.NewEncoder(conn)
	send := func(msg interface{}) error {
		if err := conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		if err := enc.Encode(&syncproto.Envelope{Message: msg}); err != nil {
			return fmt.Errorf("sending %T: %w", msg, err)
		}
		return nil
	}
	wantSyncer := syncproto.SyncerType(cfg.syncer)
	if wantSyncer == "" {
		wantSyncer = syncproto.SyncerTypeFelix
	}
	compress := cfg.compress && syncproto.SupportsCompression
	hello := syncproto.NewClientHello(cfg.hostname, clientInfo, clientVersion, syncproto.SyncerType(cfg.syncer), compress, clientConnID)
	// A v3.2.5 hello cannot ask; --require-checksums then fails at the end.
	askSums := cfg.checksums && syncproto.SupportsChecksums
	syncproto.RequestChecksums(&hello, askSums)
	if err := send(hello); err != nil {
		return nil, nil, err
	}

	// Each decoder gets its own reader over the raw connection. gob wraps a
	// net.Conn in a bufio.Reader, which may read ahead, but the server sends
	// nothing after a DecoderRestart until our ACK, so there is nothing to
	// lose when the decoder is replaced.
	dec := gob.NewDecoder(conn)
	var snappyR *snappyReader
	read := func() (interface{}, error) {
		if err := conn.SetReadDeadline(time.Now().Add(cfg.readTimeout)); err != nil {
			return nil, err
		}
		var env syncproto.Envelope
		if err := dec.Decode(&env); err != nil {
			return nil, err
		}
		if env.Message == nil {
			return nil, errors.New("server sent an Envelope with a nil message")
		}
		return env.Message, nil
	}

	first, err := read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("server closed the connection before its ServerHello")
		}
		return nil, nil, fmt.Errorf("reading the ServerHello: %w", err)
	}
	serverHello, ok := first.(syncproto.MsgServerHello)
	if !ok {
		return nil, nil, fmt.Errorf("first server message is %s, want ServerHello", describe(first))
	}
	if syncproto.LayoutName != "v325" {
		got := syncproto.ServerSyncer(serverHello)
		if got == "" {
			got = syncproto.SyncerTypeFelix
		}
		if got != wantSyncer {
			return nil, nil, fmt.Errorf("server answered syncer type %q, we asked for %q", got, wantSyncer)
		}
	}

	// The server echoes SupportsChecksum only for a client that asked.
	sumsAgreed := syncproto.ServerSendsChecksums(serverHello)
	if sumsAgreed && !askSums {
		return nil, nil, errors.New("server agreed to send checksums, which the client did not ask for")
	}

	state := datastore{}
	sums := newChecksumCheck()
	kvs, pings, restarts, pingsReceived, pongsSent := 0, 0, 0, 0, 0
	statuses := []string{}
	for {
		msg, err := read()
		if err != nil {
			if err == io.EOF {
				break // clean end between messages
			}
			return nil, nil, fmt.Errorf("reading from the server: %w", err)
		}
		switch m := msg.(type) {
		case syncproto.MsgKVs:
			for _, u := range m.KVs {
				if cfg.checksums {
					// The checksum covers the values as they arrived
					// (before any resource-version write-back).
					state.applySum(u, &sums.local)
				} else {
					state.apply(u)
				}
				if cfg.reportKey != "" && u.Key == cfg.reportKey && cfg.events != nil {
					reportKey(cfg.events, &u)
				}
			}
			kvs += len(m.KVs)
		case syncproto.MsgSyncStatus:
			statuses = append(statuses, statusName(m.SyncStatus))
		case syncproto.MsgPing:
			pingsReceived++
			pong := syncproto.MsgPong{PingTimestamp: m.Timestamp}
			if cfg.pongTimestamp {
				pong.PongTimestamp = time.Now()
			}
			if err := send(pong); err != nil {
				return nil, nil, err
			}
			pongsSent++
			pings++
		case syncproto.MsgServerHello:
			return nil, nil, errors.New("unexpected second ServerHello")
		default:
			if checksum, count, ok := syncproto.AsChecksum(m); ok {
				// gob decodes it whatever the hello said (the type is
				// registered), so the client must check it was asked for.
				switch {
				case !askSums:
					return nil, nil, errors.New("server sent a checksum without being asked")
				case !sumsAgreed:
					return nil, nil, errors.New("server sent a checksum after its ServerHello declined them")
				}
				// Everything the server sent before it has been applied.
				sums.compare(stateChecksum{Checksum: checksum, KVCount: count})
				continue
			}
			text, alg, ok := syncproto.AsDecoderRestart(m)
			if !ok {
				return nil, nil, fmt.Errorf("unexpected server message %s", describe(m))
			}
			if !compress {
				return nil, nil, fmt.Errorf("server sent DecoderRestart(%q) but we did not advertise SupportsDecoderRestart", text)
			}
			if snappyR != nil && snappyR.Buffered() > 0 {
				return nil, nil, fmt.Errorf("%d bytes follow the DecoderRestart inside its snappy chunk", snappyR.Buffered())
			}
			switch alg {
			case syncproto.CompressionSnappy:
				snappyR = newSnappyReader(conn)
				dec = gob.NewDecoder(snappyR)
			case "":
				snappyR = nil
				dec = gob.NewDecoder(conn)
			default:
				return nil, nil, fmt.Errorf("server asked for unknown compression %q", alg)
			}
			ack, _ := syncproto.NewACK()
			if err := send(ack); err != nil {
				return nil, nil, err
			}
			restarts++
		}
	}
	if cfg.writeBackRV {
		writeBackResourceVersions(state)
	}
	shJSON, _ := messageJSON(serverHello)
	summary := ordered{
		{"ok", true},
		{"layout", syncproto.LayoutName},
		{"server_hello", shJSON.without("type")},
		{"kvs_received", kvs},
		{"statuses", statuses},
		{"pings_answered", pings},
		{"restarts", restarts},
		{"pings_received", pingsReceived},
		{"pongs_sent", pongsSent},
	}
	if !cfg.checksums {
		return summary, state, nil
	}
	summary = append(summary, sums.fields()...)
	if cfg.requireSums {
		if err := sums.required(); err != nil {
			return summary, state, err
		}
	}
	return summary, state, nil
}

// reportKey prints {"event":"key","key":...,"value":<text or null>} (the
// value as "value_base64" when it is not UTF-8), at once.
func reportKey(w io.Writer, u *syncproto.SerializedUpdate) {
	o := ordered{{"event", "key"}, {"key", u.Key}}
	switch {
	case len(u.Value) == 0:
		o = append(o, field{"value", nil})
	case utf8.Valid(u.Value):
		o = append(o, field{"value", string(u.Value)})
	default:
		o = append(o, field{"value_base64", base64.StdEncoding.EncodeToString(u.Value)})
	}
	printJSON(w, o)
	if f, ok := w.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
}
