package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyledger/keyledger"
)

// coalescer lets concurrent requests for the same read-only aggregate (the
// ownership dashboard, the rotation overview) share one computation,
// without ever handing a request a result computed before it arrived.
//
// A request that finds no computation running starts one. A request that
// finds one running does not join it (it may have read the database before
// the request's own last write committed); it waits for it to end and then
// shares the next computation with every request that arrived meanwhile.
// So each result reflects a snapshot taken after each of its requests
// arrived (read-your-writes holds), and under load one computation serves
// many requests instead of each doing the same scan.
type coalescer[T any] struct {
	mu      sync.Mutex
	running *flight[T]
	next    *flight[T]
}

type flight[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (c *coalescer[T]) do(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	if c.running == nil {
		f := &flight[T]{done: make(chan struct{})}
		c.running = f
		c.mu.Unlock()
		c.run(ctx, f, fn)
		return f.val, f.err
	}
	running := c.running
	f, lead := c.next, false
	if f == nil {
		f, lead = &flight[T]{done: make(chan struct{})}, true
		c.next = f
	}
	c.mu.Unlock()
	if lead {
		<-running.done
		c.mu.Lock()
		c.next = nil
		if c.running == nil {
			c.running = f
		}
		c.mu.Unlock()
		c.run(ctx, f, fn)
		return f.val, f.err
	}
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// run computes f. The computation serves other requests too, so one of
// them going away must not cancel it; but it ends by the leader's deadline
// (the leader waits for it, and must answer before the HTTP write
// timeout), and with the leader when the leader was stopped for a reason
// of the server's (a domain error as the cause: shutting down).
func (c *coalescer[T]) run(ctx context.Context, f *flight[T], fn func(context.Context) (T, error)) {
	deadline := time.Now().Add(time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		var de *keyledger.Error
		if errors.As(context.Cause(ctx), &de) {
			cancel()
		}
	})
	defer stop()
	f.val, f.err = fn(fctx)
	c.mu.Lock()
	if c.running == f {
		c.running = nil
	}
	c.mu.Unlock()
	close(f.done)
}

// keyedCoalescer is a coalescer per key (a filter, a page): requests for
// the same key share computations as coalescer describes, requests for
// different keys never do. A key's entry lives while requests use it, so
// the map holds only the keys being asked for now.
type keyedCoalescer[T any] struct {
	mu sync.Mutex
	m  map[string]*keyedFlights[T]
}

type keyedFlights[T any] struct {
	c     coalescer[T]
	users int
}

func (k *keyedCoalescer[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedFlights[T]{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedFlights[T]{}
		k.m[key] = e
	}
	e.users++
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		e.users--
		if e.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}()
	return e.c.do(ctx, fn)
}
