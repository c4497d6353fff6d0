package store

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// The audit chain's instance secrets (instance_secrets, sealed under the
// master key, so master-key rotation re-wraps them with the rest).
const (
	// chainKeyName is the HMAC key of the keyed chain (format 2).
	chainKeyName = "audit-chain"
	// checkpointKeyName is the seed of the Ed25519 key that signs
	// checkpoints of the chain's head.
	checkpointKeyName = "audit-checkpoint"
)

// Link formats, stored per link in audit_chain.format.
const (
	formatSHA256 = 1 // keyledger.ChainHash: anyone can recompute it
	formatHMAC   = 2 // keyledger.ChainHMAC under the chain key
)

// chainKeying is what the chainer and verify need to make and check keyed
// links, loaded once by New.
type chainKeying struct {
	key []byte
	// keyedFrom is the first link in the keyed format; links before it
	// were made before the keyed chain began.
	keyedFrom int64
	signer    ed25519.PrivateKey
	// err is set when the record of keyedFrom is missing or altered: the
	// chainer then refuses to append and verify reports it as broken.
	err error
}

// keyedFromMAC authenticates where the keyed part of the chain begins, so
// that someone without the master key can neither move the start past
// links they recomputed with SHA-256 nor drop the record.
func keyedFromMAC(key []byte, from int64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("keyledger audit keyed_from\x00"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(from))
	m.Write(n[:])
	return m.Sum(nil)
}

// chainLink computes link seq over prev and e in the format its position
// calls for; keyed holds the chain key (one per round, not per link).
func (s *Store) chainLink(keyed *keyledger.ChainKeyed, seq int64, prev []byte, e *keyledger.AuditEvent) ([]byte, int16) {
	if seq >= s.chain.keyedFrom {
		return keyed.Link(prev, e), formatHMAC
	}
	return keyledger.ChainHash(prev, e), formatSHA256
}

// loadChainKeying opens (or, on the first start after migration 009,
// creates) the chain key, the checkpoint key and the record of where the
// keyed chain begins. The three are created together in one transaction
// under the chainer's lock, so that no link is chained between: a record
// that is missing while the keys exist was deleted, and is reported rather
// than silently made anew at the current head.
func (s *Store) loadChainKeying(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", chainLock); err != nil {
			return err
		}
		var from int64
		var mac []byte
		err := tx.QueryRow(ctx, "SELECT keyed_from, mac FROM audit_chain_keying").Scan(&from, &mac)
		missing := errors.Is(err, pgx.ErrNoRows)
		if err != nil && !missing {
			return err
		}
		var had int
		if missing {
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM instance_secrets WHERE name IN ($1, $2)",
				chainKeyName, checkpointKeyName).Scan(&had); err != nil {
				return err
			}
		}
		key, err := s.instanceSecretIn(ctx, tx, chainKeyName)
		if err != nil {
			return err
		}
		seed, err := s.instanceSecretIn(ctx, tx, checkpointKeyName)
		if err != nil {
			return err
		}
		s.chain = chainKeying{key: key, signer: ed25519.NewKeyFromSeed(seed)}
		switch {
		case missing && had > 0:
			s.chain.err = errors.New("the record of where the keyed audit chain begins (audit_chain_keying) was deleted, while the chain key exists")
		case missing:
			var head int64
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM audit_chain").Scan(&head); err != nil {
				return err
			}
			from = head + 1
			if _, err := tx.Exec(ctx, "INSERT INTO audit_chain_keying (keyed_from, mac) VALUES ($1, $2)", from, keyedFromMAC(key, from)); err != nil {
				return err
			}
			s.chain.keyedFrom = from
			if head > 0 {
				// Once per installation, on upgrade: a second such line in
				// the log means someone deleted the keys to start over.
				s.log.WarnContext(ctx, "audit chain: links are now keyed (HMAC under a key sealed by the master key); earlier links stay SHA-256",
					"keyed_from", from)
			}
		case !hmac.Equal(mac, keyedFromMAC(key, from)):
			s.chain.err = fmt.Errorf("the record of where the keyed audit chain begins (audit_chain_keying, link %d) does not match its MAC: it was altered", from)
		default:
			s.chain.keyedFrom = from
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit chain key: %w", err)
	}
	return nil
}
