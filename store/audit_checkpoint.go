package store

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/keyledger/keyledger"
)

// Checkpoint verifies the whole chain and signs its head with the
// instance's checkpoint key. A broken chain gets no checkpoint: signing it
// would vouch for the tampering.
func (s *Store) Checkpoint(ctx context.Context) (keyledger.AuditCheckpoint, error) {
	r, err := s.VerifyAudit(ctx)
	if err != nil {
		return keyledger.AuditCheckpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	if !r.OK() {
		return keyledger.AuditCheckpoint{}, fmt.Errorf("audit checkpoint: the chain is broken, nothing signed: %s", r.Problem)
	}
	cp := keyledger.AuditCheckpoint{Seq: r.Head, KeyedFrom: s.chain.keyedFrom, Time: s.now()}
	if r.Head > 0 {
		cp.Link = hex.EncodeToString(r.HeadLink)
	}
	return keyledger.SignAuditCheckpoint(cp, s.chain.signer), nil
}

// PublishCheckpoint makes a checkpoint, logs it (one INFO line whose
// checkpoint attribute is the token to keep) and posts it to pub when one
// is set. A failed post is returned after the log line is written: the
// checkpoint is still good.
func (s *Store) PublishCheckpoint(ctx context.Context, pub keyledger.CheckpointPublisher) (keyledger.AuditCheckpoint, error) {
	cp, err := s.Checkpoint(ctx)
	if err != nil {
		return cp, err
	}
	s.log.InfoContext(ctx, "audit checkpoint: keep it apart from the database; 'keyledger audit verify --checkpoint FILE', with the token in FILE, proves the chain still extends it",
		"seq", cp.Seq, "link", cp.Link, "public_key", cp.PublicKey, "checkpoint", cp.Token())
	if pub != nil {
		if err := pub.PublishCheckpoint(ctx, cp); err != nil {
			return cp, fmt.Errorf("audit checkpoint %d: post: %w", cp.Seq, err)
		}
	}
	return cp, nil
}
