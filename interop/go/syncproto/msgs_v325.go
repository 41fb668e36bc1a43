//go:build v325

// The v3.2.5 field set (reference/syncproto-v3.2.5-godoc.txt): no syncer
// type, no compression, no MsgDecoderRestart / MsgACK, no V3ResourceVersion,
// no snapshot checksums.

package syncproto

import (
	"encoding/gob"
	"time"
)

// LayoutName names this build's field layout in outputs and file names.
const LayoutName = "v325"

// SupportsCompression is true when this layout has the decoder-restart dance.
const SupportsCompression = false

// HasV3ResourceVersion is true when SerializedUpdate has V3ResourceVersion.
const HasV3ResourceVersion = false

// SupportsChecksums is true when this layout has the hellos'
// SupportsChecksum and MsgChecksum. v3.2.5 has neither: MsgChecksum is not
// registered, so receiving one is a gob decode error, as for a real v3.2.5
// peer.
const SupportsChecksums = false

type MsgClientHello struct {
	Hostname string
	Info     string
	Version  string
}

type MsgServerHello struct {
	Version string
}

type SerializedUpdate struct {
	Key        string
	Value      []byte
	Revision   interface{}
	TTL        time.Duration
	UpdateType UpdateType
}

func init() {
	gob.RegisterName(namePrefix+"MsgClientHello", MsgClientHello{})
	gob.RegisterName(namePrefix+"MsgServerHello", MsgServerHello{})
	gob.RegisterName(namePrefix+"MsgSyncStatus", MsgSyncStatus{})
	gob.RegisterName(namePrefix+"MsgPing", MsgPing{})
	gob.RegisterName(namePrefix+"MsgPong", MsgPong{})
	gob.RegisterName(namePrefix+"MsgKVs", MsgKVs{})
}

// NewClientHello builds the hello the client mode sends; v3.2.5 has only the
// three strings, so syncer, compress and connID are dropped.
func NewClientHello(hostname, info, version string, syncer SyncerType, compress bool, connID uint64) MsgClientHello {
	return MsgClientHello{Hostname: hostname, Info: info, Version: version}
}

// FullClientHello is a hello with every field of the layout set (golden vectors).
func FullClientHello() MsgClientHello {
	return MsgClientHello{
		Hostname: "node-1.example.com",
		Info:     "go-peer golden",
		Version:  "v3.2.5-golden",
	}
}

// RequestedSyncer is the syncer type a client asked for ("" in v3.2.5).
func RequestedSyncer(h MsgClientHello) SyncerType { return "" }

// ClientWantsSnappy reports whether the client can take the snappy dance.
func ClientWantsSnappy(h MsgClientHello) bool { return false }

// LacksModernPolicyKeys reports a client that did not set
// SupportsModernPolicyKeys; v3.2.5 has no such field, so never.
func LacksModernPolicyKeys(h MsgClientHello) bool { return false }

// NewServerHello builds the server's answer.
func NewServerHello(version string, syncer SyncerType, connID uint64) MsgServerHello {
	return MsgServerHello{Version: version}
}

// ServerSyncer is the syncer type a server echoed ("" in v3.2.5).
func ServerSyncer(h MsgServerHello) SyncerType { return "" }

// RequestChecksums sets the client hello's SupportsChecksum (no such field).
func RequestChecksums(h *MsgClientHello, on bool) {}

// ClientWantsChecksums reports whether the client asked for checksums
// (a v3.2.5 client cannot).
func ClientWantsChecksums(h MsgClientHello) bool { return false }

// AgreeChecksums sets the server hello's SupportsChecksum (no such field).
func AgreeChecksums(h *MsgServerHello, on bool) {}

// ServerSendsChecksums reports whether the server agreed to send checksums
// (a v3.2.5 server cannot).
func ServerSendsChecksums(h MsgServerHello) bool { return false }

// NewChecksum builds a MsgChecksum; ok is false in layouts without it.
func NewChecksum(checksum uint64, kvCount int64) (msg interface{}, ok bool) { return nil, false }

// AsChecksum unpacks a MsgChecksum (never one here).
func AsChecksum(msg interface{}) (checksum uint64, kvCount int64, ok bool) { return 0, 0, false }

// SetV3ResourceVersion sets the field where the layout has it (not here).
func SetV3ResourceVersion(u *SerializedUpdate, v string) {}

// V3ResourceVersion reads the field where the layout has it (always "" here).
func V3ResourceVersion(u *SerializedUpdate) string { return "" }

// NewDecoderRestart builds a MsgDecoderRestart; ok is false in layouts without it.
func NewDecoderRestart(message string, alg CompressionAlgorithm) (msg interface{}, ok bool) {
	return nil, false
}

// AsDecoderRestart unpacks a MsgDecoderRestart.
func AsDecoderRestart(msg interface{}) (message string, alg CompressionAlgorithm, ok bool) {
	return "", "", false
}

// NewACK builds a MsgACK; ok is false in layouts without it.
func NewACK() (msg interface{}, ok bool) { return nil, false }

// IsACK reports whether msg is a MsgACK.
func IsACK(msg interface{}) bool { return false }

// LayoutFields renders the layout-specific messages as ordered JSON fields
// (type name first); ok is false for other messages.
func LayoutFields(msg interface{}) (fields []Field, ok bool) {
	switch m := msg.(type) {
	case MsgClientHello:
		return []Field{
			{"type", "ClientHello"},
			{"Hostname", m.Hostname},
			{"Info", m.Info},
			{"Version", m.Version},
		}, true
	case MsgServerHello:
		return []Field{
			{"type", "ServerHello"},
			{"Version", m.Version},
		}, true
	}
	return nil, false
}
