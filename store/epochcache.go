package store

import (
	"context"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// EpochCache keeps values built from the database at a change epoch
// (migration 017, keyledger.Epochs). Every browser request reads the
// epochs with its session, after it arrived; a value is handed
// to a request only if it was built at that epoch or a later one, so it
// holds every write committed before the request asked. Values of older
// epochs are dropped the moment a newer epoch is seen. Requests that miss
// the same value at once share one build (singleflight).
//
// A per-process map, not a shared cache: each replica builds its own, and
// the epoch in Postgres keeps them all honest.
type EpochCache[V any] struct {
	max     int
	mu      sync.Mutex
	epoch   int64
	slot    int64 // the time slot values were built in (see get)
	entries map[string]V
	group   singleflight.Group
	// Hit and Miss count lookups (for /metrics); nil counts nothing. Set
	// them before the first Get.
	Hit, Miss func()
}

// NewEpochCache keeps at most max values (of the newest epoch and slot).
func NewEpochCache[V any](max int) *EpochCache[V] {
	return &EpochCache[V]{max: max, entries: map[string]V{}}
}

// buildTimeout bounds a shared build: it runs detached from the request
// that started it, so one client going away does not fail the others.
const buildTimeout = 20 * time.Second

// Get returns the value under key for a request that read epoch, in time
// slot slot (values that show relative times, such as "due in 3 days",
// are kept for one slot; others pass 0), building it when it is missing.
func (c *EpochCache[V]) Get(ctx context.Context, epoch, slot int64, key string, build func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	if epoch > c.epoch || (epoch == c.epoch && slot > c.slot) {
		c.epoch, c.slot = epoch, slot
		clear(c.entries)
	}
	v, ok := c.entries[key]
	// Entries are all of c.epoch, which is at least the request's epoch.
	c.mu.Unlock()
	if ok {
		if c.Hit != nil {
			c.Hit()
		}
		return v, nil
	}
	if c.Miss != nil {
		c.Miss()
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

// kept answers from cache what was built at the actor's epoch or later,
// and when the epoch is unknown (0: a token, a job) from a computation
// that starts after the call (co), as every such read did before.
func kept[V any](ctx context.Context, cache *EpochCache[V], co *coalescer[V], epoch, slot int64, build func(context.Context) (V, error)) (V, error) {
	if epoch <= 0 {
		return co.do(ctx, build)
	}
	return cache.Get(ctx, epoch, slot, "", build)
}
