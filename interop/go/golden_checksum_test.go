//go:build !v325

package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"syncproto/interop/go/syncproto"
)

// gobMessages splits a gob stream into its messages (each without its
// length prefix). gob writes an unsigned count in one byte below 128, else
// as the negated number of big-endian bytes that follow.
func gobMessages(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n, used := uint64(b[0]), 1
		if b[0] >= 0x80 {
			k := int(-int8(b[0]))
			n = 0
			for _, c := range b[1 : 1+k] {
				n = n<<8 | uint64(c)
			}
			used += k
		}
		if uint64(len(b)-used) < n {
			t.Fatalf("truncated message of %d bytes", n)
		}
		out = append(out, b[used:used+int(n)])
		b = b[used+int(n):]
	}
	return out
}

// The bytes of MsgChecksum{0x4b60798139549d1d, 1} (the state holding only
// ("ab","c")) as Go's encoder writes them on a fresh stream (so MsgChecksum
// is type 66), piece by piece; tests/golden/gob/README.md quotes them.
var (
	// Envelope's name, as registered.
	checksumNameHex = hex.EncodeToString([]byte(syncproto.ChecksumName))
	// MsgChecksum's type definition: -66, then wireType{StructT:
	// {CommonType{"MsgChecksum", 66}, [{"Checksum", uint}, {"KVCount", int}]}}.
	checksumTypeDefHex = "ff83 03 01 01 0b 4d7367436865636b73756d 01 ff84 00" +
		" 01 02 01 08 436865636b73756d 01 06 00 01 07 4b56436f756e74 01 04 00 00 00"
	// The value: type id 66, its byte count (13), field 1 (Checksum) as an
	// 8-byte uint, field 1+1 (KVCount) 1 as the signed int 2, end of
	// MsgChecksum; then the end of Envelope.
	checksumValueHex = "ff84 0d 01 f8 4b60798139549d1d 01 02 00 00"
	// Envelope's type id 65, field 1 (Message), the name's length (56).
	envelopePrefixHex = "ff82 01 38"
)

func TestChecksumAloneBytes(t *testing.T) {
	// The committed vector (TestGoldenReproducible checks that it is what
	// a fresh process writes): in this process gob's type ids depend on
	// what other tests encoded first.
	bin, err := os.ReadFile(filepath.Join("..", "..", "tests", "golden", "gob", "checksum_alone.new.bin"))
	if err != nil {
		t.Skipf("no committed vector: %v", err)
	}
	msgs := gobMessages(t, bin)
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	// msgs[0] is Envelope's type definition. The first value's message
	// holds MsgChecksum's type definition after the name: gob defines a
	// type first met inside an interface in the middle of the value, and
	// the rest of the value comes as the next message.
	if want := unhex(t, envelopePrefixHex+checksumNameHex+checksumTypeDefHex); !bytes.Equal(msgs[1], want) {
		t.Errorf("first value's message %x\nwant %x", msgs[1], want)
	}
	if want := unhex(t, checksumValueHex); !bytes.Equal(msgs[2], want) {
		t.Errorf("rest of the first value %x\nwant %x", msgs[2], want)
	}
	// With the types known, one message: prefix, name, value.
	standalone := unhex(t, envelopePrefixHex+checksumNameHex+checksumValueHex)
	if !bytes.Equal(msgs[3], standalone) || len(standalone) != 77 {
		t.Errorf("standalone message %x\nwant %x", msgs[3], standalone)
	}
}
