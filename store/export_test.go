package store

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ChainLock is the advisory lock key the audit chainer takes, so tests can
// play "another replica is chaining right now".
const ChainLock = chainLock

// AuditBatchStats reports the audit batches written and their rows.
func (s *Store) AuditBatchStats() (batches, rows int64) { return s.audit.stats() }

// HoldAuditFlushes takes every audit batch slot, so reveals queue their
// audit rows until release is called.
func (s *Store) HoldAuditFlushes() (release func()) { return hold(s.audit.slots) }

// HoldRevealReads does the same for the batched reveal reads.
func (s *Store) HoldRevealReads() (release func()) { return hold(s.reads.slots) }

func hold(slots chan struct{}) func() {
	for range cap(slots) {
		slots <- struct{}{}
	}
	return func() {
		for range cap(slots) {
			<-slots
		}
	}
}

// AuditQueued is the number of audit rows waiting for a batch.
func (s *Store) AuditQueued() int { return s.audit.queued() }

// RevealReadsQueued is the number of reveal reads waiting for a batch.
func (s *Store) RevealReadsQueued() int { return s.reads.queued() }

// TokenCacheTTL is how long a token answer is reused.
const TokenCacheTTL = tokenCacheTTL

// RevealReadStats reports the reveal read batches run and their calls.
func (s *Store) RevealReadStats() (batches, calls int64) { return s.reads.stats() }

// HoldSessionReads takes every session-read batch slot.
func (s *Store) HoldSessionReads() (release func()) { return hold(s.sessions.slots) }

// SessionReadsQueued is the number of session reads waiting for a batch.
func (s *Store) SessionReadsQueued() int { return s.sessions.queued() }

// SessionReadStats reports the session read batches run and their calls.
func (s *Store) SessionReadStats() (batches, calls int64) { return s.sessions.stats() }

// HoldPasswordHashes takes every argon2id slot, so password checks wait.
func (s *Store) HoldPasswordHashes() (release func()) { return hold(s.hashSlots) }

// MigrateTo applies keyledger's migrations up to version only (no River),
// so a test can build a database as an older keyledger left it.
func MigrateTo(ctx context.Context, pool *pgxpool.Pool, version int32) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	m, err := newMigrator(ctx, conn.Conn())
	if err != nil {
		return err
	}
	return m.MigrateTo(ctx, version)
}
