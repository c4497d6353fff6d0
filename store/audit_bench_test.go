package store_test

import (
	"github.com/keyledger/keyledger/store"
	"testing"
)

// BenchmarkChainAudit chains 1000 events per op (inserted beforehand with
// the timer stopped): the chainer's cost per round, links computed and the
// round's INSERT included.
func BenchmarkChainAudit(b *testing.B) {
	f := newFixture(b, store.Options{})
	ctx := b.Context()
	for b.Loop() {
		b.StopTimer()
		if _, err := f.pool.Exec(ctx, `INSERT INTO audit_events (actor_email, action, reason, details)
			SELECT 'bench@example.com', 'key.reveal', 'benchmark ' || g, '{"n": 1}' FROM generate_series(1, 1000) g`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		// A transaction elsewhere on the shared server may hold a round
		// back for a moment (see chainCutoff): chain until all are in.
		for total := 0; total < 1000; {
			n, err := f.s.ChainAudit(ctx)
			if err != nil {
				b.Fatal(err)
			}
			total += n
		}
	}
}
