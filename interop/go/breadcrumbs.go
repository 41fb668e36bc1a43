package main

// The hub's store and its chain of breadcrumbs, after upstream Typha's
// snapcache: pending updates are published in breadcrumbs of at most
// maxBatch updates, each with a sequence number, a timestamp, its deltas,
// the sync status and (read-only) the store as of that breadcrumb.
// Connections take the current breadcrumb's store as their snapshot, then
// follow the chain sending deltas.

import (
	"bytes"
	"context"
	"sync"
	"time"

	"syncproto/interop/go/syncproto"
)

type breadcrumb struct {
	seq       uint64
	timestamp time.Time
	deltas    []syncproto.SerializedUpdate
	status    syncproto.SyncStatus
	// sum is the store's checksum as of this breadcrumb (after its
	// deltas): what a MsgChecksum sent after it describes.
	sum stateChecksum

	// kvs is the store as of this breadcrumb, ascending by key. It is
	// built on first use, while this breadcrumb is the current one (the
	// store does not change without a new breadcrumb), under crumbCache.mu.
	kvs      []syncproto.SerializedUpdate
	kvsBuilt bool

	next  *breadcrumb   // set before ready is closed
	ready chan struct{} // closed once next is set
}

func newBreadcrumb(seq uint64, ts time.Time, status syncproto.SyncStatus) *breadcrumb {
	return &breadcrumb{seq: seq, timestamp: ts, status: status, ready: make(chan struct{})}
}

// nextCrumb waits for the breadcrumb after b (upstream's Breadcrumb.Next).
func (b *breadcrumb) nextCrumb(ctx context.Context) (*breadcrumb, error) {
	select {
	case <-b.ready:
		return b.next, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// crumbCache is the store, the pending input and the chain's head. Only the
// stdin goroutine adds and flushes; connections read through latest and
// snapshot.
type crumbCache struct {
	maxBatch int
	moveRV   bool
	now      func() time.Time // breadcrumb timestamps (tests use a fake clock)

	// Pending input, owned by the stdin goroutine. status is the wanted
	// status (upstream's pendingStatus): it stays set after a flush.
	pending []syncproto.SerializedUpdate
	status  syncproto.SyncStatus

	mu    sync.Mutex
	store datastore
	// sum is the store's checksum, kept in step with every change to
	// store (never recomputed by scanning it).
	sum     stateChecksum
	current *breadcrumb
}

func newCrumbCache(maxBatch int, moveRV bool, now func() time.Time) *crumbCache {
	if now == nil {
		now = time.Now
	}
	return &crumbCache{
		maxBatch: maxBatch,
		moveRV:   moveRV,
		now:      now,
		status:   syncproto.WaitForDatastore,
		store:    datastore{},
		current:  newBreadcrumb(0, now(), syncproto.WaitForDatastore),
	}
}

// add queues an update for the next flush.
func (c *crumbCache) add(u syncproto.SerializedUpdate) { c.pending = append(c.pending, u) }

// setStatus sets the status the next flush publishes (the last one wins).
func (c *crumbCache) setStatus(s syncproto.SyncStatus) { c.status = s }

// flush publishes the pending updates in breadcrumbs of at most maxBatch
// updates (upstream's publishBreadcrumbs); the status goes with the last
// one. A breadcrumb that would carry no delta and no status change is not
// published. The new breadcrumbs become visible to followers together,
// once all are linked. It returns the breadcrumbs published.
func (c *crumbCache) flush() []*breadcrumb {
	c.mu.Lock()
	defer c.mu.Unlock()
	var published []*breadcrumb
	last := c.current
	for first := true; first || len(c.pending) > 0; first = false {
		updates := c.pending
		lastChunk := true
		if len(updates) > c.maxBatch {
			updates, c.pending, lastChunk = updates[:c.maxBatch], updates[c.maxBatch:], false
		} else {
			c.pending = nil
		}
		crumb := newBreadcrumb(last.seq+1, c.now(), last.status)
		changed := false
		if lastChunk && c.status != crumb.status {
			crumb.status = c.status
			changed = true
		}
		crumb.deltas = make([]syncproto.SerializedUpdate, 0, len(updates))
		for _, u := range updates {
			if c.moveRV {
				moveResourceVersions(&u)
			}
			old, exists := c.store[u.Key]
			if len(u.Value) == 0 {
				// A deletion is always passed on, even for an absent key
				// (which leaves the checksum as it was).
				delete(c.store, u.Key)
			} else {
				if exists && wouldBeNoOp(u, old) {
					continue
				}
				stored := u
				stored.UpdateType = syncproto.UpdateTypeNew
				c.store[u.Key] = stored
			}
			c.sum.replace(u.Key, old.Value, u.Value)
			crumb.deltas = append(crumb.deltas, u)
			changed = true
		}
		if !changed {
			continue
		}
		crumb.sum = c.sum
		last.next = crumb
		published = append(published, crumb)
		last = crumb
	}
	if len(published) == 0 {
		return nil
	}
	// Link everything first, then wake followers from the end backwards,
	// so that a follower woken at the old head already sees the new head
	// as the latest breadcrumb.
	old := c.current
	c.current = last
	for i := len(published) - 2; i >= 0; i-- {
		close(published[i].ready)
	}
	close(old.ready)
	return published
}

// wouldBeNoOp is upstream's SerializedUpdate.WouldBeNoOp: equal but for
// Revision and V3ResourceVersion, a previous New counting as Updated.
func wouldBeNoOp(u, prev syncproto.SerializedUpdate) bool {
	if prev.UpdateType == syncproto.UpdateTypeNew {
		prev.UpdateType = syncproto.UpdateTypeUpdated
	}
	return u.Key == prev.Key && bytes.Equal(u.Value, prev.Value) && u.TTL == prev.TTL && u.UpdateType == prev.UpdateType
}

// latest is the newest breadcrumb.
func (c *crumbCache) latest() *breadcrumb {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// snapshot is the current breadcrumb and the store as of it.
func (c *crumbCache) snapshot() (*breadcrumb, []syncproto.SerializedUpdate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	crumb := c.current
	if !crumb.kvsBuilt {
		crumb.kvs = make([]syncproto.SerializedUpdate, 0, len(c.store))
		for _, u := range c.store {
			crumb.kvs = append(crumb.kvs, u)
		}
		sortKVs(crumb.kvs)
		crumb.kvsBuilt = true
	}
	return crumb, crumb.kvs
}

// checksum is the store's current checksum (for the summary).
func (c *crumbCache) checksum() stateChecksum {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum
}

// storeCopy is a copy of the store (for --state-out).
func (c *crumbCache) storeCopy() datastore {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := make(datastore, len(c.store))
	for k, u := range c.store {
		d[k] = u
	}
	return d
}
