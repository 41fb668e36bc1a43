package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"math/rand"
	"strings"
	"testing"
	"testing/iotest"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The expected values were computed independently (a bitwise CRC-32C in
// Python, then the mask from the framing spec).
func TestMaskedCRC(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32
	}{
		{"123456789", 0xc78ab0e5}, // CRC-32C check value 0xe3069283, masked
		{"hello", 0x191c1fbb},
		{"", 0xa282ead8},
		{"abcdabcdabcd", 0x035f8da8},
	} {
		if got := maskedCRC([]byte(c.in)); got != c.want {
			t.Errorf("maskedCRC(%q) = %08x, want %08x", c.in, got, c.want)
		}
	}
}

func TestDecodeBlockHandVectors(t *testing.T) {
	long100 := bytes.Repeat([]byte("0123456789"), 10)
	long300 := bytes.Repeat([]byte("abc"), 100)
	for _, c := range []struct {
		name, block string
		want        []byte
	}{
		{"empty", "00", []byte{}},
		{"literal+copy1", "0c 0c 61626364 11 04", []byte("abcdabcdabcd")},
		{"overlapping copy2 run", "0b 00 61 26 0100", []byte("aaaaaaaaaaa")},
		{"copy4", "09 08 78797a 17 03000000", []byte("xyzxyzxyz")},
		{"literal, 1-byte length", "64 f0 63" + hex.EncodeToString(long100), long100},
		{"literal, 2-byte length", "ac02 f4 2b01" + hex.EncodeToString(long300), long300},
	} {
		got, err := decodeBlock(unhex(t, c.block), maxChunkData)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}

	// copy-1 with an offset >= 256 (offset bits in the tag): 300 literal
	// bytes, then 5 bytes from 300 back.
	block := append(unhex(t, "b102 f4 2b01"), long300...)
	block = append(block, byte(300>>8)<<5|byte(5-4)<<2|1, byte(300&0xff))
	got, err := decodeBlock(block, maxChunkData)
	if err != nil || !bytes.Equal(got, append(append([]byte{}, long300...), long300[:5]...)) {
		t.Errorf("copy1 with high offset bits: %v %q", err, got)
	}
}

func TestDecodeBlockErrors(t *testing.T) {
	for _, c := range []struct{ name, block string }{
		{"no length", ""},
		{"copy offset 0", "08 0c 61626364 11 00"},
		{"copy before start", "08 0c 61626364 26 0a00"},
		{"shorter than declared", "0d 0c 61626364 11 04"},
		{"longer than declared", "0b 0c 61626364 11 04"},
		{"truncated literal", "05 10 6162"},
		{"truncated copy2", "08 0c 61626364 26 01"},
		{"truncated copy4", "08 0c 61626364 27 010000"},
		{"truncated literal length", "64 f0"},
		{"over the limit", "818008"}, // 131073
	} {
		if got, err := decodeBlock(unhex(t, c.block), maxChunkData); err == nil {
			t.Errorf("%s: decoded %q, want an error", c.name, got)
		}
	}
}

// elementCounts parses a block and counts its element kinds.
func elementCounts(t *testing.T, block []byte) (literals, copy1, copy2, copy4 int) {
	t.Helper()
	_, s, err := decodedLen(block)
	if err != nil {
		t.Fatal(err)
	}
	for s < len(block) {
		tag := block[s]
		switch tag & 3 {
		case 0:
			literals++
			n := int(tag >> 2)
			s++
			if n >= 60 {
				extra := n - 59
				n = 0
				for i := 0; i < extra; i++ {
					n |= int(block[s+i]) << (8 * i)
				}
				s += extra
			}
			s += n + 1
		case 1:
			copy1++
			s += 2
		case 2:
			copy2++
			s += 3
		case 3:
			copy4++
			s += 5
		}
	}
	return
}

