package main

// A small, self-contained implementation of snappy's framing format and of
// the snappy block format, written from the public format descriptions
// (framing_format.txt and format_description.txt of google/snappy), because
// Go's standard library has no snappy and this module may not have
// dependencies.
//
// Framing: a stream is a sequence of chunks, each a 1-byte type, a 3-byte
// little-endian length and that many bytes. The first chunk is the stream
// identifier (0xff, "sNaPpY"). Data chunks (0x00 compressed, 0x01
// uncompressed) start with the masked CRC-32C of the *uncompressed* data;
// at most 65536 uncompressed bytes per chunk. 0x02-0x7f are reserved
// unskippable (an error), 0x80-0xfe are skipped (0xfe is padding).
//
// Block: a varint of the uncompressed length, then elements: literals and
// copies with 1-, 2- or 4-byte offsets.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	chunkCompressed   = 0x00
	chunkUncompressed = 0x01
	chunkPadding      = 0xfe
	chunkStreamID     = 0xff

	// maxChunkData is the most uncompressed data one chunk may carry.
	maxChunkData = 65536
	// maxCompressedLen bounds an encoded block of maxChunkData bytes
	// (worst case: all literals, 32 + n + n/6 as in the reference).
	maxCompressedLen = 32 + maxChunkData + maxChunkData/6
	// maxDataChunkLen bounds the body of a data chunk (CRC + payload).
	maxDataChunkLen = 4 + maxCompressedLen
)

