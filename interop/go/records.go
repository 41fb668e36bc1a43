package main

// The JSON-lines record format shared with the Rust tool: snapshot and
// updates files in, state files out.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"syncproto/interop/go/syncproto"
)

// line is one parsed line of a records file: an update or a status change.
type line struct {
	update   *syncproto.SerializedUpdate
	status   *syncproto.SyncStatus
	lineNo   int
	fileName string
}

type rawRecord struct {
	Key               *string         `json:"key"`
	Value             json.RawMessage `json:"value"`
	ValueBase64       *string         `json:"value_base64"`
	Revision          json.RawMessage `json:"revision"`
	TTLNs             *int64          `json:"ttl_ns"`
	Type              *string         `json:"type"`
	V3ResourceVersion *string         `json:"v3_resource_version"`
	Status            *string         `json:"status"`
}

var statusNames = map[string]syncproto.SyncStatus{
	"wait-for-ready": syncproto.WaitForDatastore,
	"resync":         syncproto.ResyncInProgress,
	"in-sync":        syncproto.InSync,
}

func statusName(s syncproto.SyncStatus) string {
	for name, v := range statusNames {
		if v == s {
			return name
		}
	}
	return fmt.Sprintf("unknown(%d)", uint8(s))
}

var updateTypeNames = map[string]syncproto.UpdateType{
	"unknown": syncproto.UpdateTypeUnknown,
	"new":     syncproto.UpdateTypeNew,
	"updated": syncproto.UpdateTypeUpdated,
	"deleted": syncproto.UpdateTypeDeleted,
}

// readRecordsFile parses a records file. allowStatus permits status lines.
func readRecordsFile(path string, allowStatus bool) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRecords(f, path, allowStatus)
}

// lineScanner reads JSON lines (records files and the hub's stdin): lines
// of up to 256 MiB, blank ones skipped.
type lineScanner struct {
	sc   *bufio.Scanner
	n    int    // 1-based line number of text
	text []byte // the current line, trimmed; valid until the next call to next
}

func newLineScanner(r io.Reader) *lineScanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 256*1024*1024)
	return &lineScanner{sc: sc}
}

// next moves to the next non-blank line; false at the end of the input or
// on a read error (see err).
func (ls *lineScanner) next() bool {
	for ls.sc.Scan() {
		ls.n++
		if ls.text = bytes.TrimSpace(ls.sc.Bytes()); len(ls.text) != 0 {
			return true
		}
	}
	return false
}

// err is the read error that ended next, if any.
func (ls *lineScanner) err() error {
	return ls.sc.Err()
}

func readRecords(r io.Reader, name string, allowStatus bool) ([]line, error) {
	var out []line
	ls := newLineScanner(r)
	for ls.next() {
		l, err := parseLine(ls.text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, ls.n, err)
		}
		if l.status != nil && !allowStatus {
			return nil, fmt.Errorf("%s:%d: status lines are not allowed here", name, ls.n)
		}
		l.lineNo, l.fileName = ls.n, name
		out = append(out, l)
	}
	if err := ls.err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

func parseLine(text []byte) (line, error) {
	var rec rawRecord
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return line{}, err
	}
	if dec.More() {
		return line{}, fmt.Errorf("trailing data after the JSON object")
	}
	if rec.Status != nil {
		if rec.Key != nil || rec.Value != nil || rec.ValueBase64 != nil || rec.Revision != nil ||
			rec.TTLNs != nil || rec.Type != nil || rec.V3ResourceVersion != nil {
			return line{}, fmt.Errorf("a status line has only the \"status\" field")
		}
		s, ok := statusNames[*rec.Status]
		if !ok {
			return line{}, fmt.Errorf("unknown status %q (want wait-for-ready, resync or in-sync)", *rec.Status)
		}
		return line{status: &s}, nil
	}
	if rec.Key == nil {
		return line{}, fmt.Errorf("record without \"key\"")
	}
	u := syncproto.SerializedUpdate{Key: *rec.Key, UpdateType: syncproto.UpdateTypeNew}
	if rec.Type != nil {
		t, ok := updateTypeNames[*rec.Type]
		if !ok {
			return line{}, fmt.Errorf("unknown type %q (want new, updated, deleted or unknown)", *rec.Type)
		}
		u.UpdateType = t
	}
	if rec.Value != nil && rec.ValueBase64 != nil {
		return line{}, fmt.Errorf("both \"value\" and \"value_base64\"")
	}
	switch {
	case rec.ValueBase64 != nil:
		v, err := base64.StdEncoding.DecodeString(*rec.ValueBase64)
		if err != nil {
			return line{}, fmt.Errorf("value_base64: %v", err)
		}
		u.Value = v
	case rec.Value != nil && string(rec.Value) != "null":
		var s string
		if err := json.Unmarshal(rec.Value, &s); err != nil {
			return line{}, fmt.Errorf("value must be a string or null: %v", err)
		}
		u.Value = []byte(s)
	}
	if u.UpdateType == syncproto.UpdateTypeDeleted {
		u.Value = nil
	}
	rev, err := parseRevision(rec.Revision)
	if err != nil {
		return line{}, fmt.Errorf("revision: %v", err)
	}
	u.Revision = rev
	if rec.TTLNs != nil {
		u.TTL = time.Duration(*rec.TTLNs)
	}
	if rec.V3ResourceVersion != nil {
		syncproto.SetV3ResourceVersion(&u, *rec.V3ResourceVersion)
	}
	return line{update: &u}, nil
}

