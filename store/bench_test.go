package store_test

import (
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// benchFixture is a store with an owner and a production key, so that a
// reveal goes through the strictest policy with a required reason.
func benchFixture(b *testing.B) (*fixture, *keyledger.User, string, string) {
	b.Helper()
	f := newFixture(b, store.Options{})
	owner := f.user(b, "owner@example.com", keyledger.RoleMember)
	value := secretValue(b, "sk-proj-")
	k := f.key(b, owner, keyledger.KeyInput{Name: "bench", Project: "bench", Environment: "production", OwnerEmail: owner.Email, Value: value})
	return f, owner, k.ID, value
}

// BenchmarkReveal is one reveal through the store: re-read the actor,
// check the policy and reason, open the envelope, write and commit the
// audit event.
func BenchmarkReveal(b *testing.B) {
	f, owner, id, value := benchFixture(b)
	ctx := b.Context()
	for b.Loop() {
		got, err := f.s.Reveal(ctx, as(owner), id, "benchmark")
		if err != nil || got.Value != value {
			b.Fatalf("reveal: %v", err)
		}
	}
}

// BenchmarkRevealParallel shows whether reveals wait on each other (they
// should not: the audit chain is built apart from them).
func BenchmarkRevealParallel(b *testing.B) {
	f, owner, id, value := benchFixture(b)
	ctx := b.Context()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			got, err := f.s.Reveal(ctx, as(owner), id, "benchmark")
			if err != nil || got.Value != value {
				b.Errorf("reveal: %v", err)
				return
			}
		}
	})
}
