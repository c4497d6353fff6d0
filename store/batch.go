package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// batcher runs concurrent calls of the same statement together: group
// commit done by the application. A call queues its input, and whichever
// waiting call gets a free slot takes everything queued (up to maxBatch)
// and runs it as one statement; every call in it then gets its own result.
//
// There is no background goroutine and no timer. Under light load a batch
// is one call and costs what the single statement did; under heavy load
// batches grow by themselves, because calls queue while the slots are
// busy, and thirty calls cost one round trip (and for writes one WAL
// flush) instead of thirty.
type batcher[In, Out any] struct {
	slots    chan struct{} // batches in flight
	maxBatch int
	// run executes a batch, setting each call's out or err.
	run func(ctx context.Context, calls []*batchCall[In, Out])

	mu    sync.Mutex
	queue []*batchCall[In, Out]

	// Batches run and the calls in them, for tests.
	batches, calls int64
}

type batchCall[In, Out any] struct {
	ctx  context.Context // the caller's, for the batch's deadline and cancellation
	in   In
	out  Out
	err  error
	done chan struct{}
}

func newBatcher[In, Out any](flights, maxBatch int, run func(context.Context, []*batchCall[In, Out])) *batcher[In, Out] {
	return &batcher[In, Out]{slots: make(chan struct{}, flights), maxBatch: maxBatch, run: run}
}

// do runs in as part of a batch and returns its result once the batch has
// finished (for a write: committed).
func (b *batcher[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &batchCall[In, Out]{ctx: ctx, in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	b.mu.Unlock()
	for {
		select {
		case <-c.done:
			return c.out, c.err
		default:
		}
		select {
		case <-c.done:
			return c.out, c.err
		case b.slots <- struct{}{}:
			b.mu.Lock()
			n := min(len(b.queue), b.maxBatch)
			batch := b.queue[:n:n]
			b.queue = b.queue[n:]
			if n > 0 {
				b.batches++
				b.calls += int64(n)
			}
			b.mu.Unlock()
			if n > 0 {
				bctx, cancel := batchContext(ctx, batch)
				b.run(bctx, batch)
				cancel()
				for _, bc := range batch {
					close(bc.done)
				}
			}
			<-b.slots
			if n == 0 {
				// Another batch took c: wait for it rather than spin on
				// free slots.
				<-c.done
				return c.out, c.err
			}
		case <-ctx.Done():
			if b.dequeue(c) {
				var zero Out
				return zero, fmt.Errorf("not run: %w", ctx.Err())
			}
			// Already in a batch being run: its outcome decides.
			<-c.done
			return c.out, c.err
		}
	}
}

// batchContext is the context a batch runs in. The batch carries other
// requests' calls, so one client going away must not fail them: it is
// cancelled only once every call's context is done (all gave up, or a
// shutdown stopped them all). Its deadline is the earliest of the calls'
// (30 s for a call without one), so that no caller waits for its answer
// past its own deadline: a request stuck behind a lock is answered "busy"
// before the HTTP write timeout, whoever runs the batch.
func batchContext[In, Out any](ctx context.Context, batch []*batchCall[In, Out]) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range batch {
		if d, ok := c.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	bctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	var mu sync.Mutex
	left := len(batch)
	stops := make([]func() bool, 0, len(batch))
	for _, c := range batch {
		stops = append(stops, context.AfterFunc(c.ctx, func() {
			mu.Lock()
			left--
			all := left == 0
			mu.Unlock()
			if all {
				cancel()
			}
		}))
	}
	return bctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// dequeue removes c if no batch has taken it yet.
func (b *batcher[In, Out]) dequeue(c *batchCall[In, Out]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.queue {
		if q == c {
			b.queue = append(b.queue[:i:i], b.queue[i+1:]...)
			return true
		}
	}
	return false
}

// stats reports the batches run and the calls in them.
func (b *batcher[In, Out]) stats() (batches, calls int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches, b.calls
}

// queued is the number of calls waiting for a batch.
func (b *batcher[In, Out]) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// BatchStat is what one batcher has done since start.
type BatchStat struct {
	Kind    string // reveal_reads, audit_writes, session_reads
	Batches int64  // statements run
	Calls   int64  // requests they served
}

// BatchStats reports the batchers' counts, for /metrics: Calls/Batches is
// the mean batch size, how much concurrent requests are sharing.
func (s *Store) BatchStats() []BatchStat {
	var out []BatchStat
	for _, b := range []struct {
		kind  string
		stats func() (int64, int64)
	}{{"reveal_reads", s.reads.stats}, {"audit_writes", s.audit.stats}, {"session_reads", s.sessions.stats}} {
		n, c := b.stats()
		out = append(out, BatchStat{Kind: b.kind, Batches: n, Calls: c})
	}
	return out
}

// readBatch runs a batched read whose rows each start with the 1-based
// position (ord) of the call they answer, and hands each call its row;
// found is set for the calls that got one. If the statement fails, every
// call gets the error.
func readBatch[In, Out any](ctx context.Context, pool *pgxpool.Pool, batch []*batchCall[In, Out], q string, args []any,
	scan func(pgx.Rows, *int64, *Out) error, found func(*Out)) {
	err := func() error {
		rows, err := pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ord int64
			var out Out
			if err := scan(rows, &ord, &out); err != nil {
				return err
			}
			if ord < 1 || int(ord) > len(batch) {
				continue
			}
			found(&out)
			batch[ord-1].out = out
		}
		return rows.Err()
	}()
	if err != nil {
		for _, c := range batch {
			var zero Out
			c.out, c.err = zero, err
		}
	}
}
