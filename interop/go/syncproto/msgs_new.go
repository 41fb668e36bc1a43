//go:build !v325

// The newest upstream field set (DESIGN.md §1, §1b): every message,
// including MsgDecoderRestart, MsgACK and MsgChecksum.

package syncproto

import (
	"encoding/gob"
	"time"
)

// LayoutName names this build's field layout in outputs and file names.
const LayoutName = "new"

// SupportsCompression is true when this layout has the decoder-restart dance.
const SupportsCompression = true

// HasV3ResourceVersion is true when SerializedUpdate has V3ResourceVersion.
const HasV3ResourceVersion = true

// SupportsChecksums is true when this layout has the hellos'
// SupportsChecksum and MsgChecksum.
const SupportsChecksums = true

// ChecksumName is the name MsgChecksum is registered under. It is inferred
// from upstream's naming rule (namePrefix + the Go type name), like every
// other message's; it lives in this one constant so that a correction is a
// one-line change.
const ChecksumName = namePrefix + "MsgChecksum"

type MsgClientHello struct {
	Hostname string
	Info     string
	Version  string

	SyncerType SyncerType

	SupportsDecoderRestart         bool
	SupportedCompressionAlgorithms []CompressionAlgorithm

	SupportsModernPolicyKeys bool

	ClientConnID uint64

	// Appended last, as upstream appends: gob matches fields by name, so
	// older peers ignore it, but the type definition on the wire changes.
	SupportsChecksum bool
}

type MsgServerHello struct {
	Version string

	SyncerType SyncerType

	SupportsNodeResourceUpdates bool

	ServerConnID uint64

	// True only when the client asked and the server will send checksums.
	SupportsChecksum bool
}

type MsgDecoderRestart struct {
	Message              string
	CompressionAlgorithm CompressionAlgorithm
}

type MsgACK struct{}

// MsgChecksum is a server's snapshot checksum: the XOR of the digests of
// its live entries (see the checksum code in package main) and their
// number, describing the state after everything it sent before.
type MsgChecksum struct {
	Checksum uint64
	KVCount  int64
}

type SerializedUpdate struct {
	Key               string
	Value             []byte
	Revision          interface{}
	V3ResourceVersion string
	TTL               time.Duration
	UpdateType        UpdateType
}

func init() {
	gob.RegisterName(namePrefix+"MsgClientHello", MsgClientHello{})
	gob.RegisterName(namePrefix+"MsgDecoderRestart", MsgDecoderRestart{})
	gob.RegisterName(namePrefix+"MsgACK", MsgACK{})
	gob.RegisterName(namePrefix+"MsgServerHello", MsgServerHello{})
	gob.RegisterName(namePrefix+"MsgSyncStatus", MsgSyncStatus{})
	gob.RegisterName(namePrefix+"MsgPing", MsgPing{})
	gob.RegisterName(namePrefix+"MsgPong", MsgPong{})
	gob.RegisterName(namePrefix+"MsgKVs", MsgKVs{})
	gob.RegisterName(ChecksumName, MsgChecksum{})
}

// NewClientHello builds the hello the client mode sends.
func NewClientHello(hostname, info, version string, syncer SyncerType, compress bool, connID uint64) MsgClientHello {
	h := MsgClientHello{
		Hostname:                 hostname,
		Info:                     info,
		Version:                  version,
		SyncerType:               syncer,
		SupportsDecoderRestart:   compress,
		SupportsModernPolicyKeys: true,
		ClientConnID:             connID,
	}
	if compress {
		h.SupportedCompressionAlgorithms = []CompressionAlgorithm{CompressionSnappy}
	}
	return h
}

// FullClientHello is a hello with every field of the layout set (golden vectors).
func FullClientHello() MsgClientHello {
	return MsgClientHello{
		Hostname:                       "node-1.example.com",
		Info:                           "go-peer golden",
		Version:                        "v3.99.0-golden",
		SyncerType:                     "bgp",
		SupportsDecoderRestart:         true,
		SupportedCompressionAlgorithms: []CompressionAlgorithm{CompressionSnappy, "zstd"},
		SupportsModernPolicyKeys:       true,
		ClientConnID:                   0x8123456789abcdef,
		SupportsChecksum:               true,
	}
}

// RequestedSyncer is the syncer type a client asked for ("" in v3.2.5).
func RequestedSyncer(h MsgClientHello) SyncerType { return h.SyncerType }

// ClientWantsSnappy reports whether the client can take the snappy dance.
func ClientWantsSnappy(h MsgClientHello) bool {
	if !h.SupportsDecoderRestart {
		return false
	}
	for _, a := range h.SupportedCompressionAlgorithms {
		if a == CompressionSnappy {
			return true
		}
	}
	return false
}

