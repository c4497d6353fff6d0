package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// AuditReport is the result of verifying the hash chain.
type AuditReport struct {
	Checked int64
	// Unchained counts events not in the chain when verify ended: from
	// transactions that finished while it ran, and Pending.
	Unchained int64
	// Pending counts events whose transaction had finished when verify
	// began but that were still not chained when it ended: an older
	// transaction holds the chain back (Holder says which, when visible).
	// The chain may be intact, but these events are not yet protected.
	Pending int64
	Holder  string
	// KeyedFrom is the first link in the keyed (HMAC) format.
	KeyedFrom int64
	// Head is the last link verified, and HeadLink its value.
	Head     int64
	HeadLink []byte
	// Problem describes the first broken link; empty when the chain holds.
	Problem string
	// BadEventID is the event at the first broken link, if any.
	BadEventID int64
	BadSeq     int64
}

// OK reports whether the chain verified.
func (r AuditReport) OK() bool { return r.Problem == "" }

// VerifyOptions tune VerifyAuditWith.
type VerifyOptions struct {
	// Wait is how long to keep chaining, when some events that had
	// finished as verify began are not chained yet, before reporting them
	// as Pending. Zero reports them at once.
	Wait time.Duration
	// Checkpoint, when set, must be extended by the chain: signed by this
	// instance's checkpoint key, with the same keyed start and the same
	// link at its seq.
	Checkpoint *keyledger.AuditCheckpoint
}

// VerifyAudit is VerifyAuditWith with no wait and no checkpoint.
func (s *Store) VerifyAudit(ctx context.Context) (AuditReport, error) {
	return s.VerifyAuditWith(ctx, VerifyOptions{})
}

// CheckpointPublicKey is this instance's checkpoint key, hex, for pinning.
func (s *Store) CheckpointPublicKey() string {
	return hex.EncodeToString(s.chain.signer.Public().(ed25519.PublicKey))
}

// chainWalk is how far verify has come, so that a later pass goes on from
// there rather than from the start.
type chainWalk struct {
	next int64
	prev []byte
}

