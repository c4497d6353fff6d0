package web

import (
	"context"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// epochCache keeps values built from the database at a key-list epoch
// (migration 017, store.SessionState.ListEpoch). Every browser request
// reads the epoch with its session, after it arrived; a value is handed
// to a request only if it was built at that epoch or a later one, so it
// holds every write committed before the request asked. Values of older
// epochs are dropped the moment a newer epoch is seen. Requests that miss
// the same value at once share one build (singleflight).
//
// A per-process map, not a shared cache: each replica builds its own, and
// the epoch in Postgres keeps them all honest.
type epochCache[V any] struct {
	max     int
	mu      sync.Mutex
	epoch   int64
	slot    int64 // the time slot values were built in (see get)
	entries map[string]V
	group   singleflight.Group
	// hit and miss count lookups (for /metrics); nil counts nothing.
	hit, miss func()
}

func newEpochCache[V any](max int) *epochCache[V] {
	return &epochCache[V]{max: max, entries: map[string]V{}}
}

// buildTimeout bounds a shared build: it runs detached from the request
// that started it, so one client going away does not fail the others.
const buildTimeout = 20 * time.Second

// get returns the value under key for a request that read epoch, in time
// slot slot (values that show relative times, such as "due in 3 days",
// are kept for one slot; others pass 0), building it when it is missing.
func (c *epochCache[V]) get(ctx context.Context, epoch, slot int64, key string, build func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	if epoch > c.epoch || (epoch == c.epoch && slot > c.slot) {
		c.epoch, c.slot = epoch, slot
		clear(c.entries)
	}
	v, ok := c.entries[key]
	// Entries are all of c.epoch, which is at least the request's epoch.
	c.mu.Unlock()
	if ok {
		if c.hit != nil {
			c.hit()
		}
		return v, nil
	}
	if c.miss != nil {
		c.miss()
	}
	flight := strconv.FormatInt(epoch, 10) + "/" + strconv.FormatInt(slot, 10) + "/" + key
	r, err, _ := c.group.Do(flight, func() (any, error) {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
		defer cancel()
		v, err := build(bctx)
		if err != nil {
			return v, err
		}
		c.mu.Lock()
		// Only a build at the current epoch and slot may be kept: one
		// of an older epoch may lack a write a newer request must see.
		if epoch == c.epoch && slot == c.slot && len(c.entries) < c.max {
			c.entries[key] = v
		}
		c.mu.Unlock()
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return r.(V), nil
}
