package store

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// EpochCache keeps values built from the database at a change epoch
// (migration 017, keyledger.Epochs). Every browser request reads the
// epochs with its session, after it arrived; a value is handed to a
// request only if it was built at that epoch or a later one, so it holds
// every write committed before the request asked. Values of older epochs
// are dropped the moment a newer epoch is seen. Requests that miss the
// same value at once share one build (singleflight).
//
// Values that show relative times ("due in 3 days", "overdue") are also
// kept for one time slot only. Each key's slots start at its own offset
// within the slot length, so the values of many keys (the key list's
// pages) are rebuilt spread over the slot, not all in its first instant.
//
// A per-process map, not a shared cache: each replica builds its own, and
// the epoch in Postgres keeps them all honest.
type EpochCache[V any] struct {
	limit   int
	slotLen time.Duration
	mu      sync.Mutex
	epoch   int64
	entries map[string]kept[V]
	group   singleflight.Group
	// Hit and Miss count lookups (for /metrics); nil counts nothing. Set
	// them before the first Get.
	Hit, Miss func()
}

type kept[V any] struct {
	slot int64
	v    V
}

// NewEpochCache keeps at most limit values, all of the newest epoch seen,
// each for one slot of slotLen (0: for as long as the epoch stands).
func NewEpochCache[V any](limit int, slotLen time.Duration) *EpochCache[V] {
	return &EpochCache[V]{limit: limit, slotLen: slotLen, entries: map[string]kept[V]{}}
}

// buildTimeout bounds a shared build: it runs detached from the request
// that started it, so one client going away does not fail the others.
const buildTimeout = 20 * time.Second

// slot is the time slot of key at now.
func (c *EpochCache[V]) slot(key string, now time.Time) int64 {
	if c.slotLen <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	offset := time.Duration(h.Sum64() % uint64(c.slotLen))
	return int64(now.Add(offset).UnixNano() / int64(c.slotLen))
}

// Get returns the value under key for a request that read epoch at now,
// building it when nothing kept is recent enough.
// An unknown epoch (0 or less) builds anew and keeps nothing.
func (c *EpochCache[V]) Get(ctx context.Context, epoch int64, now time.Time, key string, build func(context.Context) (V, error)) (V, error) {
	if epoch <= 0 {
		return build(ctx)
	}
	slot := c.slot(key, now)
	c.mu.Lock()
	if epoch > c.epoch {
		c.epoch = epoch
		clear(c.entries)
	}
	// Entries are all of c.epoch, which is at least the request's epoch.
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.slot >= slot {
		if c.Hit != nil {
			c.Hit()
		}
		return e.v, nil
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
		// Only a build at the current epoch may be kept: one of an older
		// epoch may lack a write a newer request must see.
		old, ok := c.entries[key]
		if !ok && len(c.entries) >= c.limit {
			c.dropExpired(now)
		}
		if epoch == c.epoch && (ok && old.slot < slot || !ok && len(c.entries) < c.limit) {
			c.entries[key] = kept[V]{slot: slot, v: v}
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

// dropExpired forgets the values whose slot is over, to make room. The
// caller holds c.mu.
func (c *EpochCache[V]) dropExpired(now time.Time) {
	for k, e := range c.entries {
		if e.slot < c.slot(k, now) {
			delete(c.entries, k)
		}
	}
}

// keptOr answers from cache what was built at the actor's epoch or
// later, and when the epoch is unknown (0: a token, a job) from a
// computation that starts after the call (co), as every such read did
// before.
func keptOr[V any](ctx context.Context, cache *EpochCache[V], co *coalescer[V], epoch int64, now time.Time, build func(context.Context) (V, error)) (V, error) {
	if epoch <= 0 {
		return co.do(ctx, build)
	}
	return cache.Get(ctx, epoch, now, "", build)
}
