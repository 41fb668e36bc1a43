// Package syncproto mirrors the message structs of Calico's Typha sync
// protocol for the Go reference peer. The package is deliberately named
// "syncproto", like upstream's: gob writes the Go name of unnamed composite
// types (e.g. "[]syncproto.SerializedUpdate") into its type definitions, so
// a package of a different name would produce different bytes on the wire.
//
// Two field layouts exist, chosen at build time: the newest upstream field
// set (default) and the v3.2.5 one (build tag v325). Everything that differs
// between them lives in msgs_new.go / msgs_v325.go behind small helpers.
package syncproto

import "time"

// Envelope wraps every message on the wire.
type Envelope struct {
	Message interface{}
}

// SyncStatus mirrors libcalico-go's api.SyncStatus (a uint8).
type SyncStatus uint8

const (
	WaitForDatastore SyncStatus = 0
	ResyncInProgress SyncStatus = 1
	InSync           SyncStatus = 2
)

// UpdateType mirrors libcalico-go's api.UpdateType (a uint8).
type UpdateType uint8

const (
	UpdateTypeUnknown UpdateType = 0
	UpdateTypeNew     UpdateType = 1
	UpdateTypeUpdated UpdateType = 2
	UpdateTypeDeleted UpdateType = 3
)

// SyncerType is the kind of syncer a client asks for ("" means felix).
type SyncerType string

const SyncerTypeFelix SyncerType = "felix"

// CompressionAlgorithm names a stream compression.
type CompressionAlgorithm string

const CompressionSnappy CompressionAlgorithm = "snappy"

// Registered names: the pre-monorepo import path, kept on purpose upstream.
const namePrefix = "github.com/projectcalico/typha/pkg/syncproto."

type MsgSyncStatus struct {
	SyncStatus SyncStatus
}

type MsgPing struct {
	Timestamp time.Time
}

type MsgPong struct {
	PingTimestamp time.Time
	PongTimestamp time.Time
}

type MsgKVs struct {
	KVs []SerializedUpdate
}

// Field is one named value of an ordered JSON object.
type Field struct {
	Name  string
	Value interface{}
}
