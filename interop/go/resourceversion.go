package main

// Upstream Typha (syncproto.SerializeUpdate) moves a v3 resource's
// metadata.resourceVersion out of the serialized value into
// SerializedUpdate.V3ResourceVersion, so that its dedupe comparison
// (WouldBeNoOp) ignores it; Felix (SerializedUpdate.ToUpdate) puts it back
// when it parses the value. These functions do the same on the JSON text,
// keeping the order and exact bytes of every other member.

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"

	"syncproto/interop/go/syncproto"
)

// v3ResourcePrefix starts the keys of Calico v3 resources.
const v3ResourcePrefix = "/calico/resources/v3/"

// moveResourceVersion takes metadata.resourceVersion (a string) out of a v3
// resource's JSON object value. Keys elsewhere, values that are not a JSON
// object, and objects without a string metadata.resourceVersion are
// returned untouched (moved false).
func moveResourceVersion(key string, value []byte) (newValue []byte, version string, moved bool) {
	if !strings.HasPrefix(key, v3ResourcePrefix) {
		return value, "", false
	}
	top, ok := parseJSONObject(value)
	if !ok {
		return value, "", false
	}
	mi := lastMember(top, "metadata")
	if mi < 0 {
		return value, "", false
	}
	meta, ok := parseJSONObject(top[mi].value)
	if !ok {
		return value, "", false
	}
	ri := lastMember(meta, "resourceVersion")
	if ri < 0 || meta[ri].value[0] != '"' {
		return value, "", false
	}
	if err := json.Unmarshal(meta[ri].value, &version); err != nil {
		return value, "", false
	}
	top[mi].value = emitJSONObject(withoutMember(meta, "resourceVersion"))
	return emitJSONObject(top), version, true
}

// writeBackResourceVersion sets metadata.resourceVersion of a v3 resource's
// JSON object value to version, in place if the member exists, else
// appended to metadata (or, without metadata, as a new last member
// "metadata":{"resourceVersion":...}). An empty version removes the member.
// Keys elsewhere, values that are not a JSON object, and a metadata that is
// not an object are returned untouched, as is a value that would not change.
func writeBackResourceVersion(key string, value []byte, version string) []byte {
	if !strings.HasPrefix(key, v3ResourcePrefix) {
		return value
	}
	top, ok := parseJSONObject(value)
	if !ok {
		return value
	}
	rv := json.RawMessage(encodeJSONString(version))
	mi := lastMember(top, "metadata")
	if mi < 0 {
		if version == "" {
			return value
		}
		meta := emitJSONObject([]jsonMember{{"resourceVersion", rv}})
		return emitJSONObject(append(top, jsonMember{"metadata", meta}))
	}
	meta, ok := parseJSONObject(top[mi].value)
	if !ok {
		return value
	}
	ri := lastMember(meta, "resourceVersion")
	switch {
	case version == "" && ri < 0:
		return value
	case version == "":
		meta = withoutMember(meta, "resourceVersion")
	case ri < 0:
		meta = append(meta, jsonMember{"resourceVersion", rv})
	default:
		// Keep the (last) member's position; drop any duplicates.
		var out []jsonMember
		for i, m := range meta {
			switch {
			case i == ri:
				out = append(out, jsonMember{m.key, rv})
			case m.key != "resourceVersion":
				out = append(out, m)
			}
		}
		meta = out
	}
	top[mi].value = emitJSONObject(meta)
	return emitJSONObject(top)
}

// moveResourceVersions applies moveResourceVersion to an update in place
// (the value, and V3ResourceVersion when something moved). The v3.2.5
// layout has no V3ResourceVersion, and upstream v3.2.5 moved nothing, so
// there it does nothing.
func moveResourceVersions(u *syncproto.SerializedUpdate) {
	if !syncproto.HasV3ResourceVersion || len(u.Value) == 0 {
		return
	}
	if v, version, moved := moveResourceVersion(u.Key, u.Value); moved {
		u.Value = v
		syncproto.SetV3ResourceVersion(u, version)
	}
}

// writeBackResourceVersions is Felix's side: every v3 resource's value gets
// its V3ResourceVersion written back (nothing in the v3.2.5 layout).
func writeBackResourceVersions(d datastore) {
	if !syncproto.HasV3ResourceVersion {
		return
	}
	for k, u := range d {
		if strings.HasPrefix(k, v3ResourcePrefix) && len(u.Value) > 0 {
			u.Value = writeBackResourceVersion(k, u.Value, syncproto.V3ResourceVersion(&u))
			d[k] = u
		}
	}
}

// jsonMember is one member of a JSON object: its (decoded) name and the
// exact bytes of its value.
type jsonMember struct {
	key   string
	value json.RawMessage
}

// parseJSONObject splits b, which must be exactly one JSON object (with
// optional surrounding whitespace), into its members in order.
func parseJSONObject(b []byte) ([]jsonMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	members := []jsonMember{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, ok := tok.(string)
		if !ok {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		members = append(members, jsonMember{key, raw})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data
	}
	return members, true
}

// lastMember is the index of the last member named key (the one
// encoding/json would use), or -1.
func lastMember(members []jsonMember, key string) int {
	for i := len(members) - 1; i >= 0; i-- {
		if members[i].key == key {
			return i
		}
	}
	return -1
}

func withoutMember(members []jsonMember, key string) []jsonMember {
	out := make([]jsonMember, 0, len(members))
	for _, m := range members {
		if m.key != key {
			out = append(out, m)
		}
	}
	return out
}

// emitJSONObject writes members compactly: {"k":<raw>,...}.
func emitJSONObject(members []jsonMember) []byte {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(encodeJSONString(m.key))
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// encodeJSONString is s as a JSON string, without HTML escaping.
func encodeJSONString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}