func randomData(rng *rand.Rand, n int, compressible bool) []byte {
	b := make([]byte, n)
	if !compressible {
		rng.Read(b)
		return b
	}
	words := []string{"calico", "felix", "typha", "/calico/v1/host/", "workload", `{"state":"active"}`, "10.65.0.", "eth0", " "}
	var buf bytes.Buffer
	for buf.Len() < n {
		if rng.Intn(10) == 0 {
			buf.WriteByte(byte(rng.Intn(256)))
		} else {
			buf.WriteString(words[rng.Intn(len(words))])
		}
	}
	return buf.Bytes()[:n]
}

func TestEncodeBlockRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	sizes := []int{0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 63, 64, 65, 100, 1000, 4096, 65535, 65536}
	for _, n := range sizes {
		for _, compressible := range []bool{false, true} {
			src := randomData(rng, n, compressible)
			enc := encodeBlock(src)
			dec, err := decodeBlock(enc, maxChunkData)
			if err != nil {
				t.Fatalf("n=%d compressible=%v: %v", n, compressible, err)
			}
			if !bytes.Equal(dec, src) {
				t.Fatalf("n=%d compressible=%v: round trip differs", n, compressible)
			}
			if len(enc) > 32+n+n/6 {
				t.Errorf("n=%d: encoded %d bytes, over the worst-case bound", n, len(enc))
			}
		}
	}
	// Runs and long matches: lengths around the 64-byte copy limit.
	for _, n := range []int{4, 5, 11, 12, 63, 64, 65, 66, 67, 68, 127, 128, 129, 1000} {
		src := append([]byte("xy"), bytes.Repeat([]byte{'z'}, n)...)
		src = append(src, src...)
		dec, err := decodeBlock(encodeBlock(src), maxChunkData)
		if err != nil || !bytes.Equal(dec, src) {
			t.Fatalf("run %d: %v", n, err)
		}
	}
	// Compressible data must produce both kinds of copy.
	src := randomData(rng, 65536, true)
	lits, c1, c2, c4 := elementCounts(t, encodeBlock(src))
	if lits == 0 || c1 == 0 || c2 == 0 || c4 != 0 {
		t.Errorf("element counts: literals %d copy1 %d copy2 %d copy4 %d", lits, c1, c2, c4)
	}
}

func TestFramingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, n := range []int{0, 1, 100, 65535, 65536, 65537, 200000} {
		for _, plain := range []bool{false, true} {
			for _, compressible := range []bool{false, true} {
				src := randomData(rng, n, compressible)
				var stream bytes.Buffer
				w := newSnappyWriter(&stream, plain)
				// Uneven writes.
				for rest := src; len(rest) > 0; {
					k := 1 + rng.Intn(30000)
					if k > len(rest) {
						k = len(rest)
					}
					if _, err := w.Write(rest[:k]); err != nil {
						t.Fatal(err)
					}
					rest = rest[k:]
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				if n == 0 && stream.Len() != 0 {
					t.Errorf("empty stream wrote %d bytes", stream.Len())
				}
				if n > 0 && !bytes.HasPrefix(stream.Bytes(), streamIdentifier) {
					t.Errorf("stream does not start with the identifier")
				}
				if want := (n + maxChunkData - 1) / maxChunkData; w.NumChunks != want {
					t.Errorf("n=%d: %d chunks, want %d", n, w.NumChunks, want)
				}
				if plain && bytes.Contains(chunkTypes(t, stream.Bytes()), []byte{chunkCompressed}) {
					t.Errorf("plain writer wrote a compressed chunk")
				}
				if !plain && compressible && n >= 100 && !bytes.Contains(chunkTypes(t, stream.Bytes()), []byte{chunkCompressed}) {
					t.Errorf("n=%d: no compressed chunk for compressible data", n)
				}
				// Read back through a reader that returns one byte at a time.
				got, err := io.ReadAll(newSnappyReader(iotest.OneByteReader(bytes.NewReader(stream.Bytes()))))
				if err != nil {
					t.Fatalf("n=%d plain=%v: %v", n, plain, err)
				}
				if !bytes.Equal(got, src) {
					t.Fatalf("n=%d plain=%v: round trip differs", n, plain)
				}
			}
		}
	}
}

