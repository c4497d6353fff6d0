package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEpochCacheKeepsOnlyWhatIsFreshEnough: a value is handed out only to
// requests whose epoch it was built at or after, for one time slot, and
// requests that miss together share one build.
func TestEpochCacheKeepsOnlyWhatIsFreshEnough(t *testing.T) {
	ctx := context.Background()
	c := NewEpochCache[int64](8, time.Minute)
	var builds atomic.Int64
	build := func(epoch int64) func(context.Context) (int64, error) {
		return func(context.Context) (int64, error) { builds.Add(1); return epoch, nil }
	}
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	get := func(epoch int64, now time.Time) int64 {
		t.Helper()
		v, err := c.Get(ctx, epoch, now, "k", build(epoch))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(5, t0); v != 5 || builds.Load() != 1 {
		t.Fatalf("first get = %d after %d builds", v, builds.Load())
	}
	if v := get(5, t0); v != 5 || builds.Load() != 1 {
		t.Errorf("same epoch and slot: built again (%d builds)", builds.Load())
	}
	if v := get(4, t0); v != 5 || builds.Load() != 1 {
		t.Errorf("an older request is served the newer value: got %d after %d builds", v, builds.Load())
	}
	if v := get(6, t0); v != 6 || builds.Load() != 2 {
		t.Errorf("a newer epoch must build anew: got %d after %d builds", v, builds.Load())
	}
	// A build for an older epoch that finishes after a newer one was
	// seen must not be kept.
	if v := get(3, t0); v != 6 {
		t.Errorf("older request got %d", v)
	}
	c.mu.Lock()
	c.entries = map[string]kept[int64]{}
	c.mu.Unlock()
	get(3, t0) // builds at 3 while c.epoch is 6: not kept
	if v := get(6, t0); v != 6 {
		t.Errorf("a request at epoch 6 got a value built at epoch %d", v)
	}
	// An unknown epoch (a request without a session) builds anew and
	// keeps nothing, however fresh the kept value is.
	n0 := builds.Load()
	if v := get(0, t0); v != 0 || builds.Load() != n0+1 {
		t.Errorf("epoch 0 got %d after %d builds, want a fresh build", v, builds.Load()-n0)
	}
	if v := get(6, t0); v != 6 {
		t.Errorf("epoch 0's build was kept: epoch 6 got %d", v)
	}
	// Two slots later the value is rebuilt even at the same epoch.
	n := builds.Load()
	get(6, t0.Add(2*time.Minute))
	if builds.Load() != n+1 {
		t.Error("a value outlived its time slot")
	}

	// Fifty requests that miss together share one build.
	n = builds.Load()
	var wg sync.WaitGroup
	release := make(chan struct{})
	slow := func(context.Context) (int64, error) { <-release; builds.Add(1); return 7, nil }
	for range 50 {
		wg.Go(func() {
			if v, err := c.Get(ctx, 7, t0, "k", slow); err != nil || v != 7 {
				t.Errorf("concurrent get = %d, %v", v, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := builds.Load() - n; got > 2 {
		t.Errorf("50 concurrent misses made %d builds", got)
	}

	// The cap: keys beyond max are built every time, never kept.
	for i := range 20 {
		key := string(rune('a' + i))
		if _, err := c.Get(ctx, 7, t0, key, build(7)); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	if len(c.entries) > 8 {
		t.Errorf("%d entries kept, max 8", len(c.entries))
	}
	c.mu.Unlock()
	// Once their slot is over, kept values make room for new keys.
	later := t0.Add(2 * time.Minute)
	if _, err := c.Get(ctx, 7, later, "new", build(7)); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	_, kept := c.entries["new"]
	c.mu.Unlock()
	if !kept {
		t.Error("a full cache of expired values kept no room for a new key")
	}
}

// TestEpochCacheStaggersSlots: keys roll over to a new slot at different
// moments, so a minute's rebuilds of the key list's pages are spread out.
func TestEpochCacheStaggersSlots(t *testing.T) {
	c := NewEpochCache[int](1, time.Minute)
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	seconds := map[int]bool{}
	for i := range 50 {
		key := "page=" + string(rune('0'+i))
		s := c.slot(key, t0)
		for d := time.Second; d <= time.Minute; d += time.Second {
			if c.slot(key, t0.Add(d)) != s {
				seconds[int(d/time.Second)] = true
				break
			}
		}
	}
	if len(seconds) < 20 {
		t.Errorf("50 keys roll over at only %d distinct seconds", len(seconds))
	}
}
