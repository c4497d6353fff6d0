package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// auditEntry is an event to insert. Details must never hold a secret.
type auditEntry struct {
	Actor        keyledger.Actor
	Action       string
	KeyID        string
	KeyName      string
	KeyVersion   int
	SubjectID    int64
	SubjectEmail string
	Environment  string
	Reason       string
	Details      map[string]any
}

// writeAudit inserts one event in the caller's transaction. The caller
// commits it together with the change it records, or neither happens.
func writeAudit(ctx context.Context, tx pgx.Tx, e auditEntry) error {
	r, err := auditRowOf(e)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, auditInsert, r.args()...); err != nil {
		return fmt.Errorf("write audit event %s: %w", e.Action, err)
	}
	return nil
}

// auditInsertColumns are the columns an event is written to, each with
// its value in a row: the one-row statements send the values (auditRow.args),
// the batched one an array per column (auditBatchArgs) of type array, which
// cast turns back into the column's type.
var auditInsertColumns = []auditColumn{
	auditCol("actor_id", "bigint[]", "", func(r *auditRow) *int64 { return r.actorID }),
	auditCol("actor_email", "text[]", "", func(r *auditRow) string { return r.actorEmail }),
	auditCol("action", "text[]", "", func(r *auditRow) string { return r.action }),
	auditCol("key_id", "text[]", "::uuid", func(r *auditRow) *string { return r.keyID }),
	auditCol("key_name", "text[]", "", func(r *auditRow) string { return r.keyName }),
	auditCol("key_version", "int[]", "", func(r *auditRow) *int { return r.keyVersion }),
	auditCol("subject_id", "bigint[]", "", func(r *auditRow) *int64 { return r.subjectID }),
	auditCol("subject_email", "text[]", "", func(r *auditRow) string { return r.subjectEmail }),
	auditCol("environment", "text[]", "", func(r *auditRow) string { return r.environment }),
	auditCol("ip", "text[]", "", func(r *auditRow) string { return r.ip }),
	auditCol("user_agent", "text[]", "", func(r *auditRow) string { return r.userAgent }),
	auditCol("reason", "text[]", "", func(r *auditRow) string { return r.reason }),
	// One row sends the JSON as bytes; the batch as text[], cast back.
	withArray(auditCol("details", "text[]", "::jsonb", func(r *auditRow) []byte { return r.details }),
		func(r *auditRow) string { return string(r.details) }),
}

// auditColumn is one column of auditInsertColumns.
type auditColumn struct {
	name, array, cast string
	one               func(*auditRow) any  // the value of one row
	many              func([]auditRow) any // the array of a batch's rows
}

// auditCol is the column name, whose value in a row is v.
func auditCol[T any](name, array, cast string, v func(*auditRow) T) auditColumn {
	return auditColumn{name: name, array: array, cast: cast,
		one:  func(r *auditRow) any { return v(r) },
		many: arrayOf(v)}
}

// withArray sends the column's batch array as v's values instead.
func withArray[T any](c auditColumn, v func(*auditRow) T) auditColumn {
	c.many = arrayOf(v)
	return c
}

func arrayOf[T any](v func(*auditRow) T) func([]auditRow) any {
	return func(rows []auditRow) any {
		out := make([]T, len(rows))
		for i := range rows {
			out[i] = v(&rows[i])
		}
		return out
	}
}

// auditInsertHead starts every statement that writes events.
var auditInsertHead = "INSERT INTO audit_events (" + auditInsertList(func(i int, name, _, _ string) string { return name }) + ")"

// auditInsertList renders one item per column of auditInsertColumns
// (i is 0-based), comma-separated.
func auditInsertList(item func(i int, name, array, cast string) string) string {
	items := make([]string, len(auditInsertColumns))
	for i, c := range auditInsertColumns {
		items[i] = item(i, c.name, c.array, c.cast)
	}
	return strings.Join(items, ", ")
}

// auditParam is column i's parameter in the one-row statements.
func auditParam(i int, _, _, _ string) string { return "$" + strconv.Itoa(i+1) }

// auditInsert writes one event, in the caller's transaction.
var auditInsert = auditInsertHead + " VALUES (" + auditInsertList(auditParam) + ")"

// auditRow is an event as the values of auditInsertColumns.
type auditRow struct {
	actorID, subjectID                                     *int64
	keyID                                                  *string
	keyVersion                                             *int
	actorEmail, action, keyName, subjectEmail, environment string
	ip, userAgent, reason                                  string
	details                                                []byte
}

// args are r's values in auditInsertColumns' order.
func (r *auditRow) args() []any {
	args := make([]any, len(auditInsertColumns))
	for i, c := range auditInsertColumns {
		args[i] = c.one(r)
	}
	return args
}

