package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// leakColumns read an incident with its key; leakFrom joins them.
const leakColumns = `i.id, k.id::text, k.name, k.project, e.name, k.owner_id, o.email, k.archived_at IS NOT NULL, i.version, k.current_version,
	i.source, coalesce(r.email, ''), i.location, i.opened_at, i.rotated_at, i.revoked_at, i.notified_at, i.closed_at,
	coalesce(i.close_reason, ''), i.waive_reason, coalesce(c.email, ''),
	(SELECT count(*) FROM leak_incident_steps s WHERE s.incident_id = i.id AND s.step = $1)`

const leakFrom = ` FROM leak_incidents i JOIN keys k ON k.id = i.key_id JOIN environments e ON e.id = k.environment_id
	JOIN users o ON o.id = k.owner_id LEFT JOIN users r ON r.id = i.reported_by LEFT JOIN users c ON c.id = i.closed_by`

func scanLeak(row pgx.Row, extra ...any) (keyledger.LeakIncident, error) {
	var i keyledger.LeakIncident
	dest := []any{&i.ID, &i.KeyID, &i.KeyName, &i.Project, &i.Environment, &i.OwnerID, &i.OwnerEmail, &i.KeyArchived, &i.Version, &i.CurrentVersion,
		&i.Source, &i.ReportedBy, &i.Where, &i.OpenedAt, &i.RotatedAt, &i.RevokedAt, &i.NotifiedAt, &i.ClosedAt,
		&i.CloseReason, &i.WaiveReason, &i.ClosedBy, &i.Reports}
	err := row.Scan(append(dest, extra...)...)
	return i, err
}

// LeakIncident reads one incident with its timeline, for leads and admins,
// the key's owner, and whoever reported it through the report form (not
// someone whose duplicate registration opened it: they are not told which
// key it was). Others get "not found", as for an incident that does not
// exist. Who revealed or exported the leaked version comes from the audit
// log and is shown to leads and admins only.
func (s *Store) LeakIncident(ctx context.Context, actor keyledger.Actor, id int64) (*keyledger.LeakIncident, error) {
	if err := mayRead(actor, keyledger.CanUse); err != nil {
		return nil, err
	}
	var reported bool
	var uid int64
	if actor.User != nil {
		uid = actor.User.ID
	}
	inc, err := scanLeak(s.pool.QueryRow(ctx, "SELECT "+leakColumns+`,
		EXISTS (SELECT 1 FROM leak_incident_steps s WHERE s.incident_id = i.id AND s.step = $1 AND s.actor_id = $3 AND s.via = $4)`+
		leakFrom+" WHERE i.id = $2", keyledger.LeakStepReported, id, uid, keyledger.LeakSourceReport), &reported)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("Incident")
	}
	if err != nil {
		return nil, s.internal(ctx, "read incident", err)
	}
	if actor.User != nil && keyledger.CanViewLeak(actor.User, inc.OwnerID, reported) != nil {
		return nil, keyledger.ErrNotFound("Incident")
	}
	rows, err := s.pool.Query(ctx, "SELECT at, step, actor_email, note FROM leak_incident_steps WHERE incident_id = $1 ORDER BY at, id", id)
	if err != nil {
		return nil, s.internal(ctx, "read incident timeline", err)
	}
	inc.Steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.LeakStep, error) {
		var st keyledger.LeakStep
		return st, r.Scan(&st.At, &st.Step, &st.By, &st.Note)
	})
	if err != nil {
		return nil, s.internal(ctx, "read incident timeline", err)
	}
	if inc.ProviderKey, err = providerKeyForLeak(ctx, s.pool, inc.KeyID, inc.Version); err != nil {
		return nil, s.internal(ctx, "read provider link", err)
	}
	inc.ProviderRevocable = inc.ProviderKey != 0
	if actor.User == nil || keyledger.CanSeeLeakExposures(actor.User) != nil {
		return &inc, nil
	}
	rows, err = s.pool.Query(ctx, `SELECT a.at, a.action, a.actor_email, coalesce(u.name, ''), coalesce(u.status = $4, false), a.reason
		FROM audit_events a LEFT JOIN users u ON u.id = a.actor_id
		WHERE a.key_id = $1 AND a.key_version = $2 AND a.action = ANY($3) ORDER BY a.at DESC, a.id DESC LIMIT 500`,
		inc.KeyID, inc.Version, []string{keyledger.ActionKeyReveal, keyledger.ActionKeyExport}, keyledger.UserActive)
	if err != nil {
		return nil, s.internal(ctx, "read incident exposures", err)
	}
	inc.Exposures, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.LeakExposure, error) {
		var e keyledger.LeakExposure
		return e, r.Scan(&e.At, &e.Action, &e.Email, &e.Name, &e.Active, &e.Reason)
	})
	if err != nil {
		return nil, s.internal(ctx, "read incident exposures", err)
	}
	return &inc, nil
}

// LeakListLimit caps the closed incidents the leaks page lists.
const LeakListLimit = 200

// LeakSummary is the leaks page: every open incident, the latest closed
// ones, and the figures the dashboard shows as well.
func (s *Store) LeakSummary(ctx context.Context, actor keyledger.Actor) (keyledger.LeakSummary, error) {
	var sum keyledger.LeakSummary
	if err := mayRead(actor, keyledger.CanListLeaks); err != nil {
		return sum, err
	}
	rows, err := s.pool.Query(ctx, `(SELECT `+leakColumns+leakFrom+` WHERE i.closed_at IS NULL ORDER BY i.opened_at DESC, i.id DESC)
		UNION ALL
		(SELECT `+leakColumns+leakFrom+` WHERE i.closed_at IS NOT NULL ORDER BY i.closed_at DESC, i.id DESC LIMIT $2)`,
		keyledger.LeakStepReported, LeakListLimit)
	if err != nil {
		return sum, s.internal(ctx, "list incidents", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.LeakIncident, error) { return scanLeak(r) })
	if err != nil {
		return sum, s.internal(ctx, "list incidents", err)
	}
	for _, i := range all {
		if i.Open() {
			sum.Open = append(sum.Open, i)
		} else {
			sum.Closed = append(sum.Closed, i)
		}
	}
	sum.CompromisedKeys, sum.MedianToRevoke, sum.Revoked, err = s.leakFigures(ctx)
	return sum, err
}

// leakFigures counts the compromised keys and the median time from an
// incident's opening to its version's revocation.
func (s *Store) leakFigures(ctx context.Context) (compromised int, median time.Duration, revoked int, err error) {
	var secs *float64
	err = s.pool.QueryRow(ctx, `SELECT
			(SELECT count(DISTINCT li.key_id) FROM leak_incidents li JOIN keys k ON k.id = li.key_id WHERE li.closed_at IS NULL AND k.archived_at IS NULL),
			(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM revoked_at - opened_at)) FROM leak_incidents WHERE revoked_at IS NOT NULL),
			(SELECT count(*) FROM leak_incidents WHERE revoked_at IS NOT NULL)`).Scan(&compromised, &secs, &revoked)
	if err != nil {
		return 0, 0, 0, s.internal(ctx, "leak figures", fmt.Errorf("%w", err))
	}
	if secs != nil {
		median = time.Duration(*secs * float64(time.Second)).Round(time.Second)
	}
	return compromised, median, revoked, nil
}
