package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"syncproto/interop/go/syncproto"
)

func upd(key, value string, ut syncproto.UpdateType, rev interface{}) syncproto.SerializedUpdate {
	u := syncproto.SerializedUpdate{Key: key, Revision: rev, UpdateType: ut}
	if value != "" {
		u.Value = []byte(value)
	}
	return u
}

func deltaKeys(b *breadcrumb) []string {
	keys := []string{}
	for _, u := range b.deltas {
		keys = append(keys, u.Key)
	}
	return keys
}

func TestCrumbCache(t *testing.T) {
	c := newCrumbCache(2, false, nil)
	head := c.latest()
	if head.seq != 0 || head.status != syncproto.WaitForDatastore {
		t.Fatalf("initial breadcrumb %+v", head)
	}
	if got := c.flush(); got != nil {
		t.Fatalf("an empty flush published %d breadcrumbs", len(got))
	}
	c.setStatus(syncproto.WaitForDatastore)
	if got := c.flush(); got != nil {
		t.Fatal("a flush without a status change published something")
	}

	// Chunks of at most 2; the status goes with the last one only.
	for i := 0; i < 5; i++ {
		c.add(upd(fmt.Sprintf("k%d", 4-i), "v", syncproto.UpdateTypeNew, int64(i)))
	}
	c.setStatus(syncproto.InSync)
	got := c.flush()
	if len(got) != 3 {
		t.Fatalf("published %d breadcrumbs, want 3", len(got))
	}
	for i, b := range got {
		wantStatus := syncproto.WaitForDatastore
		if i == 2 {
			wantStatus = syncproto.InSync
		}
		if b.seq != uint64(i+1) || b.status != wantStatus || len(b.deltas) != []int{2, 2, 1}[i] {
			t.Errorf("breadcrumb %d: seq %d status %d deltas %v", i, b.seq, b.status, deltaKeys(b))
		}
	}
	// The chain is linked and visible from the old head.
	if n, err := head.nextCrumb(context.Background()); err != nil || n != got[0] || got[1].next != got[2] {
		t.Errorf("chain not linked: %v", err)
	}
	if c.latest() != got[2] {
		t.Error("latest is not the last breadcrumb published")
	}

	// No-ops (Revision and V3ResourceVersion ignored, a stored New counts
	// as Updated) are skipped; deletions always pass, even of absent keys.
	noop := upd("k1", "v", syncproto.UpdateTypeUpdated, "other revision")
	syncproto.SetV3ResourceVersion(&noop, "99")
	c.add(noop)
	c.add(upd("k2", "v", syncproto.UpdateTypeNew, nil))     // New vs (New as Updated): not a no-op
	c.add(upd("k3", "v", syncproto.UpdateTypeUpdated, nil)) // a no-op
	c.add(upd("k4", "", syncproto.UpdateTypeUpdated, nil))  // an empty value: deletion
	empty := upd("k0", "", syncproto.UpdateTypeUpdated, nil)
	empty.Value = []byte{}
	c.add(empty)                                               // an empty, non-nil value: deletion
	c.add(upd("absent", "", syncproto.UpdateTypeDeleted, nil)) // deletion of an absent key
	ttl := upd("k1", "v", syncproto.UpdateTypeUpdated, nil)
	ttl.TTL = time.Second
	c.add(ttl) // a different TTL: not a no-op
	c.setStatus(syncproto.InSync)
	got = c.flush()
	var all []string
	for _, b := range got {
		all = append(all, deltaKeys(b)...)
	}
	if fmt.Sprint(all) != "[k2 k4 k0 absent k1]" {
		t.Errorf("deltas %v", all)
	}
	crumb, kvs := c.snapshot()
	if crumb != c.latest() {
		t.Error("snapshot is not of the latest breadcrumb")
	}
	var keys []string
	for _, u := range kvs {
		keys = append(keys, u.Key)
		if u.UpdateType != syncproto.UpdateTypeNew {
			t.Errorf("%s stored with type %d", u.Key, u.UpdateType)
		}
	}
	if fmt.Sprint(keys) != "[k1 k2 k3]" || kvs[0].TTL != time.Second {
		t.Errorf("snapshot %v", kvs)
	}

	// A status change alone publishes a breadcrumb without deltas.
	c.setStatus(syncproto.ResyncInProgress)
	got = c.flush()
	if len(got) != 1 || len(got[0].deltas) != 0 || got[0].status != syncproto.ResyncInProgress {
		t.Errorf("status-only flush: %+v", got)
	}
	// The snapshot of an older breadcrumb stays as it was.
	if _, kvs2 := c.snapshot(); len(kvs2) != 3 || len(kvs) != 3 {
		t.Errorf("snapshots %d %d", len(kvs), len(kvs2))
	}
}

func TestCrumbCacheExactMultipleOfBatch(t *testing.T) {
	c := newCrumbCache(2, false, nil)
	for i := 0; i < 4; i++ {
		c.add(upd(fmt.Sprintf("k%d", i), "v", syncproto.UpdateTypeNew, nil))
	}
	c.setStatus(syncproto.InSync)
	got := c.flush()
	if len(got) != 2 || got[0].status != syncproto.WaitForDatastore || got[1].status != syncproto.InSync {
		t.Errorf("published %d", len(got))
	}
}
