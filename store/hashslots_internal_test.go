package store

import (
	"context"
	"errors"
	"testing"

	"github.com/keyledger/keyledger/crypto"
)

// TestQueuedHashHonoursCancel: a sign-in waiting for a password-hash slot
// (all taken by others) gives up when its request is canceled, instead of
// holding the request until a slot frees and then hashing for nobody.
func TestQueuedHashHonoursCancel(t *testing.T) {
	s := &Store{pw: crypto.PasswordParams{MemoryKiB: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, hashSlots: make(chan struct{}, 1)}
	s.hashSlots <- struct{}{} // every slot busy
	ctx, cancel := context.WithCancel(t.Context())
	type result struct{ err error }
	done := make(chan result, 2)
	go func() {
		_, err := s.hashPassword(ctx, "correct horse battery staple 7")
		done <- result{err}
	}()
	go func() {
		_, _, err := s.verifyPassword(ctx, "correct horse battery staple 7", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA")
		done <- result{err}
	}()
	cancel()
	for range 2 {
		if r := <-done; !errors.Is(r.err, context.Canceled) {
			t.Errorf("queued hash after cancel = %v, want context.Canceled", r.err)
		}
	}
	if n := s.PasswordHashes(); n != 0 {
		t.Errorf("%d hashes counted as started; the canceled ones never ran", n)
	}
}