// parseRevision maps the JSON forms to Go values: absent/null → nil, a
// string → string, an integer → int64, {"go_type","text"} → that type.
func parseRevision(raw json.RawMessage) (interface{}, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '{':
		var typed struct {
			GoType *string `json:"go_type"`
			Text   *string `json:"text"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&typed); err != nil {
			return nil, err
		}
		if typed.GoType == nil || typed.Text == nil {
			return nil, fmt.Errorf("the object form needs \"go_type\" and \"text\"")
		}
		return parseTypedRevision(*typed.GoType, *typed.Text)
	default:
		i, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("a bare number must be an integer that fits int64 (got %s); use the object form for other types", raw)
		}
		return i, nil
	}
}

// parseTypedRevision parses text as the named Go basic type.
func parseTypedRevision(goType, text string) (interface{}, error) {
	bad := func(err error) (interface{}, error) {
		return nil, fmt.Errorf("%q is not a valid %s: %v", text, goType, err)
	}
	switch goType {
	case "string":
		return text, nil
	case "bool":
		v, err := strconv.ParseBool(text)
		if err != nil {
			return bad(err)
		}
		return v, nil
	case "int", "int8", "int16", "int32", "int64":
		bits := map[string]int{"int": strconv.IntSize, "int8": 8, "int16": 16, "int32": 32, "int64": 64}[goType]
		v, err := strconv.ParseInt(text, 10, bits)
		if err != nil {
			return bad(err)
		}
		switch goType {
		case "int":
			return int(v), nil
		case "int8":
			return int8(v), nil
		case "int16":
			return int16(v), nil
		case "int32":
			return int32(v), nil
		}
		return v, nil
	case "uint", "uint8", "uint16", "uint32", "uint64", "uintptr":
		bits := map[string]int{"uint": strconv.IntSize, "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64, "uintptr": 64}[goType]
		v, err := strconv.ParseUint(text, 10, bits)
		if err != nil {
			return bad(err)
		}
		switch goType {
		case "uint":
			return uint(v), nil
		case "uint8":
			return uint8(v), nil
		case "uint16":
			return uint16(v), nil
		case "uint32":
			return uint32(v), nil
		case "uintptr":
			return uintptr(v), nil
		}
		return v, nil
	case "float32":
		v, err := strconv.ParseFloat(text, 32)
		if err != nil {
			return bad(err)
		}
		return float32(v), nil
	case "float64":
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return bad(err)
		}
		return v, nil
	case "complex64":
		v, err := strconv.ParseComplex(text, 64)
		if err != nil {
			return bad(err)
		}
		return complex64(v), nil
	case "complex128":
		v, err := strconv.ParseComplex(text, 128)
		if err != nil {
			return bad(err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("unsupported go_type %q", goType)
}

// revisionJSON renders a revision in the record format: a string as a JSON
// string, an int64 as a JSON integer, anything else in the object form.
func revisionJSON(rev interface{}) interface{} {
	switch v := rev.(type) {
	case nil:
		return nil
	case string:
		return v
	case int64:
		return v
	}
	return typedRevision(rev)
}

// typedRevision is the {"go_type","text"} form (used by the golden JSON for
// every revision, whatever its type).
func typedRevision(rev interface{}) interface{} {
	if rev == nil {
		return nil
	}
	return ordered{{"go_type", fmt.Sprintf("%T", rev)}, {"text", fmt.Sprintf("%v", rev)}}
}

// datastore is the key → update map both modes keep.
type datastore map[string]syncproto.SerializedUpdate

// apply applies one update. A nil (or empty: gob cannot tell the two apart
// on the wire) value deletes the key.
func (d datastore) apply(u syncproto.SerializedUpdate) {
	if len(u.Value) == 0 {
		delete(d, u.Key)
		return
	}
	d[u.Key] = u
}

func (d datastore) sortedKeys() []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// recordFields renders an update in the record format (without "type").
func recordFields(u *syncproto.SerializedUpdate) ordered {
	o := ordered{{"key", u.Key}}
	switch {
	case u.Value == nil:
		o = append(o, field{"value", nil})
	case utf8.Valid(u.Value):
		o = append(o, field{"value", string(u.Value)})
	default:
		o = append(o, field{"value_base64", base64.StdEncoding.EncodeToString(u.Value)})
	}
	if u.Revision != nil {
		o = append(o, field{"revision", revisionJSON(u.Revision)})
	}
	o = append(o, field{"ttl_ns", int64(u.TTL)})
	if v3 := syncproto.V3ResourceVersion(u); v3 != "" {
		o = append(o, field{"v3_resource_version", v3})
	}
	return o
}

// writeState writes the datastore as JSON lines sorted by key.
func writeState(path string, d datastore) error {
	var buf bytes.Buffer
	for _, k := range d.sortedKeys() {
		u := d[k]
		b, err := json.Marshal(recordFields(&u))
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// sortKVs sorts updates by key (byte order), as snapshots are sent.
func sortKVs(kvs []syncproto.SerializedUpdate) {
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
}