// auditBatchArgs are the arrays of auditBatchInsert for rows.
func auditBatchArgs(rows []auditRow) []any {
	args := make([]any, len(auditInsertColumns))
	for i, c := range auditInsertColumns {
		args[i] = c.many(rows)
	}
	return args
}

// auditRowOf is the row written for e.
func auditRowOf(e auditEntry) (auditRow, error) {
	details := []byte("{}")
	if e.Actor.Token != nil {
		// Which token acted, never the token itself.
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		e.Details["via_token"] = e.Actor.Token.ID
	}
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return auditRow{}, fmt.Errorf("encode audit details: %w", err)
		}
	}
	r := auditRow{actorEmail: e.Actor.Label(), action: e.Action, keyName: e.KeyName, subjectEmail: e.SubjectEmail,
		environment: e.Environment, ip: truncate(e.Actor.IP, 100), userAgent: truncate(e.Actor.UserAgent, 300), reason: e.Reason, details: details}
	if e.Actor.User != nil {
		r.actorID = &e.Actor.User.ID
	}
	if e.KeyID != "" {
		r.keyID = &e.KeyID
	}
	if e.KeyVersion != 0 {
		r.keyVersion = &e.KeyVersion
	}
	if e.SubjectID != 0 {
		r.subjectID = &e.SubjectID
	}
	return r, nil
}

// truncate cuts s to at most n bytes on a rune boundary; client-supplied
// headers are stored for context, not verbatim.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// AuditFilter narrows the audit log.
type AuditFilter struct {
	ActorEmail  string
	KeyID       string
	Action      string
	Environment string
	Since       time.Time
	Until       time.Time
	// BeforeID pages backwards: only events with a smaller id.
	BeforeID int64
	Limit    int
}

// AuditPage is one page of events, newest first.
type AuditPage struct {
	Events []keyledger.AuditEvent
	// NextBeforeID continues the listing; 0 when this is the last page.
	NextBeforeID int64
}

const auditColumns = `id, at, coalesce(actor_id, 0), actor_email, action, coalesce(key_id::text, ''), key_name,
	coalesce(key_version, 0), coalesce(subject_id, 0), subject_email, environment, ip, user_agent, reason, details::text`

func scanAudit(row pgx.CollectableRow) (keyledger.AuditEvent, error) {
	var e keyledger.AuditEvent
	err := row.Scan(&e.ID, &e.Time, &e.ActorID, &e.ActorEmail, &e.Action, &e.KeyID, &e.KeyName,
		&e.KeyVersion, &e.SubjectID, &e.SubjectEmail, &e.Environment, &e.IP, &e.UserAgent, &e.Reason, &e.Details)
	e.Time = e.Time.UTC()
	return e, err
}

// ListAudit returns events matching f, newest first, for leads and admins.
func (s *Store) ListAudit(ctx context.Context, actor keyledger.Actor, f AuditFilter) (AuditPage, error) {
	var page AuditPage
	if err := keyledger.CanViewAudit(actor.User); err != nil {
		return page, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.ActorEmail != "" {
		add("actor_email = $%d", keyledger.NormalizeEmail(f.ActorEmail))
	}
	if f.KeyID != "" {
		if !isUUID(f.KeyID) {
			return page, nil
		}
		add("key_id = $%d", f.KeyID)
	}
	if f.Action != "" {
		// A group (reveals and exports) stands for several actions.
		add("action = ANY($%d)", keyledger.AuditActionGroup(f.Action))
	}
	if f.Environment != "" {
		add("environment = $%d", keyledger.NormalizeEnvironmentName(f.Environment))
	}
	if !f.Since.IsZero() {
		add("at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("at < $%d", f.Until)
	}
	if f.BeforeID > 0 {
		add("id < $%d", f.BeforeID)
	}
	q := "SELECT " + auditColumns + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit+1)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, s.internal(ctx, "list audit", err)
	}
	events, err := pgx.CollectRows(rows, scanAudit)
	if err != nil {
		return page, s.internal(ctx, "list audit", err)
	}
	if len(events) > f.Limit {
		events = events[:f.Limit]
		page.NextBeforeID = events[len(events)-1].ID
	}
	page.Events = events
	return page, nil
}

// AuditKey is a key as the audit filter offers it: by name, with what
// tells two keys of the same name apart.
type AuditKey struct {
	ID, Name, Project, Environment string
	Archived                       bool
}

