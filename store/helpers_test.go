package store_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// testPassword is long enough for CheckPassword and easy to grep for.
const testPassword = "correct horse battery staple 7"

// clock is a controllable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	// Microsecond precision, like timestamptz, so times round-trip exactly.
	return &clock{t: time.Now().UTC().Truncate(time.Microsecond)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a store on its own database with a few users.
type fixture struct {
	s    *store.Store
	pool *pgxpool.Pool
}

func newFixture(t testing.TB, opts store.Options) *fixture {
	t.Helper()
	s, pool := storetest.NewStore(t, opts)
	return &fixture{s: s, pool: pool}
}

// user creates an active user through the system actor.
func (f *fixture) user(t testing.TB, email string, role keyledger.Role) *keyledger.User {
	t.Helper()
	u, err := f.s.CreateUser(context.Background(), keyledger.SystemActor("test"), keyledger.NewUser{
		Email: email, Name: strings.SplitN(email, "@", 2)[0], Role: role, Password: testPassword,
	})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

// key registers a key and fails the test on error.
func (f *fixture) key(t testing.TB, by *keyledger.User, in keyledger.KeyInput) *keyledger.Key {
	t.Helper()
	res, err := f.s.CreateKey(context.Background(), as(by), in)
	if err != nil {
		t.Fatalf("create key %q: %v", in.Name, err)
	}
	return res.Key
}

func (f *fixture) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// tableCounts snapshots the row counts that a refused operation must leave
// alone.
func (f *fixture) tableCounts(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"keys", "key_versions", "audit_events", "users", "sessions", "login_failures"} {
		out[tbl] = f.count(t, "SELECT count(*) FROM "+tbl)
	}
	return out
}

// asSuperuser runs sql in one transaction with user triggers disabled (the
// way someone with direct database access would), and returns the number of
// rows it touched. SET LOCAL ends with the transaction, so the pooled
// connection goes back as it was.
func (f *fixture) asSuperuser(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		t.Fatalf("superuser %q: %v", sql, err)
	}
	return n
}

func as(u *keyledger.User) keyledger.Actor {
	// Stepped up "now" whatever a test clock says: step-up has its own tests.
	return keyledger.Actor{User: u, IP: "192.0.2.10", UserAgent: "store-test/1.0", StepUpAt: time.Now().AddDate(50, 0, 0)}
}

func devKey(name, owner, value string) keyledger.KeyInput {
	return keyledger.KeyInput{Name: name, Project: "billing", Environment: "development", OwnerEmail: owner, Value: value}
}

// secretValue returns a random, distinctive key value: prefix and 40
// alphanumerics.
func secretValue(t testing.TB, prefix string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 40)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// leakForms are the spellings of a secret that must not appear at rest:
// the value, its inner part (what the masked hint does not show), and its
// hex and base64 encodings.
func leakForms(value string) map[string]string {
	forms := map[string]string{
		"value":        value,
		"hex":          hex.EncodeToString([]byte(value)),
		"base64":       base64.StdEncoding.EncodeToString([]byte(value)),
		"base64-raw":   base64.RawStdEncoding.EncodeToString([]byte(value)),
		"base64url":    base64.URLEncoding.EncodeToString([]byte(value)),
		"base64rawurl": base64.RawURLEncoding.EncodeToString([]byte(value)),
	}
	// A 16-character window from the middle: neither the public prefix nor
	// the last 4 characters the hint shows.
	if r := []rune(value); len(r) >= 32 {
		mid := string(r[len(r)/2-8 : len(r)/2+8])
		forms["middle"] = mid
		forms["middle-hex"] = hex.EncodeToString([]byte(mid))
	}
	return forms
}

// findInDatabase reads every column of every table in the public schema as
// text and returns where any needle appears (case-insensitively for hex).
func findInDatabase(t testing.TB, pool *pgxpool.Pool, needles map[string]string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ table, column, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.table, &c.column, &c.typ)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 40 {
		t.Fatalf("only %d columns found; is the schema there?", len(cols))
	}
	var found []string
	for _, c := range cols {
		q := fmt.Sprintf("SELECT %s::text FROM %s WHERE %s IS NOT NULL",
			pgx.Identifier{c.column}.Sanitize(), pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.column}.Sanitize())
		rows, err := pool.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for _, text := range texts {
			lower := strings.ToLower(text)
			for name, needle := range needles {
				if strings.Contains(text, needle) || strings.Contains(lower, strings.ToLower(needle)) && isHexForm(name) {
					found = append(found, fmt.Sprintf("%s.%s (%s) holds the %s", c.table, c.column, c.typ, name))
				}
			}
		}
	}
	return found
}

func isHexForm(name string) bool { return strings.HasSuffix(name, "hex") }

// wantCode fails unless err carries the domain error code want.
func wantCode(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	if got := keyledger.ErrorCode(err); got != want {
		t.Fatalf("error code %s, want %s: %v", got, want, err)
	}
}

// wantCodeError is wantCode for tests that go on to read the error's
// message or fields. (wantCode returns nothing, so that errcheck does not
// take its 150 plain assertions for ignored errors.)
func wantCodeError(t testing.TB, err error, want string) *keyledger.Error {
	t.Helper()
	wantCode(t, err, want)
	var e *keyledger.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is not a *keyledger.Error", err, err)
	}
	return e
}

// wantField fails unless err is code with a message for field.
func wantField(t testing.TB, err error, code, field string) {
	t.Helper()
	wantCode(t, err, code)
	if _, ok := keyledger.FieldErrors(err)[field]; !ok {
		t.Fatalf("error has no message for field %q: %v", field, err)
	}
}

// verifyChained chains and verifies until every event is in the chain (a
// transaction elsewhere on the server, even in another database, holds the
// chain back until it ends), failing on any reported problem.
func verifyChained(t testing.TB, s *store.Store) store.AuditReport {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := s.VerifyAudit(context.Background())
		if err != nil {
			t.Fatalf("VerifyAudit: %v", err)
		}
		if !r.OK() {
			t.Fatalf("VerifyAudit on an untouched log: %+v", r)
		}
		if r.Unchained == 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still unchained after 15s: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unchangedButAudit fails unless after equals before except for exactly
// audits more audit events: a refused duplicate value is itself audited
// (key.duplicate_value) while nothing else may change.
func unchangedButAudit(t testing.TB, before, after map[string]int, audits int) {
	t.Helper()
	if got := after["audit_events"] - before["audit_events"]; got != audits {
		t.Errorf("%d audit events written, want %d", got, audits)
	}
	a := map[string]int{}
	for k, v := range after {
		a[k] = v
	}
	a["audit_events"] = before["audit_events"]
	if fmt.Sprint(a) != fmt.Sprint(before) {
		t.Errorf("tables changed: %v -> %v", before, after)
	}
}
