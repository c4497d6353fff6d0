package store

import (
	"bytes"
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
	args, err := auditArgs(e)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, auditInsert, args...); err != nil {
		return fmt.Errorf("write audit event %s: %w", e.Action, err)
	}
	return nil
}

const auditInsert = `INSERT INTO audit_events
		(actor_id, actor_email, action, key_id, key_name, key_version, subject_id, subject_email, environment, ip, user_agent, reason, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

// auditArgs are the thirteen parameters of auditInsert for e.
func auditArgs(e auditEntry) ([]any, error) {
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
			return nil, fmt.Errorf("encode audit details: %w", err)
		}
	}
	var actorID *int64
	if e.Actor.User != nil {
		actorID = &e.Actor.User.ID
	}
	var keyID *string
	if e.KeyID != "" {
		keyID = &e.KeyID
	}
	var keyVersion *int
	if e.KeyVersion != 0 {
		keyVersion = &e.KeyVersion
	}
	var subjectID *int64
	if e.SubjectID != 0 {
		subjectID = &e.SubjectID
	}
	return []any{actorID, e.Actor.Label(), e.Action, keyID, e.KeyName, keyVersion, subjectID, e.SubjectEmail,
		e.Environment, truncate(e.Actor.IP, 100), truncate(e.Actor.UserAgent, 300), e.Reason, details}, nil
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
		add("action = $%d", f.Action)
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

func (s *Store) chainBatch(ctx context.Context, limit int) (n int, again bool, err error) {
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
			// In the current epoch, the snapshot's xmin is the oldest
			// transaction still running; all below it have committed or
			// aborted. Older epochs were written on a server that is gone:
			// all their transactions finished. ORDER BY names the table's
			// columns: a bare "txid" would mean the text output column,
			// and '1000' sorts before '999'.
			// The epoch's bounds filter rows of the (txid, id) index walk:
			// "id + 0" keeps the planner from walking the id index
			// instead and sorting (11 ms a round under load when it did).
			// In the current epoch the walk is bounded by xmin, so rows
			// of an older epoch whose txids overlap are each passed once.
			q := `SELECT txid::text, ` + auditColumns + ` FROM audit_events
				WHERE (txid, id) > ($1::xid8, $2::bigint)`
			args := []any{lastTxid, lastID, limit}
			if epochs[i].after > 0 {
				args = append(args, epochs[i].after)
				q += fmt.Sprintf(" AND id + 0 > $%d", len(args))
			}
			if current {
				q += ` AND txid < pg_snapshot_xmin(pg_current_snapshot())`
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
		for i, l := range links {
			seq++
			prev = keyledger.ChainHash(prev, &l.ev)
			seqs[i], ids[i], txids[i], hashes[i] = seq, l.ev.ID, l.txid, prev
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_chain (seq, event_id, event_txid, hash)
			SELECT s, e, t::xid8, h FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[]) AS r(s, e, t, h)`,
			seqs, ids, txids, hashes); err != nil {
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

// AuditReport is the result of verifying the hash chain.
type AuditReport struct {
	Checked int64
	// Unchained counts events too recent to be chained yet.
	Unchained int64
	// Problem describes the first broken link; empty when the chain holds.
	Problem string
	// BadEventID is the event at the first broken link, if any.
	BadEventID int64
	BadSeq     int64
}

// OK reports whether the chain verified.
func (r AuditReport) OK() bool { return r.Problem == "" }

// VerifyAudit chains what can be chained, then walks the whole chain and
// recomputes every link. An edited event changes its hash; a deleted event
// leaves a link with no event; a deleted link leaves a gap in seq; an event
// slipped in out of order or never chained shows up as unchained below the
// chain's end.
func (s *Store) VerifyAudit(ctx context.Context) (AuditReport, error) {
	var r AuditReport
	if _, err := s.ChainAudit(ctx); err != nil {
		return r, err
	}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.seq, c.event_id, c.hash, e.id IS NOT NULL, `+prefixed("e", auditColumns)+`
			FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id ORDER BY c.seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var prev []byte
		var want int64 = 1
		for rows.Next() {
			var seq, eventID int64
			var hash []byte
			var found bool
			var e keyledger.AuditEvent
			var (
				id, actorID, subjectID                                                                 *int64
				at                                                                                     *time.Time
				actorEmail, action, keyID, keyName, subjectEmail, environment, ip, ua, reason, details *string
				keyVersion                                                                             *int
			)
			if err := rows.Scan(&seq, &eventID, &hash, &found, &id, &at, &actorID, &actorEmail, &action, &keyID, &keyName,
				&keyVersion, &subjectID, &subjectEmail, &environment, &ip, &ua, &reason, &details); err != nil {
				return err
			}
			if seq != want {
				r.Problem = fmt.Sprintf("chain link %d is missing (next link is %d): a chain row was deleted", want, seq)
				r.BadSeq = want
				r.BadEventID = eventID
				return nil
			}
			if !found {
				r.Problem = fmt.Sprintf("event %d (chain link %d) is missing: it was deleted", eventID, seq)
				r.BadSeq, r.BadEventID = seq, eventID
				return nil
			}
			e = keyledger.AuditEvent{ID: *id, Time: at.UTC(), ActorID: *actorID, ActorEmail: *actorEmail, Action: *action,
				KeyID: *keyID, KeyName: *keyName, KeyVersion: *keyVersion, SubjectID: *subjectID, SubjectEmail: *subjectEmail,
				Environment: *environment, IP: *ip, UserAgent: *ua, Reason: *reason, Details: *details}
			prev = keyledger.ChainHash(prev, &e)
			if !bytes.Equal(prev, hash) {
				r.Problem = fmt.Sprintf("event %d (chain link %d) does not match its hash: it was edited, or an earlier link was", eventID, seq)
				r.BadSeq, r.BadEventID = seq, eventID
				return nil
			}
			r.Checked++
			want++
		}
		if err := rows.Err(); err != nil {
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
			WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)`).Scan(&r.Unchained, &stray)
		if err != nil {
			return err
		}
		if stray != nil {
			r.Problem = fmt.Sprintf("event %d is not in the chain although its transaction finished: it was inserted out of order", *stray)
			r.BadEventID = *stray
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("verify audit chain: %w", err)
	}
	return r, nil
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
