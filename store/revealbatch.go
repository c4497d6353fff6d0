package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// revealRead asks for what one reveal decides on.
type revealRead struct {
	actorID, tokenID int64
	at               time.Time // the actor's token must not have expired by then
	keyID            string    // a valid UUID (checked before queuing: a bad cast would fail the batch)
	version          int       // 0: the current one
}

// revealRow is the answer: the actor's current status and role, whether
// their token is still valid, whether they are being offboarded, the key
// with its environment, and the envelope of the wanted version.
type revealRow struct {
	found                   bool // the key and the actor exist
	status, role            string
	tokenLive, offboarding  bool
	versionFound, destroyed bool
	destroyAfter            *time.Time
	env                     crypto.Envelope
	key                     keyledger.Key
	ownerStatus             string
}

// revealCols are what a reveal reads. The request is the row r: its
// actor_id, token_id, at, key_id and version, whichever statement binds
// them (revealSelectFrom).
var revealCols = columns[revealRow]{
	{"a.status", func(r *revealRow) any { return &r.status }},
	{"a.role", func(r *revealRow) any { return &r.role }},
	{tokenLive("r.token_id", "r.at"), func(r *revealRow) any { return &r.tokenLive }},
	{"EXISTS (SELECT 1 FROM offboardings ob WHERE ob.user_id = a.id AND ob.completed_at IS NULL)", func(r *revealRow) any { return &r.offboarding }},
	{"v.version IS NOT NULL", func(r *revealRow) any { return &r.versionFound }},
	{"coalesce(v.kek_id, '')", func(r *revealRow) any { return &r.env.KEKID }},
	{"v.wrapped_dek", func(r *revealRow) any { return &r.env.WrappedDEK }},
	{"v.nonce", func(r *revealRow) any { return &r.env.Nonce }},
	{"v.ciphertext", func(r *revealRow) any { return &r.env.Ciphertext }},
	{"v.destroyed_at IS NOT NULL", func(r *revealRow) any { return &r.destroyed }},
	{"v.destroy_after", func(r *revealRow) any { return &r.destroyAfter }},
	{"k.id::text", func(r *revealRow) any { return &r.key.ID }},
	{"k.name", func(r *revealRow) any { return &r.key.Name }},
	{"k.provider", func(r *revealRow) any { return &r.key.Provider }},
	{"k.project", func(r *revealRow) any { return &r.key.Project }},
	{"e.id", func(r *revealRow) any { return &r.key.EnvironmentInfo.ID }},
	{"e.name", func(r *revealRow) any { return &r.key.EnvironmentInfo.Name }},
	{"e.reveal_policy", func(r *revealRow) any { return &r.key.EnvironmentInfo.RevealPolicy }},
	{"e.reason_required", func(r *revealRow) any { return &r.key.EnvironmentInfo.ReasonRequired }},
	{"e.sensitive", func(r *revealRow) any { return &r.key.EnvironmentInfo.Sensitive }},
	{"e.rotation_days", func(r *revealRow) any { return &r.key.EnvironmentInfo.RotationDays }},
	{"e.allow_token_reveal", func(r *revealRow) any { return &r.key.EnvironmentInfo.AllowTokenReveal }},
	{"k.owner_id", func(r *revealRow) any { return &r.key.OwnerID }},
	{"o.email", func(r *revealRow) any { return &r.key.OwnerEmail }},
	{"o.name", func(r *revealRow) any { return &r.key.OwnerName }},
	{"o.status", func(r *revealRow) any { return &r.ownerStatus }},
	{"k.description", func(r *revealRow) any { return &r.key.Description }},
	{"k.scope", func(r *revealRow) any { return &r.key.Scope }},
	{"k.masked_hint", func(r *revealRow) any { return &r.key.MaskedHint }},
	{"k.current_version", func(r *revealRow) any { return &r.key.CurrentVersion }},
	{"coalesce(k.rotation_days, 0)", func(r *revealRow) any { return &r.key.RotationDays }},
	{"coalesce(k.rotation_days, e.rotation_days)", func(r *revealRow) any { return &r.key.EffectiveDays }},
	{"k.rotate_by", func(r *revealRow) any { return &r.key.RotateBy }},
	{"k.last_rotated_at", func(r *revealRow) any { return &r.key.LastRotatedAt }},
	{"k.last_verified_at", func(r *revealRow) any { return &r.key.LastVerifiedAt }},
	{"coalesce(k.verify_result, '')", func(r *revealRow) any { return &r.key.VerifyResult }},
	{"k.verify_message", func(r *revealRow) any { return &r.key.VerifyMessage }},
	{"k.created_at", func(r *revealRow) any { return &r.key.CreatedAt }},
	{"k.updated_at", func(r *revealRow) any { return &r.key.UpdatedAt }},
	{"k.archived_at", func(r *revealRow) any { return &r.key.ArchivedAt }},
}

