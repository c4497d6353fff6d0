package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// Spend alerts. After each usage sync, RaiseSpendAlerts applies the
// spend rule (keyledger.SpendRule, pure) to every provider key's usage on
// today and yesterday (UTC; usage reports lag, so yesterday is only final
// the day after) and records each day that broke it in spend_alerts,
// whose unique constraints keep it to one alert per key per usage day and
// per day raised. SendSpendAlerts then tells the key's owner and the
// leads, as the value alerts do.

// RaiseSpendAlerts records and audits new spikes; it returns how many.
func (s *Store) RaiseSpendAlerts(ctx context.Context, rule keyledger.SpendRule) (int, error) {
	now := s.now()
	today := keyledger.UTCDay(now)
	days := []time.Time{today.AddDate(0, 0, -1), today}
	from := days[0].AddDate(0, 0, -rule.Window)
	type pk struct{ conn, key string }
	history := map[pk][]keyledger.UsageDay{}
	var order []pk
	rows, err := s.pool.Query(ctx, `SELECT u.connection_id::text, u.provider_key_id, u.day, u.requests, u.input_tokens, u.output_tokens
		FROM provider_usage u JOIN provider_connections c ON c.id = u.connection_id
		WHERE c.removed_at IS NULL AND u.day >= $1::date
		ORDER BY u.connection_id, u.provider_key_id`, from)
	if err != nil {
		return 0, s.internal(ctx, "read usage for spend alerts", err)
	}
	var k pk
	var d keyledger.UsageDay
	_, err = pgx.ForEachRow(rows, []any{&k.conn, &k.key, &d.Day, &d.Requests, &d.InputTokens, &d.OutputTokens}, func() error {
		if _, seen := history[k]; !seen {
			order = append(order, k)
		}
		history[k] = append(history[k], d)
		return nil
	})
	if err != nil {
		return 0, s.internal(ctx, "read usage for spend alerts", err)
	}
	var conns, keys, measures []string
	var spikeDays []time.Time
	var reqs, toks []int64
	var medReqs, medToks []float64
	for _, k := range order {
		for _, day := range days {
			sp, ok := rule.Spike(history[k], day)
			if !ok {
				continue
			}
			conns, keys, measures = append(conns, k.conn), append(keys, k.key), append(measures, sp.Measure)
			spikeDays = append(spikeDays, sp.Day)
			reqs, toks = append(reqs, sp.Requests), append(toks, sp.Tokens)
			medReqs, medToks = append(medReqs, sp.MedianRequests), append(medToks, sp.MedianTokens)
		}
	}
	if len(conns) == 0 {
		return 0, nil
	}
	raised := 0
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// Yesterday before today for each key (the arrays' order): if
		// yesterday's spike is news, it takes today's one alert.
		rows, err := tx.Query(ctx, `INSERT INTO spend_alerts (connection_id, provider_key_id, day, raised_on, measure, requests, tokens,
				median_requests, median_tokens, raised_at)
			SELECT a.conn::uuid, a.key, a.day, $9::date, a.measure, a.req, a.tok, a.mreq, a.mtok, $10
			FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::bigint[], $6::bigint[], $7::float8[], $8::float8[])
				WITH ORDINALITY AS a(conn, key, day, measure, req, tok, mreq, mtok, n)
			ORDER BY a.n
			ON CONFLICT DO NOTHING
			RETURNING id, connection_id::text, provider_key_id, day, measure, requests, tokens, median_requests, median_tokens`,
			conns, keys, spikeDays, measures, reqs, toks, medReqs, medToks, today, now)
		if err != nil {
			return fmt.Errorf("record spend alerts: %w", err)
		}
		type made struct {
			id        int64
			conn, key string
			sp        keyledger.SpendSpike
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (made, error) {
			var m made
			err := r.Scan(&m.id, &m.conn, &m.key, &m.sp.Day, &m.sp.Measure, &m.sp.Requests, &m.sp.Tokens, &m.sp.MedianRequests, &m.sp.MedianTokens)
			return m, err
		})
		if err != nil {
			return fmt.Errorf("record spend alerts: %w", err)
		}
		for _, m := range list {
			var keyID, keyName, env string
			err := tx.QueryRow(ctx, `SELECT coalesce(k.id::text, ''), coalesce(k.name, pk.name), coalesce(e.name, '')
				FROM provider_keys pk LEFT JOIN keys k ON k.id = pk.key_id LEFT JOIN environments e ON e.id = k.environment_id
				WHERE pk.connection_id = $1 AND pk.provider_key_id = $2`, m.conn, m.key).Scan(&keyID, &keyName, &env)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("spend alert %d: find key: %w", m.id, err)
			}
			if err := writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("spend alerts"), Action: keyledger.ActionSpendSpike,
				KeyID: keyID, KeyName: keyName, Environment: env, Details: map[string]any{
					"connection_id": m.conn, "provider_key_id": m.key, "day": m.sp.Day.Format(time.DateOnly), "measure": m.sp.Measure,
					"requests": m.sp.Requests, "tokens": m.sp.Tokens, "median_requests": m.sp.MedianRequests, "median_tokens": m.sp.MedianTokens}}); err != nil {
				return err
			}
		}
		raised = len(list)
		return nil
	})
	return raised, s.internal(ctx, "raise spend alerts", err)
}

