package main

// The JSON form of protocol messages used by golden vectors and the decode
// mode, and a small ordered-object helper so that output keeps field order.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"syncproto/interop/go/syncproto"
)

type field struct {
	name  string
	value interface{}
}

// ordered is a JSON object that keeps its fields in order.
type ordered []field

func (o ordered) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(f.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.name, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// get returns a field's value (nil if absent).
func (o ordered) get(name string) interface{} {
	for _, f := range o {
		if f.name == name {
			return f.value
		}
	}
	return nil
}

// without returns a copy without the named field.
func (o ordered) without(name string) ordered {
	out := make(ordered, 0, len(o))
	for _, f := range o {
		if f.name != name {
			out = append(out, f)
		}
	}
	return out
}

// timeHex is the hex of time.Time.MarshalBinary (the bytes gob sends).
func timeHex(t time.Time) string {
	b, err := t.MarshalBinary()
	if err != nil {
		return "error: " + err.Error()
	}
	return hex.EncodeToString(b)
}

// messageJSON renders any protocol message in the golden JSON form.
func messageJSON(msg interface{}) (ordered, error) { return messageJSONWith(msg, timeHex) }

// instantHex renders only the instant of a time (as UTC), for comparisons
// that must not depend on the zone: Go's UnmarshalBinary (go1.19 at least)
// reads the version-2 offset-seconds byte as unsigned, so a time whose zone
// is a negative non-whole number of minutes does not survive a gob round
// trip with its zone intact (the instant does).
func instantHex(t time.Time) string { return timeHex(t.UTC()) }

// messageJSONWith is messageJSON with a chosen rendering of timestamps.
func messageJSONWith(msg interface{}, th func(time.Time) string) (ordered, error) {
	if fs, ok := syncproto.LayoutFields(msg); ok {
		o := make(ordered, 0, len(fs))
		for _, f := range fs {
			o = append(o, field{f.Name, f.Value})
		}
		return o, nil
	}
	switch m := msg.(type) {
	case syncproto.MsgKVs:
		kvs := make([]ordered, 0, len(m.KVs))
		for i := range m.KVs {
			kvs = append(kvs, kvJSON(&m.KVs[i]))
		}
		return ordered{{"type", "KVs"}, {"KVs", kvs}}, nil
	case syncproto.MsgSyncStatus:
		return ordered{{"type", "SyncStatus"}, {"SyncStatus", uint8(m.SyncStatus)}}, nil
	case syncproto.MsgPing:
		return ordered{{"type", "Ping"}, {"Timestamp", th(m.Timestamp)}}, nil
	case syncproto.MsgPong:
		return ordered{
			{"type", "Pong"},
			{"PingTimestamp", th(m.PingTimestamp)},
			{"PongTimestamp", th(m.PongTimestamp)},
		}, nil
	}
	return nil, fmt.Errorf("no JSON form for message of type %T", msg)
}

func kvJSON(u *syncproto.SerializedUpdate) ordered {
	var value interface{}
	if u.Value != nil {
		value = base64.StdEncoding.EncodeToString(u.Value)
	}
	o := ordered{
		{"Key", u.Key},
		{"Value", value},
		{"Revision", typedRevision(u.Revision)},
	}
	if syncproto.LayoutName != "v325" {
		o = append(o, field{"V3ResourceVersion", syncproto.V3ResourceVersion(u)})
	}
	return append(o, field{"TTL", int64(u.TTL)}, field{"UpdateType", uint8(u.UpdateType)})
}