// revealRequest is the row r that revealCols read the request from: in
// the batched statement, the unnest of the parameter arrays; in the single
// one, the plain parameters (Postgres pulls this subquery up, so the plan
// is that of a statement with the parameters written in place).
const (
	revealRequestBatch = `unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::int[]) WITH ORDINALITY`
	revealRequestOne   = `(SELECT $1::bigint, $2::bigint, $3::timestamptz, $4::text, $5::int, 1::bigint)`
)

// revealSelectFrom is the reveal statement reading its requests from
// request. Each row starts with ord, which says which request it answers
// (a missing ord: unknown key or actor).
func revealSelectFrom(request string) string {
	return `SELECT r.ord, ` + revealCols.sql("") + `
	FROM ` + request + ` AS r(actor_id, token_id, at, key_id, version, ord)
	JOIN keys k ON k.id = r.key_id::uuid
	JOIN users a ON a.id = r.actor_id
	JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id
	LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = CASE WHEN r.version > 0 THEN r.version ELSE k.current_version END`
}

var (
	// revealBatchSelect reads a batch in one statement.
	revealBatchSelect = revealSelectFrom(revealRequestBatch)
	// revealSelect is the same for one request. Postgres plans an unnest
	// of parameter arrays anew on every execution (its generic plan
	// assumes a hundred rows, so it never wins over a custom one), which
	// costs more than the join itself; a batch of one takes this statement,
	// whose generic plan is cached.
	revealSelect = revealSelectFrom(revealRequestOne)
)

// readRevealBatch is the batcher's run for reveal reads. Reads need no
// transaction: nothing is locked or changed.
func readRevealBatch(pool *pgxpool.Pool) func(context.Context, []*batchCall[revealRead, revealRow]) {
	return func(ctx context.Context, batch []*batchCall[revealRead, revealRow]) {
		n := len(batch)
		actors, tokens, versions := make([]int64, n), make([]int64, n), make([]int32, n)
		ats, keys := make([]time.Time, n), make([]string, n)
		for i, c := range batch {
			actors[i], tokens[i], ats[i], keys[i], versions[i] = c.in.actorID, c.in.tokenID, c.in.at, c.in.keyID, int32(c.in.version)
		}
		q, args := revealBatchSelect, []any{actors, tokens, ats, keys, versions}
		if n == 1 {
			q, args = revealSelect, []any{actors[0], tokens[0], ats[0], keys[0], versions[0]}
		}
		readBatch(ctx, pool, batch, q, args, scanRevealRow, func(r *revealRow) { r.found = true })
	}
}

func scanRevealRow(row pgx.Rows, ord *int64, r *revealRow) error {
	return row.Scan(revealDests(ord, r)...)
}

// revealDests are where a row of revealSelectFrom goes.
func revealDests(ord *int64, r *revealRow) []any {
	return revealCols.dests(append(make([]any, 0, 1+len(revealCols)), ord), r)
}