// SendSpendAlerts tells each pending spend alert's key owner (when the
// provider key is linked to a registered key and the owner is active)
// and the leads (the admins when there are no leads). Each alert is
// claimed before sending; a failed send releases it for the next run.
func (s *Store) SendSpendAlerts(ctx context.Context, n keyledger.Notifier, links keyledger.Links) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.day, a.measure, a.requests, a.tokens, a.median_requests, a.median_tokens,
			a.provider_key_id, c.provider, coalesce(k.id::text, ''), coalesce(k.name, pk.name, ''), coalesce(k.project, pk.project_name, ''),
			coalesce(e.name, ''), coalesce(o.email, ''), coalesce(o.name, ''), coalesce(o.status, '')
		FROM spend_alerts a JOIN provider_connections c ON c.id = a.connection_id
		LEFT JOIN provider_keys pk ON pk.connection_id = a.connection_id AND pk.provider_key_id = a.provider_key_id
		LEFT JOIN keys k ON k.id = pk.key_id LEFT JOIN environments e ON e.id = k.environment_id LEFT JOIN users o ON o.id = k.owner_id
		WHERE a.sent_at IS NULL ORDER BY a.id LIMIT 500`)
	if err != nil {
		return 0, s.internal(ctx, "find spend alerts", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingAlert, error) {
		var p pendingAlert
		var provider string
		err := r.Scan(&p.id, &p.n.Spend.Day, &p.n.Spend.Measure, &p.n.Spend.Requests, &p.n.Spend.Tokens, &p.n.Spend.MedianRequests, &p.n.Spend.MedianTokens,
			&p.n.ProviderKeyID, &provider, &p.n.KeyID, &p.n.KeyName, &p.n.Project, &p.n.Environment, &p.n.OwnerEmail, &p.n.OwnerName, &p.ownerStatus)
		p.n.Provider = keyledger.Provider(provider).Label()
		return p, err
	})
	if err != nil {
		return 0, s.internal(ctx, "find spend alerts", err)
	}
	return s.sendAlerts(ctx, n, list, alertSend{
		what: "spend alert",
		prepare: func(_ pendingAlert, note *keyledger.Notification) {
			note.Kind = keyledger.AlertSpendSpike
			note.Spend.Day = note.Spend.Day.UTC()
			if note.KeyID != "" {
				note.URL = links.Key(note.KeyID)
			}
		},
		claim: "UPDATE spend_alerts SET sent_at = $2 WHERE id = $1 AND sent_at IS NULL",
		release: func(p pendingAlert, _ keyledger.Notification) (string, []any) {
			return "UPDATE spend_alerts SET sent_at = NULL WHERE id = $1", []any{p.id}
		},
	})
}

// afterProviderSync runs, in the sync job, right after a connection's
// inventory sync: its usage for the last 30 days, then the spend rule
// over every key's usage, then the alerts it raised. A failure to read
// usage is logged and leaves the stored usage as it was.
func (s *Store) afterProviderSync(ctx context.Context, cfg JobsConfig, connectionID string) error {
	if _, err := s.SyncProviderUsage(ctx, cfg.ProviderAdmin, connectionID); err != nil {
		return err
	}
	if _, err := s.RaiseSpendAlerts(ctx, keyledger.DefaultSpendRule()); err != nil {
		return err
	}
	if cfg.Notifier == nil {
		return nil // raised and audited; no channel to tell anyone
	}
	_, err := s.SendSpendAlerts(ctx, cfg.Notifier, cfg.Links)
	return err
}
