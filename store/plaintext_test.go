package store_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// atRestFixture registers keys with distinctive values, reveals them, edits
// and archives some, and runs the audit chain, so that every table that can
// hold anything holds something. It returns the values.
func atRestFixture(t *testing.T, s *store.Store) []string {
	t.Helper()
	ctx := t.Context()
	admin, err := s.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: "admin@example.com", Role: keyledger.RoleAdmin, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := s.CreateUser(ctx, as(admin), keyledger.NewUser{Email: "alice@example.com", Role: keyledger.RoleMember, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	pem := "-----BEGIN PRIVATE KEY-----\n" + secretValue(t, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") + "\n" +
		secretValue(t, "") + "\n-----END PRIVATE KEY-----"
	values := []string{
		secretValue(t, "sk-proj-"),
		secretValue(t, "sk-ant-api03-"),
		secretValue(t, "sk_live_"),
		secretValue(t, "ghp_"),
		secretValue(t, "AKIA"),
		secretValue(t, "zz-unknown-"),
		pem,
		"pässwörd-ünïcødé-" + secretValue(t, "鍵-"),
	}
	envs := []string{"development", "staging", "production"}
	var ids []string
	for i, v := range values {
		res, err := s.CreateKey(ctx, as(alice), keyledger.KeyInput{Name: fmt.Sprintf("key %d", i), Project: "atrest",
			Environment: envs[i%3], OwnerEmail: alice.Email, Value: v, Description: "registered for the at-rest scan"})
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		ids = append(ids, res.Key.ID)
		r, err := s.Reveal(ctx, as(alice), res.Key.ID, "at-rest scan")
		if err != nil || r.Value != v {
			t.Fatalf("reveal %d: %q, %v", i, r.Value, err)
		}
	}
	// A refused duplicate goes through the fingerprint path with the value.
	if _, err := s.CreateKey(ctx, as(alice), devKey("dup", alice.Email, values[0])); keyledger.ErrorCode(err) != keyledger.ECONFLICT {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.UpdateKey(ctx, as(alice), ids[1], keyledger.KeyInput{Project: "atrest2", OwnerEmail: alice.Email}); err != nil {
		t.Fatal(err)
	}
	if err := s.ArchiveKey(ctx, as(alice), ids[2]); err != nil {
		t.Fatal(err)
	}
	sess, err := s.StartSession(ctx, keyledger.Actor{}, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, keyledger.Actor{IP: "192.0.2.1"}, alice.Email, values[0]); err != store.ErrBadCredentials {
		// Someone pastes a key into the password field: still nothing stored.
		t.Fatalf("sign-in with a key as password: %v", err)
	}
	if _, err := s.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	return append(values, sess)
}

func checkNoLeak(t *testing.T, where string, text []byte, values []string) {
	t.Helper()
	lower := bytes.ToLower(text)
	for i, v := range values {
		for form, needle := range leakForms(v) {
			hay := text
			if isHexForm(form) {
				hay, needle = lower, strings.ToLower(needle)
			}
			if bytes.Contains(hay, []byte(needle)) {
				t.Errorf("%s holds the %s of value %d", where, form, i)
			}
		}
	}
}

func TestNoPlaintextAtRest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	values := atRestFixture(t, f.s)
	// Sanity: the scan does find what is there (the masked hint's prefix).
	if found := findInDatabase(t, f.pool, map[string]string{"known": "sk-proj-…"}); len(found) == 0 {
		t.Fatal("the scan found not even the masked hint; it is not looking")
	}
	for i, v := range values {
		if found := findInDatabase(t, f.pool, leakForms(v)); len(found) > 0 {
			t.Errorf("value %d is at rest in the database: %v", i, found)
		}
	}
	// Every key's version is sealed: ciphertext is not the value's length
	// of plain bytes, and all four envelope parts are there.
	if n := f.count(t, `SELECT count(*) FROM key_versions WHERE destroyed_at IS NULL AND
		(kek_id IS NULL OR octet_length(wrapped_dek) NOT IN (60, 72) OR octet_length(nonce) <> 24 OR ciphertext IS NULL)`); n != 0 {
		t.Errorf("%d live versions without a complete envelope", n)
	}
}

// pgDump finds a pg_dump whose major version matches the server's.
func pgDump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var major string
	if err := pool.QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int / 10000").Scan(&major); err != nil {
		t.Fatal(err)
	}
	candidates := []string{"/usr/lib/postgresql/" + major + "/bin/pg_dump"}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	re := regexp.MustCompile(`\) (\d+)`)
	for _, c := range candidates {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		out, err := exec.Command(c, "--version").Output()
		if m := re.FindSubmatch(out); err == nil && m != nil && string(m[1]) == major {
			return c
		}
	}
	t.Fatalf("no pg_dump for PostgreSQL %s among %v: install postgresql-client-%s", major, candidates, major)
	return ""
}

func TestNoPlaintextInDump(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := storetest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := store.New(ctx, pool, storetest.NewKeyring(t), store.Options{PasswordParams: storetest.FastPasswords()})
	if err != nil {
		t.Fatal(err)
	}
	values := atRestFixture(t, s)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, pgDump(t, pool), "--no-password", "--dbname", url)
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	// Sanity: the dump has the data.
	for _, want := range []string{"COPY public.key_versions", "COPY public.audit_events", "at-rest scan", "alice@example.com"} {
		if !bytes.Contains(dump, []byte(want)) {
			t.Fatalf("dump (%d bytes) lacks %q", len(dump), want)
		}
	}
	checkNoLeak(t, "pg_dump", dump, values)
}