// LacksModernPolicyKeys reports a client that did not set
// SupportsModernPolicyKeys (upstream Typha refuses it).
func LacksModernPolicyKeys(h MsgClientHello) bool { return !h.SupportsModernPolicyKeys }

// NewServerHello builds the server's answer.
func NewServerHello(version string, syncer SyncerType, connID uint64) MsgServerHello {
	return MsgServerHello{
		Version:                     version,
		SyncerType:                  syncer,
		SupportsNodeResourceUpdates: true,
		ServerConnID:                connID,
	}
}

// ServerSyncer is the syncer type a server echoed ("" in v3.2.5).
func ServerSyncer(h MsgServerHello) SyncerType { return h.SyncerType }

// RequestChecksums sets the client hello's SupportsChecksum.
func RequestChecksums(h *MsgClientHello, on bool) { h.SupportsChecksum = on }

// ClientWantsChecksums reports whether the client asked for checksums.
func ClientWantsChecksums(h MsgClientHello) bool { return h.SupportsChecksum }

// AgreeChecksums sets the server hello's SupportsChecksum.
func AgreeChecksums(h *MsgServerHello, on bool) { h.SupportsChecksum = on }

// ServerSendsChecksums reports whether the server agreed to send checksums.
func ServerSendsChecksums(h MsgServerHello) bool { return h.SupportsChecksum }

// NewChecksum builds a MsgChecksum; ok is false in layouts without it.
func NewChecksum(checksum uint64, kvCount int64) (msg interface{}, ok bool) {
	return MsgChecksum{Checksum: checksum, KVCount: kvCount}, true
}

// AsChecksum unpacks a MsgChecksum.
func AsChecksum(msg interface{}) (checksum uint64, kvCount int64, ok bool) {
	m, ok := msg.(MsgChecksum)
	return m.Checksum, m.KVCount, ok
}

// SetV3ResourceVersion sets the field where the layout has it.
func SetV3ResourceVersion(u *SerializedUpdate, v string) { u.V3ResourceVersion = v }

// V3ResourceVersion reads the field where the layout has it.
func V3ResourceVersion(u *SerializedUpdate) string { return u.V3ResourceVersion }

// NewDecoderRestart builds a MsgDecoderRestart; ok is false in layouts without it.
func NewDecoderRestart(message string, alg CompressionAlgorithm) (msg interface{}, ok bool) {
	return MsgDecoderRestart{Message: message, CompressionAlgorithm: alg}, true
}

// AsDecoderRestart unpacks a MsgDecoderRestart.
func AsDecoderRestart(msg interface{}) (message string, alg CompressionAlgorithm, ok bool) {
	m, ok := msg.(MsgDecoderRestart)
	return m.Message, m.CompressionAlgorithm, ok
}

// NewACK builds a MsgACK; ok is false in layouts without it.
func NewACK() (msg interface{}, ok bool) { return MsgACK{}, true }

// IsACK reports whether msg is a MsgACK.
func IsACK(msg interface{}) bool {
	_, ok := msg.(MsgACK)
	return ok
}

// LayoutFields renders the layout-specific messages as ordered JSON fields
// (type name first); ok is false for other messages.
func LayoutFields(msg interface{}) (fields []Field, ok bool) {
	switch m := msg.(type) {
	case MsgClientHello:
		algs := make([]string, 0, len(m.SupportedCompressionAlgorithms))
		for _, a := range m.SupportedCompressionAlgorithms {
			algs = append(algs, string(a))
		}
		return []Field{
			{"type", "ClientHello"},
			{"Hostname", m.Hostname},
			{"Info", m.Info},
			{"Version", m.Version},
			{"SyncerType", string(m.SyncerType)},
			{"SupportsDecoderRestart", m.SupportsDecoderRestart},
			{"SupportedCompressionAlgorithms", algs},
			{"SupportsModernPolicyKeys", m.SupportsModernPolicyKeys},
			{"ClientConnID", m.ClientConnID},
			{"SupportsChecksum", m.SupportsChecksum},
		}, true
	case MsgServerHello:
		return []Field{
			{"type", "ServerHello"},
			{"Version", m.Version},
			{"SyncerType", string(m.SyncerType)},
			{"SupportsNodeResourceUpdates", m.SupportsNodeResourceUpdates},
			{"ServerConnID", m.ServerConnID},
			{"SupportsChecksum", m.SupportsChecksum},
		}, true
	case MsgDecoderRestart:
		return []Field{
			{"type", "DecoderRestart"},
			{"Message", m.Message},
			{"CompressionAlgorithm", string(m.CompressionAlgorithm)},
		}, true
	case MsgACK:
		return []Field{{"type", "ACK"}}, true
	case MsgChecksum:
		return []Field{
			{"type", "Checksum"},
			{"Checksum", m.Checksum},
			{"KVCount", m.KVCount},
		}, true
	}
	return nil, false
}
