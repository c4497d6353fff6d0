package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyledger/keyledger"
)

// SyncProviderUsage reads the last keyledger.UsageDays UTC days of usage
// per key from one live connection (its admin key unsealed only for the
// call) and upserts them in one statement: the provider's latest numbers
// for a day replace what was stored. It returns how many key-days it
// stored.
func (s *Store) SyncProviderUsage(ctx context.Context, pa keyledger.ProviderAdmin, connectionID string) (int, error) {
	cred, err := s.credential(ctx, connectionID)
	if err != nil {
		return 0, s.internal(ctx, "sync provider usage", err)
	}
	now := s.now()
	since := keyledger.UTCDay(now).AddDate(0, 0, -(keyledger.UsageDays - 1))
	usage, err := pa.Usage(ctx, cred, since)
	if err != nil {
		// A *ProviderAdminError says what the provider answered and never
		// holds the admin key.
		return 0, fmt.Errorf("usage of connection %s: %w", connectionID, err)
	}
	// One row per key and day: the client may return a day in several
	// buckets (pages, models), which add up.
	type kd struct {
		key string
		day time.Time
	}
	sum := map[kd]*keyledger.ProviderUsage{}
	var order []kd
	for _, u := range usage {
		if u.KeyID == "" {
			continue // usage not tied to a key (e.g. the console)
		}
		k := kd{u.KeyID, keyledger.UTCDay(u.Day)}
		if k.day.Before(since) {
			continue
		}
		if p := sum[k]; p != nil {
			p.Requests += u.Requests
			p.InputTokens += u.InputTokens
			p.OutputTokens += u.OutputTokens
			continue
		}
		sum[k] = &u
		order = append(order, k)
	}
	if len(order) == 0 {
		return 0, nil
	}
	keys := make([]string, len(order))
	days := make([]time.Time, len(order))
	reqs := make([]int64, len(order))
	ins := make([]int64, len(order))
	outs := make([]int64, len(order))
	for i, k := range order {
		u := sum[k]
		keys[i], days[i] = k.key, k.day
		reqs[i], ins[i], outs[i] = max(u.Requests, 0), max(u.InputTokens, 0), max(u.OutputTokens, 0)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO provider_usage (connection_id, provider_key_id, day, requests, input_tokens, output_tokens, synced_at)
		SELECT $1, u.key, u.day, u.req, u.inp, u.outp, $7
		FROM unnest($2::text[], $3::date[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(key, day, req, inp, outp)
		ON CONFLICT (connection_id, provider_key_id, day) DO UPDATE SET requests = EXCLUDED.requests,
			input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, synced_at = EXCLUDED.synced_at`,
		connectionID, keys, days, reqs, ins, outs, now)
	if err != nil {
		return 0, s.internal(ctx, "store provider usage", err)
	}
	return len(order), nil
}

// SyncAllProviderUsage runs SyncProviderUsage for every live connection
// supported by pa. One connection failing (a revoked admin key, a rate
// limit) does not stop the others; the errors come back joined.
func (s *Store) SyncAllProviderUsage(ctx context.Context, pa keyledger.ProviderAdmin) (int, error) {
	conns, err := s.liveConnections(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, c := range conns {
		if !pa.Supports(c.Provider) {
			continue
		}
		n, err := s.SyncProviderUsage(ctx, pa, c.ID)
		total += n
		if err != nil {
			s.log.WarnContext(ctx, "provider usage sync failed", "connection", c.ID, "err", err)
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}