// VerifyAuditWith chains what can be chained, then walks the whole chain
// and recomputes every link. An edited event changes its link; a deleted
// event leaves a link with no event; a deleted link leaves a gap in seq; an
// event slipped in out of order shows up as unchained below the chain's
// end; a link flipped to another format, or a moved keyed start, fails the
// keyed start's MAC or the format check; a chain rewritten with the key
// does not match a checkpoint kept elsewhere.
func (s *Store) VerifyAuditWith(ctx context.Context, opts VerifyOptions) (AuditReport, error) {
	r := AuditReport{KeyedFrom: s.chain.keyedFrom}
	if s.chain.err != nil {
		r.Problem = s.chain.err.Error()
		return r, nil
	}
	if cp := opts.Checkpoint; cp != nil {
		if err := cp.VerifySignature(s.CheckpointPublicKey()); err != nil {
			r.Problem = fmt.Sprintf("checkpoint of link %d: %v (either the file is not from this instance, or the instance's checkpoint key was replaced)", cp.Seq, err)
			r.BadSeq = cp.Seq
			return r, nil
		}
		if cp.KeyedFrom != s.chain.keyedFrom {
			r.Problem = fmt.Sprintf("the checkpoint says the keyed chain begins at link %d, the database says %d: the keyed start was moved", cp.KeyedFrom, s.chain.keyedFrom)
			return r, nil
		}
	}
	w := chainWalk{next: 1}
	var pending []int64
	deadline := time.Now().Add(opts.Wait)
	for pass := 0; ; pass++ {
		if _, err := s.ChainAudit(ctx); err != nil {
			return r, err
		}
		unchained, err := s.verifyPass(ctx, &w, &r, opts.Checkpoint, pass == 0, &pending)
		if err != nil {
			return r, fmt.Errorf("verify audit chain: %w", err)
		}
		r.Unchained = unchained
		if !r.OK() || len(pending) == 0 || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.Pending = int64(len(pending))
	if r.OK() && opts.Checkpoint != nil && opts.Checkpoint.Seq > r.Head {
		r.Problem = fmt.Sprintf("the chain ends at link %d, before the checkpoint's link %d: links were removed", r.Head, opts.Checkpoint.Seq)
		r.BadSeq = opts.Checkpoint.Seq
	}
	if r.OK() && r.Pending > 0 {
		lag, err := s.AuditLag(ctx, true)
		if err != nil {
			return r, err
		}
		r.Holder = lag.Holder
	}
	return r, nil
}

// verifyPass checks the keyed start, walks the links from w on, looks for
// events inserted out of order, and narrows pending (on the first pass,
// sets it) to the events still unchained. It returns how many events are
// unchained in all.
func (s *Store) verifyPass(ctx context.Context, w *chainWalk, r *AuditReport, cp *keyledger.AuditCheckpoint, first bool, pending *[]int64) (int64, error) {
	var unchained int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The record read at startup may have been altered since.
		var from int64
		var mac []byte
		err := tx.QueryRow(ctx, "SELECT keyed_from, mac FROM audit_chain_keying").Scan(&from, &mac)
		if errors.Is(err, pgx.ErrNoRows) {
			r.Problem = "the record of where the keyed audit chain begins (audit_chain_keying) was deleted"
			return nil
		}
		if err != nil {
			return err
		}
		if from != s.chain.keyedFrom || !hmac.Equal(mac, keyedFromMAC(s.chain.key, from)) {
			r.Problem = fmt.Sprintf("the record of where the keyed audit chain begins (audit_chain_keying, link %d) was altered", from)
			return nil
		}
		if err := s.walkChain(ctx, tx, w, r, cp); err != nil || !r.OK() {
			return err
		}
		// Every finished event must be in the chain; one that is not was
		// inserted behind the chainer's back (e.g. with a forged txid).
		var stray *int64
		// Compare with the chain's end, not the snapshot: the oldest running
		// transaction moves on between chaining and this query.
		// Within an epoch (one Postgres server, migration 006) compare
		// (txid, id); an unchained event of an earlier epoch than the
		// chain's end is out of order too.
		err = tx.QueryRow(ctx, `WITH l AS (SELECT event_txid, event_id,
				(SELECT max(epoch) FROM audit_epochs WHERE after_event_id < event_id) AS epoch
				FROM audit_chain ORDER BY seq DESC LIMIT 1)
			SELECT count(*), min(e.id) FILTER (WHERE ue.epoch < l.epoch OR (ue.epoch = l.epoch AND (e.txid, e.id) < (l.event_txid, l.event_id)))
			FROM audit_events e LEFT JOIN l ON true
			LEFT JOIN LATERAL (SELECT max(epoch) AS epoch FROM audit_epochs WHERE after_event_id < e.id) ue ON true
			WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)`).Scan(&unchained, &stray)
		if err != nil {
			return err
		}
		if stray != nil {
			r.Problem = fmt.Sprintf("event %d is not in the chain although its transaction finished: it was inserted out of order", *stray)
			r.BadEventID = *stray
			return nil
		}
		// Every event this snapshot sees has committed: those unchained
		// on the first pass are what must be chained before verify may
		// say everything finished is.
		q := `SELECT e.id FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)`
		var args []any
		if !first {
			q = `SELECT id FROM unnest($1::bigint[]) AS id WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = id)`
			args = append(args, *pending)
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		*pending, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	return unchained, err
}

// walkChain recomputes the links from w.next on, in this transaction's
// snapshot, and records the first problem in r.
func (s *Store) walkChain(ctx context.Context, tx pgx.Tx, w *chainWalk, r *AuditReport, cp *keyledger.AuditCheckpoint) error {
	rows, err := tx.Query(ctx, `SELECT c.seq, c.event_id, c.hash, c.format, e.id IS NOT NULL, `+prefixed("e", auditColumns)+`
		FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id WHERE c.seq >= $1 ORDER BY c.seq`, w.next)
	if err != nil {
		return err
	}
	defer rows.Close()
	keyed := keyledger.NewChainKeyed(s.chain.key)
	for rows.Next() {
		var seq, eventID int64
		var hash []byte
		var format int16
		var found bool
		var (
			id, actorID, subjectID                                                                 *int64
			at                                                                                     *time.Time
			actorEmail, action, keyID, keyName, subjectEmail, environment, ip, ua, reason, details *string
			keyVersion                                                                             *int
		)
		if err := rows.Scan(&seq, &eventID, &hash, &format, &found, &id, &at, &actorID, &actorEmail, &action, &keyID, &keyName,
			&keyVersion, &subjectID, &subjectEmail, &environment, &ip, &ua, &reason, &details); err != nil {
			return err
		}
		r.BadSeq, r.BadEventID = seq, eventID
		switch {
		case seq != w.next:
			r.Problem = fmt.Sprintf("chain link %d is missing (next link is %d): a chain row was deleted", w.next, seq)
			r.BadSeq = w.next
			return nil
		case !found:
			r.Problem = fmt.Sprintf("event %d (chain link %d) is missing: it was deleted", eventID, seq)
			return nil
		}
		e := keyledger.AuditEvent{ID: *id, Time: at.UTC(), ActorID: *actorID, ActorEmail: *actorEmail, Action: *action,
			KeyID: *keyID, KeyName: *keyName, KeyVersion: *keyVersion, SubjectID: *subjectID, SubjectEmail: *subjectEmail,
			Environment: *environment, IP: *ip, UserAgent: *ua, Reason: *reason, Details: *details}
		link, want := s.chainLink(keyed, seq, w.prev, &e)
		switch {
		case format != want:
			r.Problem = fmt.Sprintf("chain link %d is in format %d, but the chain is keyed from link %d on: its format was changed", seq, format, s.chain.keyedFrom)
			return nil
		case !bytes.Equal(link, hash):
			r.Problem = fmt.Sprintf("event %d (chain link %d) does not match its hash: it was edited, or an earlier link was", eventID, seq)
			return nil
		case cp != nil && seq == cp.Seq && hex.EncodeToString(hash) != cp.Link:
			r.Problem = fmt.Sprintf("chain link %d differs from the checkpoint of %s: the chain was rewritten since", seq, cp.Time.UTC().Format(time.RFC3339))
			return nil
		}
		r.BadSeq, r.BadEventID = 0, 0
		w.prev = link
		w.next++
		r.Checked++
		r.Head, r.HeadLink = seq, link
	}
	return rows.Err()
}