// AuditKeys lists every key, archived ones too (their events stay in the
// log), by name, so that leads and admins pick a key for the audit filter
// by name rather than by id.
func (s *Store) AuditKeys(ctx context.Context, actor keyledger.Actor) ([]AuditKey, error) {
	if err := keyledger.CanViewAudit(actor.User); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT k.id::text, k.name, k.project, e.name, k.archived_at IS NOT NULL
		FROM keys k JOIN environments e ON e.id = k.environment_id
		ORDER BY k.archived_at IS NOT NULL, lower(k.name), k.project, e.name, k.id`)
	if err != nil {
		return nil, s.internal(ctx, "list audit keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditKey, error) {
		var k AuditKey
		return k, r.Scan(&k.ID, &k.Name, &k.Project, &k.Environment, &k.Archived)
	})
	if err != nil {
		return nil, s.internal(ctx, "list audit keys", err)
	}
	return keys, nil
}

// chainLock is the advisory lock that keeps one chainer at a time, held
// only by the chainer's own short transaction, never by a reveal.
const chainLock = int64(0x6b6c636861696e) // "klchain"

// ChainAudit appends to the hash chain every event whose transaction, and
// every transaction before it, has finished. Events are chained in (txid,
// id) order: once txid is below the oldest running transaction, no event
// can ever appear before it, so the chain order is final. It returns how
// many events it chained; another replica holding the lock means 0.
func (s *Store) ChainAudit(ctx context.Context) (int, error) {
	total := 0
	for {
		// Another round when this one was full, or came from an older
		// epoch (the next epoch then starts); not merely because events
		// keep arriving, or under load the chainer would never rest.
		n, again, err := s.chainBatch(ctx, 1000)
		total += n
		if err != nil || !again {
			return total, err
		}
	}
}

// auditEpoch is one Postgres server's stretch of the audit log
// (migration 006): events with after < id <= the next epoch's after.
type auditEpoch struct {
	epoch   int
	cluster int64
	after   int64
}

// ensureAuditEpoch starts a new audit epoch when this database was
// restored onto another Postgres server: its transaction counter started
// anew, so the chain must not compare the new events' txids with the
// restored ones. Every keyledger process calls it before writing anything,
// so every event above after_event_id was written on this server.
func (s *Store) ensureAuditEpoch(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", chainLock); err != nil {
			return err
		}
		var cluster int64
		if err := tx.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&cluster); err != nil {
			return err
		}
		var last auditEpoch
		err := tx.QueryRow(ctx, "SELECT epoch, cluster FROM audit_epochs ORDER BY epoch DESC LIMIT 1").Scan(&last.epoch, &last.cluster)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err == nil && last.cluster == cluster {
			return nil
		}
		var after int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM audit_events").Scan(&after); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO audit_epochs (epoch, cluster, after_event_id) VALUES ($1, $2, $3)", last.epoch+1, cluster, after); err != nil {
			return err
		}
		if last.epoch > 0 {
			s.log.WarnContext(ctx, "this database was restored onto another Postgres server: the audit chain continues in a new epoch",
				"epoch", last.epoch+1, "after_event_id", after)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit epoch: %w", err)
	}
	return nil
}

// chainCutoff computes, in the same statement (so under the same
// snapshot) as the events it bounds, the txid below which the chain order
// is final: the oldest transaction still running that could have written
// to this database, or the snapshot's xmax when none is. A transaction
// known to belong to another database of the cluster (pg_stat_activity
// names it, or it is prepared elsewhere) can never insert here, so it does
// not hold the chain back, nor does one that holds only a snapshot (no
// xid): it would get a txid above xmax when it first writes. One we cannot
// place (its backend ended a moment ago, or the role may not see it) is
// counted as ours. pg_stat_activity has 32-bit xids: compared modulo 2^32,
// which is exact among transactions running at once.
const chainCutoff = `WITH snap AS (SELECT pg_current_snapshot() AS s),
	elsewhere AS (
		SELECT backend_xid::text::bigint AS x FROM pg_stat_activity
		WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
		UNION ALL
		SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE database <> current_database()),
	cut AS (SELECT least(pg_snapshot_xmax(s), (SELECT min(x) FROM pg_snapshot_xip(s) AS x
		WHERE x::text::bigint % 4294967296 NOT IN (SELECT x FROM elsewhere))) AS c FROM snap)
	`

func (s *Store) chainBatch(ctx context.Context, limit int) (n int, again bool, err error) {
	if s.chain.err != nil {
		// The record of where the keyed chain begins is missing or
		// altered: appending would build on a start nobody can trust.
		return 0, false, fmt.Errorf("chain audit events: %w", s.chain.err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", chainLock).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return nil
		}
		var seq int64
		var prev []byte
		var lastTxid, lastID string
		err := tx.QueryRow(ctx, `SELECT c.seq, c.hash, c.event_txid::text, c.event_id::text FROM audit_chain c ORDER BY c.seq DESC LIMIT 1`).
			Scan(&seq, &prev, &lastTxid, &lastID)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if err == pgx.ErrNoRows {
			lastTxid, lastID = "0", "0"
		}
		rows, err := tx.Query(ctx, "SELECT epoch, cluster, after_event_id FROM audit_epochs ORDER BY epoch")
		if err != nil {
			return err
		}
		epochs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditEpoch, error) {
			var e auditEpoch
			return e, r.Scan(&e.epoch, &e.cluster, &e.after)
		})
		if err != nil {
			return err
		}
		if len(epochs) == 0 {
			// Not yet recorded (a store made before migration 006 ran):
			// chain nothing rather than guess.
			return nil
		}
		// Start in the epoch of the last chained event; move on to the
		// next once an older epoch has nothing left.
		i := 0
		for i+1 < len(epochs) && lastID != "0" && epochs[i+1].after < mustInt64(lastID) {
			i++
		}
		var links []chainLink
		for ; i < len(epochs); i++ {
			current := i == len(epochs)-1
			hi := int64(math.MaxInt64)
			if !current {
				hi = epochs[i+1].after
			}
			// In the current epoch, chainCutoff is the oldest transaction
			// still running that could write here; all below it have
			// committed or aborted, or run in another database. Older
			// epochs were written on a server that is gone: all their
			// transactions finished. ORDER BY names the table's
			// columns: a bare "txid" would mean the text output column,
			// and '1000' sorts before '999'.
			// The epoch's bounds filter rows of the (txid, id) index walk:
			// "id + 0" keeps the planner from walking the id index
			// instead and sorting (11 ms a round under load when it did).
			// In the current epoch the walk is bounded by the cutoff, so rows
			// of an older epoch whose txids overlap are each passed once.
			q := `SELECT txid::text, ` + auditColumns + ` FROM audit_events
				WHERE (txid, id) > ($1::xid8, $2::bigint)`
			args := []any{lastTxid, lastID, limit}
			if epochs[i].after > 0 {
				args = append(args, epochs[i].after)
				q += fmt.Sprintf(" AND id + 0 > $%d", len(args))
			}
			if current {
				q = chainCutoff + q + ` AND txid < (SELECT c FROM cut)`
			} else {
				args = append(args, hi)
				q += fmt.Sprintf(" AND id + 0 <= $%d", len(args))
			}
			q += ` ORDER BY audit_events.txid, audit_events.id LIMIT $3`
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			if links, err = pgx.CollectRows(rows, scanChainLink); err != nil {
				return err
			}
			if len(links) > 0 || current {
				again = len(links) == limit || (len(links) > 0 && !current)
				break
			}
			lastTxid, lastID = "0", "0"
		}
		if len(links) == 0 {
			return nil
		}
		// One INSERT for the whole round.
		seqs, ids := make([]int64, len(links)), make([]int64, len(links))
		txids, hashes := make([]string, len(links)), make([][]byte, len(links))
		formats := make([]int16, len(links))
		keyed := keyledger.NewChainKeyed(s.chain.key)
		for i, l := range links {
			seq++
			prev, formats[i] = s.chainLink(keyed, seq, prev, &l.ev)
			seqs[i], ids[i], txids[i], hashes[i] = seq, l.ev.ID, l.txid, prev
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_chain (seq, event_id, event_txid, hash, format)
			SELECT s, e, t::xid8, h, f FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::smallint[]) AS r(s, e, t, h, f)`,
			seqs, ids, txids, hashes, formats); err != nil {
			return err
		}
		n = len(links)
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("chain audit events: %w", err)
	}
	return n, again, nil
}

type chainLink struct {
	txid string
	ev   keyledger.AuditEvent
}

func scanChainLink(row pgx.CollectableRow) (chainLink, error) {
	var l chainLink
	e := &l.ev
	err := row.Scan(&l.txid, &e.ID, &e.Time, &e.ActorID, &e.ActorEmail, &e.Action, &e.KeyID, &e.KeyName,
		&e.KeyVersion, &e.SubjectID, &e.SubjectEmail, &e.Environment, &e.IP, &e.UserAgent, &e.Reason, &e.Details)
	return l, err
}

func mustInt64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// prefixed qualifies each column expression of cols with alias, splitting
// only at top-level commas (coalesce(a, 0) is one expression).
func prefixed(alias, cols string) string {
	var parts []string
	depth, start := 0, 0
	for i, r := range cols {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, cols[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, cols[start:])
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if rest, ok := strings.CutPrefix(p, "coalesce("); ok {
			parts[i] = "coalesce(" + alias + "." + rest
		} else {
			parts[i] = alias + "." + p
		}
	}
	return strings.Join(parts, ", ")
}
