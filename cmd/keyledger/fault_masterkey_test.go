package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
	"github.com/pquerna/otp/totp"
)

// TestFaultMasterKeyRotationKilled kills `keyledger masterkey rotate` with
// SIGKILL halfway, in the middle of its second batch, and runs it again:
// the first batch stays committed, the interrupted one leaves no trace, the
// second run finishes the rest (and the instance secrets and TOTP
// secrets), and then every key reveals with only the new master key loaded
// and a two-factor user signs in, with a TOTP code, through the server.
func TestFaultMasterKeyRotationKilled(t *testing.T) {
	t.Parallel()
	keyledgerBinary(t)
	ctx := context.Background()
	dbURL := storetest.NewDatabase(t)
	keyA, keyB := newKEK(t), newKEK(t)
	idA, idB := kekID(t, keyA), kekID(t, keyB)
	stA, pool := openStore(t, dbURL, keyA, fastOpts())
	lead := seedUser(t, stA, "lead@example.com", keyledger.RoleLead)
	twofa := seedUser(t, stA, "twofa@example.com", keyledger.RoleMember)
	totpSecret := enrollTOTP(t, stA, twofa)

	const nKeys = 3000
	seedStart := time.Now()
	ids := make([]string, nKeys)
	values := make([]string, nKeys)
	var wg sync.WaitGroup
	errs := make(chan error, nKeys)
	const seeders = 8
	for w := range seeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := keyledger.Actor{User: lead, StepUpAt: time.Now()}
			for i := w; i < nKeys; i += seeders {
				v := fmt.Sprintf("sk-test-%04d-%s", i, randomHex(t, 12))
				res, err := stA.CreateKey(ctx, actor, keyledger.KeyInput{Name: fmt.Sprintf("key-%04d", i), Project: "rotation",
					Environment: "development", OwnerEmail: lead.Email, Value: v})
				if err != nil {
					errs <- err
					return
				}
				ids[i], values[i] = res.Key.ID, v
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("seed: %v", err)
	}
	t.Logf("seeded %d keys in %s", nKeys, time.Since(seedStart).Round(time.Millisecond))
	under := func(kek string) (versions, secrets, totps int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM key_versions WHERE kek_id = $1 AND destroyed_at IS NULL),
			(SELECT count(*) FROM instance_secrets WHERE kek_id = $1), (SELECT count(*) FROM users WHERE totp_kek_id = $1)`, kek).Scan(&versions, &secrets, &totps); err != nil {
			t.Fatal(err)
		}
		return
	}
	nSecrets := 0
	if v, s, o := under(idA); v != nKeys || s == 0 || o != 1 {
		t.Fatalf("under key A: %d versions, %d instance secrets, %d TOTP secrets; want %d, some, 1", v, s, o, nKeys)
	} else {
		nSecrets = s
	}

	// A gate, so that the kill lands mid-batch every time: from the 601st
	// re-wrap on (the second batch of 500), each UPDATE waits for an
	// advisory lock this test holds.
	superExec(t, dbURL, `CREATE SEQUENCE fault_rotation_gate;
		CREATE FUNCTION fault_rotation_gate() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('fault_rotation_gate') > 600 THEN PERFORM pg_advisory_xact_lock_shared(7177); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fault_rotation_gate BEFORE UPDATE ON key_versions FOR EACH ROW EXECUTE FUNCTION fault_rotation_gate()`)
	gate, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close(ctx)
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_lock(7177)"); err != nil {
		t.Fatal(err)
	}

	env := dbEnv(dbURL, keyB+","+keyA)
	rot := start(t, env, "masterkey", "rotate")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(rot.output.String(), "key_versions: re-wrapped 500,") {
		if rot.exited() || time.Now().After(deadline) {
			t.Fatalf("no progress report from rotate:\n%s", rot.output)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Wait until the second batch is really under way (blocked at the gate
	// with 100 rows re-wrapped but not committed), then kill.
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 7177 AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if rot.exited() || time.Now().After(deadline) {
			t.Fatalf("rotate never reached its second batch:\n%s", rot.output)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := rot.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	code := rot.wait(t, 10*time.Second)
	t.Logf("killed rotate (exit %d); it had printed:\n%s", code, rot.output)
	if strings.Contains(rot.output.String(), "done:") {
		t.Fatal("rotate finished before it was killed")
	}
	// Half done: the first batch committed, the second left no trace.
	if v, s, o := under(idB); v != 500 || s != 0 || o != 0 {
		t.Errorf("after the kill: %d versions, %d instance secrets and %d TOTP secrets under B, want 500, 0 and 0", v, s, o)
	}
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_unlock(7177)"); err != nil {
		t.Fatal(err)
	}
	// DROP waits for the killed run's transaction to be rolled back.
	superExec(t, dbURL, `DROP TRIGGER fault_rotation_gate ON key_versions; DROP FUNCTION fault_rotation_gate(); DROP SEQUENCE fault_rotation_gate`)
	if v, _, _ := under(idB); v != 500 {
		t.Errorf("after the killed run's rollback: %d versions under B, want 500", v)
	}

	// Run again: it resumes and completes.
	code, out := runBinary(t, env, "masterkey", "rotate")
	if code != 0 {
		t.Fatalf("second rotate: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		fmt.Sprintf("key_versions: re-wrapped %d, 0 left", nKeys-500),
		fmt.Sprintf("instance_secrets: re-wrapped %d, 0 left", nSecrets),
		"users.totp: re-wrapped 1, 0 left",
		fmt.Sprintf("done: %d data keys re-wrapped", nKeys-500+nSecrets+1),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("second rotate does not say %q:\n%s", want, out)
		}
	}
	if v, s, o := under(idA); v != 0 || s != 0 || o != 0 {
		t.Errorf("after the second run: %d versions, %d instance secrets and %d TOTP secrets still under A", v, s, o)
	}

	// Only B: the store opens (canary, instance secrets) and every key
	// reveals its value.
	stB, _ := openStore(t, dbURL, keyB, fastOpts())
	revealStart := time.Now()
	bad := make(chan string, nKeys)
	for w := range seeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := keyledger.Actor{User: lead, StepUpAt: time.Now()}
			for i := w; i < nKeys; i += seeders {
				r, err := stB.Reveal(ctx, actor, ids[i], "after master-key rotation")
				if err != nil || r.Value != values[i] {
					bad <- fmt.Sprintf("key %d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(bad)
	n := 0
	for msg := range bad {
		n++
		if n <= 5 {
			t.Error(msg)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d keys do not reveal with only the new master key", n, nKeys)
	}
	t.Logf("revealed all %d keys with only B in %s", nKeys, time.Since(revealStart).Round(time.Millisecond))

	// And through a server started with only B.
	token := mintToken(t, stB, lead, "read", "reveal")
	srv, base := serveAt(t, dbEnv(dbURL, keyB))
	waitReady(t, srv, base)
	c := &http.Client{Timeout: 10 * time.Second}
	for _, i := range []int{0, 499, 500, 599, 600, 1234, nKeys - 1} {
		code, v, body, err := apiReveal(c, base, token, ids[i])
		if err != nil || code != http.StatusOK || v != values[i] {
			t.Errorf("API reveal of key %d with only B: %d %v %.300s", i, code, err, body)
		}
	}
	// The finding: a two-factor sign-in after the old key is gone.
	if code, path, body := signInWithTOTP(t, base, twofa.Email, totpSecret); code != http.StatusOK || path != "/keys" {
		t.Errorf("two-factor sign-in with only B: %d at %s\n%.500s", code, path, body)
	}
	checkNoHalfWrittenRows(t, stB, pool)
	var rotations int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionMasterKeyRotate).Scan(&rotations); err != nil || rotations != 1 {
		t.Errorf("%d master-key rotation events (%v), want 1: only the run that completed", rotations, err)
	}
}

// enrollTOTP turns two-factor sign-in on for u through the store and
// returns the secret.
func enrollTOTP(t testing.TB, st *store.Store, u *keyledger.User) string {
	t.Helper()
	ctx := context.Background()
	actor := keyledger.Actor{User: u, StepUpAt: time.Now()}
	enr, err := st.BeginTOTP(ctx, actor, "keyledger-fault-test")
	if err != nil {
		t.Fatalf("begin TOTP for %s: %v", u.Email, err)
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmTOTP(ctx, actor, "", code, ""); err != nil {
		t.Fatalf("confirm TOTP for %s: %v", u.Email, err)
	}
	return enr.Secret
}

// signInWithTOTP signs in through the login form and the two-factor form
// and returns the status and path of the page it ends on. The code is the
// next step's, which the server accepts (one step of skew) and which is
// later than the one that confirmed the enrolment.
func signInWithTOTP(t testing.TB, base, email, secret string) (int, string, []byte) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, base: base}
	resp, err := b.c.PostForm(base+"/login", url.Values{"email": {email}, "password": {cliPassword}, "_csrf": {b.csrfFrom(t, "/login")}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.Request.URL.Path != "/login/2fa" {
		t.Fatalf("password step for %s ended at %s (%d), want /login/2fa", email, resp.Request.URL.Path, resp.StatusCode)
	}
	code, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = b.c.PostForm(base+"/login/2fa", url.Values{"code": {code}, "_csrf": {b.csrfFrom(t, "/login/2fa")}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.Path, body
}