// chunkTypes lists the chunk types of a framed stream.
func chunkTypes(t *testing.T, s []byte) []byte {
	t.Helper()
	var types []byte
	for len(s) > 0 {
		if len(s) < 4 {
			t.Fatal("truncated chunk header")
		}
		n := int(s[1]) | int(s[2])<<8 | int(s[3])<<16
		types = append(types, s[0])
		s = s[4+n:]
	}
	return types
}

func TestFramingHandVector(t *testing.T) {
	stream := unhex(t, ""+
		"ff060000 734e61507059"+ // stream identifier
		"01090000 bb1f1c19 68656c6c6f"+ // uncompressed "hello"
		"80030000 aabbcc"+ // skippable
		"fe020000 0000"+ // padding
		"ff060000 734e61507059"+ // a repeated identifier is allowed
		"000c0000 a88d5f03 0c0c616263641104"+ // compressed "abcdabcdabcd"
		"01040000 d8ea82a2") // empty uncompressed chunk
	r := newSnappyReader(bytes.NewReader(stream))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "helloabcdabcdabcd" {
		t.Errorf("got %q", got)
	}
	if r.Skipped != 2 {
		t.Errorf("skipped %d chunks, want 2", r.Skipped)
	}

	// The writer produces exactly these bytes for "hello" uncompressed.
	var buf bytes.Buffer
	w := newSnappyWriter(&buf, true)
	w.Write([]byte("hello"))
	w.Flush()
	if want := unhex(t, "ff060000734e61507059 01090000 bb1f1c19 68656c6c6f"); !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("writer: got %x, want %x", buf.Bytes(), want)
	}
}

func TestFramingErrors(t *testing.T) {
	id := "ff060000734e61507059"
	for _, c := range []struct{ name, stream string }{
		{"no identifier", "01090000bb1f1c1968656c6c6f"},
		{"bad identifier", "ff060000734e61507058"},
		{"identifier wrong length", "ff050000734e615070"},
		{"bad crc", id + "01090000bb1f1c1a68656c6c6f"},
		{"bad crc, compressed", id + "000c0000a88d5f040c0c616263641104"},
		{"reserved unskippable", id + "02010000aa"},
		{"reserved unskippable 7f", id + "7f000000"},
		{"truncated header", id + "0109"},
		{"truncated body", id + "01090000bb1f1c1968656c"},
		{"truncated skippable", id + "80050000aabb"},
		{"data chunk without crc", id + "01020000aabb"},
		{"corrupt block", id + "00070000a88d5f030c0c61"},
		{"uncompressed over 64 KiB", id + "01050001" + strings.Repeat("00", 4)},
		{"compressed chunk over the bound", id + "00ffff7f"},
	} {
		_, err := io.ReadAll(newSnappyReader(bytes.NewReader(unhex(t, c.stream))))
		if err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	// A clean end at a chunk boundary is io.EOF (ReadAll: nil); an empty
	// stream likewise.
	for _, s := range []string{"", id, id + "01090000bb1f1c1968656c6c6f"} {
		if _, err := io.ReadAll(newSnappyReader(bytes.NewReader(unhex(t, s)))); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// The reader must not consume bytes past the chunk it needs: after reading
// the first stream's data, the rest of the underlying reader is untouched.
func TestReaderStopsAtChunkBoundary(t *testing.T) {
	var stream bytes.Buffer
	w := newSnappyWriter(&stream, false)
	w.Write([]byte("first"))
	w.Flush()
	stream.WriteString("TRAILER")
	raw := bytes.NewReader(stream.Bytes())
	r := newSnappyReader(raw)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "first" {
		t.Fatalf("%q %v", buf, err)
	}
	rest, _ := io.ReadAll(raw)
	if string(rest) != "TRAILER" {
		t.Errorf("left %q", rest)
	}
}
