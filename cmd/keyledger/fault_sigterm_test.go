package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestFaultSIGTERMDuringRequests sends SIGTERM while API and browser
// reveals are in flight. Each reveal is slowed to ~300 ms by a trigger on
// the audit insert, so a dozen are mid-transaction at the signal. They must
// all finish with 200 and their value; new connections are refused as soon
// as the shutdown begins; the exit code is 0; and the audit log holds
// exactly one key.reveal event per reveal answered 200.
func TestFaultSIGTERMDuringRequests(t *testing.T) {
	keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	id, value := seedKey(t, st, lead, "sigterm")
	const apiWorkers, browserWorkers = 8, 4
	tokens := make([]string, apiWorkers)
	for i := range tokens {
		tokens[i] = mintToken(t, st, lead, "read", "reveal")
	}
	srv, base := serveAt(t, dbEnv(url, key))
	waitReady(t, srv, base)
	browsers := make([]*browser, browserWorkers)
	for i := range browsers {
		// No keep-alive: every request is a new connection, so "refused"
		// is unambiguous once the listener is closed.
		browsers[i] = signInBrowser(t, base, lead.Email, false)
	}
	before := countAudit(t, pool, keyledger.ActionKeyReveal)

	superExec(t, url, `CREATE FUNCTION fault_slow_reveal() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$;
		CREATE TRIGGER fault_slow_reveal BEFORE INSERT ON audit_events FOR EACH ROW
			WHEN (NEW.action = 'key.reveal') EXECUTE FUNCTION fault_slow_reveal()`)

	rec := &recorder{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	worker := func(kind string, do func() outcome) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := do()
				o.kind = kind
				rec.add(o)
				if o.err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	for _, token := range tokens {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableKeepAlives = true
		c := &http.Client{Timeout: 30 * time.Second, Transport: tr}
		worker("api-reveal", func() outcome {
			o := outcome{start: time.Now()}
			var v string
			o.status, v, o.body, o.err = apiReveal(c, base, token, id)
			o.end = time.Now()
			if o.status == http.StatusOK && v != value {
				o.err = fmt.Errorf("wrong value")
			}
			return o
		})
	}
	for _, b := range browsers {
		worker("browser-reveal", func() outcome {
			o := outcome{start: time.Now()}
			o.status, o.body, o.err = b.reveal(id)
			o.end = time.Now()
			if o.status == http.StatusOK && !strings.Contains(string(o.body), value) {
				o.err = fmt.Errorf("reveal page lacks the value")
			}
			return o
		})
	}

	// Signal when audit INSERTs are sleeping in the trigger: the reveals
	// in those batches, and those queued behind them, are certainly in
	// flight. Reveals share batched INSERTs (as many at once as the
	// server has cores, at least two), so two sleeping backends mean
	// most workers are waiting on one.
	time.Sleep(time.Second)
	inflightAtTerm := 0
	for d := time.Now().Add(10 * time.Second); inflightAtTerm < 2; time.Sleep(5 * time.Millisecond) {
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event = 'PgSleep'`).Scan(&inflightAtTerm); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(d) {
			t.Fatalf("only %d reveals in flight after 10s", inflightAtTerm)
		}
	}
	termAt := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once the shutdown has begun, while the
	// requests in flight are still being answered.
	var refusedAt time.Time
	for d := time.Now().Add(2 * time.Second); time.Now().Before(d); time.Sleep(2 * time.Millisecond) {
		if dialRefused(base) {
			refusedAt = time.Now()
			break
		}
	}
	code := srv.wait(t, 30*time.Second)
	exitAt := time.Now()
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if refusedAt.IsZero() {
		t.Fatal("new connections were still accepted 2s after SIGTERM")
	}
	if !strings.Contains(srv.output.String(), `"msg":"stopped"`) {
		t.Errorf("no stop message in the logs")
	}

	var answered200, doneAfterTerm int
	var lastEnd time.Time
	for _, o := range rec.snapshot() {
		if o.status == http.StatusOK && o.err == nil {
			answered200++
			if o.end.After(termAt) {
				doneAfterTerm++
				if o.end.After(lastEnd) {
					lastEnd = o.end
				}
			}
		}
		switch {
		case o.err != nil && o.status == 0:
			// No answer at all: only a connection refused or reset before
			// a handler saw the request is acceptable.
			if !refused(o.err) {
				t.Errorf("%s sent %s after SIGTERM: %v", o.kind, o.start.Sub(termAt).Round(time.Millisecond), o.err)
			}
		case o.err != nil:
			t.Errorf("%s: %v", o.kind, o.err)
		case o.status != http.StatusOK:
			t.Errorf("%s sent %s after SIGTERM answered %d: %.300s", o.kind, o.start.Sub(termAt).Round(time.Millisecond), o.status, o.body)
		case o.start.After(refusedAt):
			t.Errorf("%s sent %s after connections were refused was answered 200", o.kind, o.start.Sub(refusedAt))
		}
	}
	t.Logf("%d reveals answered 200; %d audit INSERTs (each holding one or more reveals) were in flight at SIGTERM, %d answered 200 after it, the last %s after it; new connections refused %s after it; exited %s after it",
		answered200, inflightAtTerm, doneAfterTerm, lastEnd.Sub(termAt).Round(time.Millisecond), refusedAt.Sub(termAt).Round(time.Millisecond), exitAt.Sub(termAt).Round(time.Millisecond))
	// At least one reveal per INSERT in flight at the signal was answered.
	if doneAfterTerm < inflightAtTerm {
		t.Errorf("%d reveals were in flight at SIGTERM but only %d were answered 200 after it", inflightAtTerm, doneAfterTerm)
	}
	if !refusedAt.Before(lastEnd) {
		t.Errorf("connections were refused only %s after SIGTERM, after the in-flight requests ended (%s)",
			refusedAt.Sub(termAt), lastEnd.Sub(termAt))
	}
	if n := countAudit(t, pool, keyledger.ActionKeyReveal) - before; n != answered200 {
		t.Errorf("%d key.reveal events, clients got %d reveals answered 200", n, answered200)
	}
	checkNoHalfWrittenRows(t, st, pool)
}
