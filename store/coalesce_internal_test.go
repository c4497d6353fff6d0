package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCoalescerSequentialCallsEachCompute(t *testing.T) {
	var c coalescer[int]
	var runs atomic.Int64
	for i := range 3 {
		v, err := c.do(t.Context(), func(context.Context) (int, error) { return int(runs.Add(1)), nil })
		if err != nil || v != i+1 {
			t.Fatalf("call %d: %d, %v", i, v, err)
		}
	}
}

// TestCoalescerSharesOnlyLaterComputations: requests that arrive while a
// computation runs do not get its (possibly older) result; they all share
// one computation started after they arrived.
func TestCoalescerSharesOnlyLaterComputations(t *testing.T) {
	var c coalescer[int64]
	var runs atomic.Int64
	var arrived atomic.Int64 // requests that arrived, stamped before do
	release := make(chan struct{})
	firstStarted := make(chan struct{})
	fn := func(context.Context) (int64, error) {
		n := runs.Add(1)
		if n == 1 {
			close(firstStarted)
			<-release
			return 0, nil // a snapshot from before the others arrived
		}
		return arrived.Load(), nil // how many requests had arrived when this started
	}
	go func() { _, _ = c.do(t.Context(), fn) }()
	<-firstStarted

	const n = 20
	var wg sync.WaitGroup
	results := make([]int64, n)
	for i := range n {
		arrived.Add(1)
		wg.Go(func() {
			v, err := c.do(t.Context(), fn)
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		})
	}
	// Let every request reach its wait before the first computation ends.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		queued := c.next != nil
		c.mu.Unlock()
		if queued || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, v := range results {
		if v != n {
			t.Errorf("request %d got a result computed when %d of %d requests had arrived", i, v, n)
		}
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("%d computations for 1 + %d overlapping requests, want 2", got, n)
	}
}

// TestCoalescerWaiterCancel: a waiter that goes away gets its context's
// error; the shared computation still finishes for the others.
func TestCoalescerWaiterCancel(t *testing.T) {
	var c coalescer[int]
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	fn := func(ctx context.Context) (int, error) {
		started <- struct{}{}
		<-release
		return 7, ctx.Err()
	}
	go func() { _, _ = c.do(t.Context(), fn) }()
	<-started
	leaderDone := make(chan int)
	go func() {
		v, _ := c.do(t.Context(), fn)
		leaderDone <- v
	}()
	for {
		c.mu.Lock()
		queued := c.next != nil
		c.mu.Unlock()
		if queued {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(t.Context())
	waiterErr := make(chan error)
	go func() {
		_, err := c.do(ctx, fn)
		waiterErr <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-waiterErr; err != context.Canceled {
		t.Fatalf("canceled waiter: %v", err)
	}
	close(release)
	if v := <-leaderDone; v != 7 {
		t.Fatalf("shared computation: %d", v)
	}
}

// TestKeyedCoalescerKeepsKeysApart: concurrent requests share a
// computation only with requests for the same key, and the map forgets a
// key nobody is asking for.
func TestKeyedCoalescerKeepsKeysApart(t *testing.T) {
	var k keyedCoalescer[string]
	var runs atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	fn := func(key string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			runs.Add(1)
			started <- struct{}{}
			<-release
			return key, nil
		}
	}
	var wg sync.WaitGroup
	got := make([]string, 6)
	for i, key := range []string{"a", "b", "a", "b", "a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := k.do(t.Context(), key, fn(key))
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
		if i < 2 {
			<-started // "a" and "b" each have a computation running
		}
	}
	time.Sleep(50 * time.Millisecond) // the other four wait for their key's next computation
	close(release)
	wg.Wait()
	for i, v := range got {
		if want := []string{"a", "b"}[i%2]; v != want {
			t.Errorf("request %d for %q got %q", i, want, v)
		}
	}
	// Two running, then at most one more per key for the four that waited.
	if n := runs.Load(); n < 2 || n > 4 {
		t.Errorf("%d computations for 6 requests over 2 keys, want 2 to 4", n)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) != 0 {
		t.Errorf("%d keys left in the map after every request ended", len(k.m))
	}
}