var streamIdentifier = []byte{0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is the checksum a data chunk carries: CRC-32C, rotated right by
// 15 bits, plus a constant.
func maskedCRC(data []byte) uint32 {
	c := crc32.Checksum(data, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// ---------------------------------------------------------------------------
// Block format.

var (
	errSnappyCorrupt  = errors.New("snappy: corrupt block")
	errSnappyTooLarge = errors.New("snappy: decoded block too large")
)

// decodedLen reads the varint uncompressed length at the start of a block.
func decodedLen(src []byte) (length int, headerLen int, err error) {
	v, n := binary.Uvarint(src)
	if n <= 0 || v > 0xffffffff {
		return 0, 0, errSnappyCorrupt
	}
	return int(v), n, nil
}

// decodeBlock decompresses one snappy block, refusing anything that would
// decode to more than maxLen bytes (before allocating for it).
func decodeBlock(src []byte, maxLen int) ([]byte, error) {
	dLen, s, err := decodedLen(src)
	if err != nil {
		return nil, err
	}
	if dLen > maxLen {
		return nil, errSnappyTooLarge
	}
	dst := make([]byte, 0, dLen)
	for s < len(src) {
		tag := src[s]
		switch tag & 3 {
		case 0: // literal
			n := int(tag >> 2)
			s++
			if n >= 60 {
				extra := n - 59 // 1..4 length bytes follow
				if s+extra > len(src) {
					return nil, errSnappyCorrupt
				}
				n = 0
				for i := 0; i < extra; i++ {
					n |= int(src[s+i]) << (8 * i)
				}
				s += extra
			}
			n++ // stored as length-1
			if n <= 0 || n > len(src)-s || n > dLen-len(dst) {
				return nil, errSnappyCorrupt
			}
			dst = append(dst, src[s:s+n]...)
			s += n
			continue
		case 1: // copy, 1-byte offset: 3 bits of length-4, 11 bits of offset
			if s+2 > len(src) {
				return nil, errSnappyCorrupt
			}
			length := 4 + int(tag>>2)&7
			offset := int(tag>>5)<<8 | int(src[s+1])
			s += 2
			if dst, err = appendCopy(dst, dLen, offset, length); err != nil {
				return nil, err
			}
		case 2: // copy, 2-byte offset
			if s+3 > len(src) {
				return nil, errSnappyCorrupt
			}
			length := 1 + int(tag>>2)
			offset := int(binary.LittleEndian.Uint16(src[s+1:]))
			s += 3
			if dst, err = appendCopy(dst, dLen, offset, length); err != nil {
				return nil, err
			}
		case 3: // copy, 4-byte offset
			if s+5 > len(src) {
				return nil, errSnappyCorrupt
			}
			length := 1 + int(tag>>2)
			offset64 := uint64(binary.LittleEndian.Uint32(src[s+1:]))
			s += 5
			if offset64 > uint64(len(dst)) {
				return nil, errSnappyCorrupt
			}
			if dst, err = appendCopy(dst, dLen, int(offset64), length); err != nil {
				return nil, err
			}
		}
	}
	if len(dst) != dLen {
		return nil, errSnappyCorrupt
	}
	return dst, nil
}

// appendCopy appends length bytes starting offset bytes back; the regions
// may overlap (a run), so copy byte by byte in that case.
func appendCopy(dst []byte, dLen, offset, length int) ([]byte, error) {
	if offset <= 0 || offset > len(dst) || length > dLen-len(dst) {
		return nil, errSnappyCorrupt
	}
	start := len(dst) - offset
	if offset >= length {
		return append(dst, dst[start:start+length]...), nil
	}
	for i := 0; i < length; i++ {
		dst = append(dst, dst[start+i])
	}
	return dst, nil
}

// encodeBlock compresses src (at most maxChunkData bytes) with a greedy
// hash-table matcher: 4-byte hashes, the most recent position per bucket,
// matches extended as far as they go. It emits literals, copy-1 elements
// (length 4..11, offset < 2048) and copy-2 elements; a block never needs
// copy-4 since offsets stay below 65536.
func encodeBlock(src []byte) []byte {
	dst := binary.AppendUvarint(make([]byte, 0, 32+len(src)+len(src)/6), uint64(len(src)))
	if len(src) < 8 {
		return emitLiteral(dst, src)
	}
	const tableBits = 14
	var table [1 << tableBits]int32 // position+1; 0 = empty
	hash := func(u uint32) uint32 { return (u * 0x1e35a7bd) >> (32 - tableBits) }
	load := func(i int) uint32 { return binary.LittleEndian.Uint32(src[i:]) }

	litStart := 0
	i := 0
	limit := len(src) - 4 // last position where a 4-byte load fits
	for i <= limit {
		h := hash(load(i))
		cand := int(table[h]) - 1
		table[h] = int32(i + 1)
		if cand < 0 || i-cand > 65535 || load(cand) != load(i) {
			i++
			continue
		}
		// Match at cand. Extend it.
		length := 4
		for i+length < len(src) && src[cand+length] == src[i+length] {
			length++
		}
		dst = emitLiteral(dst, src[litStart:i])
		dst = emitCopy(dst, i-cand, length)
		// Seed the table with a couple of positions inside the match so
		// that repeats of it are found later.
		end := i + length
		for j := i + 1; j < end && j <= limit; j += 1 + (end-j)/8 {
			table[hash(load(j))] = int32(j + 1)
		}
		i = end
		litStart = i
	}
	return emitLiteral(dst, src[litStart:])
}

func emitLiteral(dst, lit []byte) []byte {
	if len(lit) == 0 {
		return dst
	}
	n := len(lit) - 1
	switch {
	case n < 60:
		dst = append(dst, byte(n<<2))
	case n < 1<<8:
		dst = append(dst, 60<<2, byte(n))
	case n < 1<<16:
		dst = append(dst, 61<<2, byte(n), byte(n>>8))
	case n < 1<<24:
		dst = append(dst, 62<<2, byte(n), byte(n>>8), byte(n>>16))
	default:
		dst = append(dst, 63<<2, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	}
	return append(dst, lit...)
}

func emitCopy(dst []byte, offset, length int) []byte {
	for length > 0 {
		n := length
		if n > 64 {
			n = 64
			// Keep the remainder at 4 or more so it could still use copy-1;
			// copy-2 would take any remainder, but this matches common
			// encoders' output shapes.
			if length-n < 4 {
				n = length - 4
			}
		}
		if n >= 4 && n <= 11 && offset < 2048 {
			dst = append(dst, byte(offset>>8)<<5|byte(n-4)<<2|1, byte(offset))
		} else {
			dst = append(dst, byte(n-1)<<2|2, byte(offset), byte(offset>>8))
		}
		length -= n
	}
	return dst
}

// ---------------------------------------------------------------------------
// Framing format: writer.

// snappyWriter buffers up to one chunk of data and emits framed chunks. It
// writes the stream identifier before its first chunk (nothing at all if it
// never has data to write). With plain set it only emits uncompressed
// (0x01) chunks.
type snappyWriter struct {
	w         io.Writer
	plain     bool
	buf       []byte
	wroteID   bool
	err       error
	chunkBuf  []byte
	NumChunks int // data chunks written (for tests and stats)
}

func newSnappyWriter(w io.Writer, plain bool) *snappyWriter {
	return &snappyWriter{w: w, plain: plain, buf: make([]byte, 0, maxChunkData)}
}

func (s *snappyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	total := len(p)
	for len(p) > 0 {
		room := maxChunkData - len(s.buf)
		n := len(p)
		if n > room {
			n = room
		}
		s.buf = append(s.buf, p[:n]...)
		p = p[n:]
		if len(s.buf) == maxChunkData {
			if err := s.writeChunk(s.buf); err != nil {
				return total - len(p), err
			}
			s.buf = s.buf[:0]
		}
	}
	return total, nil
}

// Flush writes any buffered data as a chunk.
func (s *snappyWriter) Flush() error {
	if s.err != nil {
		return s.err
	}
	if len(s.buf) == 0 {
		return nil
	}
	err := s.writeChunk(s.buf)
	s.buf = s.buf[:0]
	return err
}

func (s *snappyWriter) writeChunk(data []byte) error {
	out := s.chunkBuf[:0]
	if !s.wroteID {
		out = append(out, streamIdentifier...)
	}
	crc := maskedCRC(data)
	chunkType := byte(chunkUncompressed)
	payload := data
	if !s.plain {
		enc := encodeBlock(data)
		if len(enc) < len(data)-len(data)/8 {
			chunkType = chunkCompressed
			payload = enc
		}
	}
	n := 4 + len(payload)
	out = append(out, chunkType, byte(n), byte(n>>8), byte(n>>16))
	out = binary.LittleEndian.AppendUint32(out, crc)
	out = append(out, payload...)
	s.chunkBuf = out
	if _, err := s.w.Write(out); err != nil {
		s.err = err
		return err
	}
	s.wroteID = true
	s.NumChunks++
	return nil
}

// ---------------------------------------------------------------------------
// Framing format: reader.

// snappyReader decodes a framed stream. It reads exactly one chunk at a
// time from the underlying reader (never past the chunk it needs), which
// is what lets a decoder be restarted right behind it.
type snappyReader struct {
	r       io.Reader
	sawID   bool
	out     []byte // decoded, not yet returned
	hdr     [4]byte
	body    []byte
	err     error
	Skipped int // skippable chunks seen (for tests)
}

func newSnappyReader(r io.Reader) *snappyReader { return &snappyReader{r: r} }

func (s *snappyReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if err := s.readChunk(); err != nil {
			s.err = err
			return 0, err
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// ReadByte makes snappyReader an io.ByteReader, so that encoding/gob uses it
// as is instead of wrapping it in a bufio.Reader: gob then reads exactly the
// bytes of each message, and Buffered tells what is left after a restart.
func (s *snappyReader) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// Buffered is the number of decoded bytes not yet read.
func (s *snappyReader) Buffered() int { return len(s.out) }

func (s *snappyReader) readChunk() error {
	if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
		if err == io.EOF {
			return io.EOF // clean end at a chunk boundary (or an empty stream)
		}
		return fmt.Errorf("snappy: truncated chunk header: %w", io.ErrUnexpectedEOF)
	}
	chunkType := s.hdr[0]
	n := int(s.hdr[1]) | int(s.hdr[2])<<8 | int(s.hdr[3])<<16
	if !s.sawID && chunkType != chunkStreamID {
		return fmt.Errorf("snappy: stream does not start with the stream identifier (chunk type 0x%02x)", chunkType)
	}
	switch {
	case chunkType == chunkStreamID:
		if n != len(streamIdentifier)-4 {
			return fmt.Errorf("snappy: stream identifier chunk of length %d", n)
		}
		if err := s.readBody(n); err != nil {
			return err
		}
		if string(s.body) != string(streamIdentifier[4:]) {
			return errors.New("snappy: bad stream identifier")
		}
		s.sawID = true
		return nil
	case chunkType == chunkCompressed || chunkType == chunkUncompressed:
		if n < 4 {
			return fmt.Errorf("snappy: data chunk of length %d", n)
		}
		if n > maxDataChunkLen || (chunkType == chunkUncompressed && n > 4+maxChunkData) {
			return fmt.Errorf("snappy: data chunk of length %d exceeds the limit", n)
		}
		if err := s.readBody(n); err != nil {
			return err
		}
		want := binary.LittleEndian.Uint32(s.body[:4])
		data := s.body[4:]
		if chunkType == chunkCompressed {
			var err error
			data, err = decodeBlock(data, maxChunkData)
			if err != nil {
				return err
			}
		} else {
			data = append([]byte(nil), data...)
		}
		if got := maskedCRC(data); got != want {
			return fmt.Errorf("snappy: checksum mismatch (chunk says %08x, data has %08x)", want, got)
		}
		s.out = data
		return nil
	case chunkType <= 0x7f:
		return fmt.Errorf("snappy: reserved unskippable chunk type 0x%02x", chunkType)
	default: // 0x80-0xfe: skippable, including padding
		if _, err := io.CopyN(io.Discard, s.r, int64(n)); err != nil {
			return fmt.Errorf("snappy: truncated skippable chunk: %w", io.ErrUnexpectedEOF)
		}
		s.Skipped++
		return nil
	}
}

func (s *snappyReader) readBody(n int) error {
	if cap(s.body) < n {
		s.body = make([]byte, n)
	}
	s.body = s.body[:n]
	if _, err := io.ReadFull(s.r, s.body); err != nil {
		return fmt.Errorf("snappy: truncated chunk: %w", io.ErrUnexpectedEOF)
	}
	return nil
}
