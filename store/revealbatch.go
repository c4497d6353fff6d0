package store

import (
	"context"
	"strings"
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

// revealColumns are what a reveal reads; TOKEN, AT and VERSION name the
// request's token id, time and wanted version. The token check is
// tokenLiveSQL's.
const revealColumns = `a.status, a.role,
		CASE WHEN TOKEN = 0 THEN true ELSE EXISTS (SELECT 1 FROM api_tokens t WHERE t.id = TOKEN AND t.user_id = a.id AND t.expires_at > AT)
			AND NOT EXISTS (SELECT 1 FROM role_policies rp WHERE rp.role = a.role AND rp.require_totp AND a.totp_enabled_at IS NULL) END,
		EXISTS (SELECT 1 FROM offboardings ob WHERE ob.user_id = a.id AND ob.completed_at IS NULL),
		v.version IS NOT NULL, coalesce(v.kek_id, ''), v.wrapped_dek, v.nonce, v.ciphertext,
		v.destroyed_at IS NOT NULL, v.destroy_after,
		k.id::text, k.name, k.provider, k.project, e.id, e.name, e.reveal_policy, e.reason_required, e.sensitive, e.rotation_days, e.allow_token_reveal,
		k.owner_id, o.email, o.name, o.status, k.description, k.scope, k.masked_hint, k.current_version, coalesce(k.rotation_days, 0),
		coalesce(k.rotation_days, e.rotation_days), k.rotate_by, k.last_rotated_at, k.last_verified_at, coalesce(k.verify_result, ''), k.verify_message,
		k.created_at, k.updated_at, k.archived_at`

// revealJoins join the key (k) to what a reveal reads with it.
const revealJoins = `
	JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id
	LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = CASE WHEN VERSION > 0 THEN VERSION ELSE k.current_version END`

var (
	// revealBatchSelect reads a batch in one statement; ord says which
	// request each row answers (a missing ord: unknown key or actor).
	revealBatchSelect = batchReplacer.Replace(`SELECT r.ord, ` + revealColumns + `
	FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::int[]) WITH ORDINALITY AS r(actor_id, token_id, at, key_id, version, ord)
	JOIN keys k ON k.id = r.key_id::uuid
	JOIN users a ON a.id = r.actor_id` + revealJoins)
	// revealSelect is the same for one request. Postgres plans an unnest
	// of parameter arrays anew on every execution (its generic plan
	// assumes a hundred rows, so it never wins over a custom one), which
	// costs more than the join itself; a batch of one takes this statement,
	// whose generic plan is cached.
	revealSelect = singleReplacer.Replace(`SELECT 1::bigint, ` + revealColumns + `
	FROM keys k JOIN users a ON a.id = $1` + revealJoins + `
	WHERE k.id = $4::text::uuid`)

	batchReplacer  = strings.NewReplacer("TOKEN", "r.token_id", "AT", "r.at", "VERSION", "r.version")
	singleReplacer = strings.NewReplacer("TOKEN", "$2::bigint", "AT", "$3", "VERSION", "$5::int")
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
	k := &r.key
	kenv := &k.EnvironmentInfo
	return row.Scan(ord, &r.status, &r.role, &r.tokenLive, &r.offboarding,
		&r.versionFound, &r.env.KEKID, &r.env.WrappedDEK, &r.env.Nonce, &r.env.Ciphertext, &r.destroyed, &r.destroyAfter,
		&k.ID, &k.Name, &k.Provider, &k.Project, &kenv.ID, &kenv.Name, &kenv.RevealPolicy, &kenv.ReasonRequired, &kenv.Sensitive, &kenv.RotationDays, &kenv.AllowTokenReveal,
		&k.OwnerID, &k.OwnerEmail, &k.OwnerName, &r.ownerStatus, &k.Description, &k.Scope, &k.MaskedHint, &k.CurrentVersion, &k.RotationDays,
		&k.EffectiveDays, &k.RotateBy, &k.LastRotatedAt, &k.LastVerifiedAt, &k.VerifyResult, &k.VerifyMessage,
		&k.CreatedAt, &k.UpdatedAt, &k.ArchivedAt)
}
