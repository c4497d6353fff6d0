package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// CheckLeaks tells which candidates (strings a scanner found in files) are
// the value of a live key version. It matches by the keyed fingerprint the
// store already keeps for duplicate detection, so a candidate is never
// stored, logged or compared in clear; only exact values (after the same
// trimming as on registration) match. Destroyed versions and archived keys
// are not live secrets and do not match, as for duplicates.
//
// The answer is an oracle for whoever holds a token ("is this string a
// key?"), so each call is audited, with the counts only, and the API
// rate-limits it like every other call.
func (s *Store) CheckLeaks(ctx context.Context, actor keyledger.Actor, candidates []string) ([]keyledger.LeakHit, error) {
	var v keyledger.Validation
	if len(candidates) > keyledger.MaxLeakCandidates {
		v.Add("candidates", fmt.Sprintf("Send at most %d candidates per call.", keyledger.MaxLeakCandidates))
	}
	for i, c := range candidates {
		if len(c) > keyledger.MaxLeakCandidateBytes {
			v.Add("candidates", fmt.Sprintf("Candidate %d is longer than %d bytes.", i, keyledger.MaxLeakCandidateBytes))
			break
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	// One fingerprint may stand for several candidates (the same value
	// found twice in a batch).
	byFP := map[string][]int{}
	fps := make([][]byte, 0, len(candidates))
	for i, c := range candidates {
		id := keyledger.ValueIdentity(c)
		if id == "" {
			continue
		}
		fp := crypto.Fingerprint(s.fingerprintKey, []byte(id))
		if _, seen := byFP[string(fp)]; !seen {
			fps = append(fps, fp)
		}
		byFP[string(fp)] = append(byFP[string(fp)], i)
	}
	var hits []keyledger.LeakHit
	err := s.tx(ctx, func(tx pgx.Tx) error {
		hits = hits[:0]
		a, err := freshActor(ctx, tx, actor)
		if err != nil {
			return err
		}
		if !a.User.Active() {
			return keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
		}
		if len(fps) > 0 {
			rows, err := tx.Query(ctx, `SELECT v.fingerprint, k.id::text, k.name, e.name, k.project, coalesce(o.email, ''), v.version, v.version = k.current_version
				FROM key_versions v JOIN keys k ON k.id = v.key_id JOIN environments e ON e.id = k.environment_id LEFT JOIN users o ON o.id = k.owner_id
				WHERE v.fingerprint = ANY($1) AND v.destroyed_at IS NULL AND k.archived_at IS NULL
				ORDER BY k.name, v.version`, fps)
			if err != nil {
				return fmt.Errorf("match candidates: %w", err)
			}
			var fp []byte
			var h keyledger.LeakHit
			_, err = pgx.ForEachRow(rows, []any{&fp, &h.KeyID, &h.Name, &h.Environment, &h.Project, &h.OwnerEmail, &h.Version, &h.Current}, func() error {
				for _, i := range byFP[string(fp)] {
					hit := h
					hit.Index = i
					hits = append(hits, hit)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("match candidates: %w", err)
			}
		}
		return writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionLeakCheck,
			Details: map[string]any{"candidates": len(candidates), "hits": len(hits), "keys": hitKeys(hits)}})
	})
	if err != nil {
		return nil, s.internal(ctx, "check leaks", err)
	}
	return hits, nil
}

// hitKeys names the matched keys for the audit event (id and version), so
// a lead can see which keys someone found, without any value.
func hitKeys(hits []keyledger.LeakHit) []string {
	out := make([]string, 0, len(hits))
	for _, h := range hits {
		out = append(out, h.KeyID+"@v"+strconv.Itoa(h.Version))
	}
	return out
}
