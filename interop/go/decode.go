package main

// Decode mode: decode a captured stream with encoding/gob, following
// DecoderRestart messages (into snappy streams when allowed).

import (
	"bytes"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"syncproto/interop/go/syncproto"
)

func decodeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("go-peer decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stats := fs.Bool("stats", false, "print only timing statistics of the decode loop")
	compressedOK := fs.Bool("compressed-ok", false, "follow a DecoderRestart into a snappy stream (otherwise that is an error)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "go-peer decode: exactly one FILE argument is required")
		return exitUsage
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return failJSON(stdout, err)
	}
	var onMsg func(interface{}) error
	if !*stats {
		onMsg = func(msg interface{}) error {
			o, err := messageJSON(msg)
			if err != nil {
				return err
			}
			printJSON(stdout, o)
			return nil
		}
	}
	start := time.Now()
	res, err := decodeStream(data, *compressedOK, onMsg)
	secs := time.Since(start).Seconds()
	if err != nil {
		return failJSON(stdout, fmt.Errorf("after %d messages: %w", res.messages, err))
	}
	if *stats {
		mb := float64(len(data)) / 1e6
		printJSON(stdout, ordered{
			{"messages", res.messages},
			{"kvs", res.kvs},
			{"bytes", len(data)},
			{"seconds", secs},
			{"mb_per_s", safeDiv(mb, secs)},
			{"kvs_per_s", safeDiv(float64(res.kvs), secs)},
		})
	}
	return exitOK
}

func safeDiv(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

type decodeResult struct {
	messages, kvs, restarts int
}

// decodeStream decodes every message of a captured stream, calling onMsg
// (if not nil) for each. The input is a bytes.Reader, an io.ByteReader, so
// gob reads exactly each message's bytes and the next decoder starts right
// behind a DecoderRestart.
func decodeStream(data []byte, compressedOK bool, onMsg func(interface{}) error) (decodeResult, error) {
	var res decodeResult
	raw := bytes.NewReader(data)
	dec := gob.NewDecoder(raw)
	var snappyR *snappyReader
	for {
		var env syncproto.Envelope
		if err := dec.Decode(&env); err != nil {
			if err == io.EOF {
				return res, nil
			}
			return res, err
		}
		if env.Message == nil {
			return res, errors.New("an Envelope with a nil message")
		}
		res.messages++
		if m, ok := env.Message.(syncproto.MsgKVs); ok {
			res.kvs += len(m.KVs)
		}
		if onMsg != nil {
			if err := onMsg(env.Message); err != nil {
				return res, err
			}
		}
		if _, alg, ok := syncproto.AsDecoderRestart(env.Message); ok {
			if snappyR != nil && snappyR.Buffered() > 0 {
				return res, fmt.Errorf("%d bytes follow a DecoderRestart inside its snappy chunk", snappyR.Buffered())
			}
			res.restarts++
			switch alg {
			case "":
				snappyR = nil
				dec = gob.NewDecoder(raw)
			case syncproto.CompressionSnappy:
				if !compressedOK {
					return res, errors.New("the stream switches to snappy compression; pass --compressed-ok to follow it")
				}
				snappyR = newSnappyReader(raw)
				dec = gob.NewDecoder(snappyR)
			default:
				return res, fmt.Errorf("DecoderRestart to unknown compression %q", alg)
			}
		}
	}
}
