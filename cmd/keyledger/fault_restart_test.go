package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/pgcluster"
)

// TestFaultPostgresRestartDuringLoad takes Postgres away for about two
// seconds under a steady load of API reveals, browser reveals and API key
// creations, then starts it again: once stopped the way an operator
// restarts it (fast shutdown), once killed like a crash (SIGKILL of every
// server process). Requests during the outage must fail cleanly with 503
// (never 500, never hang), the same server process must recover on its
// own, and the database must hold no half-written rows: every key whole,
// the audit chain intact, one key per 201, and one key.reveal event per
// reveal answered 200. After a clean stop that last count is exact; after a
// crash a reveal whose COMMIT reached the disk just before the crash may be
// audited although its client got a 503 (never the reverse), so there it
// may exceed the 200s by at most the reveals in flight at the crash.
func TestFaultPostgresRestartDuringLoad(t *testing.T) {
	keyledgerBinary(t)
	t.Run("stop", func(t *testing.T) { restartUnderLoad(t, false) })
	t.Run("crash", func(t *testing.T) { restartUnderLoad(t, true) })
}

func restartUnderLoad(t *testing.T, crash bool) {
	cluster := pgcluster.Start(t)
	url := cluster.CreateDatabase("keyledger")
	key := newKEK(t)
	mustRun(t, dbEnv(url, key), "", "migrate")
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	const nKeys = 3
	ids := make([]string, nKeys)
	values := map[string]string{}
	for i := range ids {
		id, v := seedKey(t, st, lead, fmt.Sprintf("restart-%d", i))
		ids[i], values[id] = id, v
	}
	const apiWorkers, browserWorkers = 4, 2
	revealTokens := make([]string, apiWorkers)
	for i := range revealTokens {
		revealTokens[i] = mintToken(t, st, lead, "read", "reveal")
	}
	writeToken := mintToken(t, st, lead, "read", "write")

	srv, base := serveAt(t, dbEnv(url, key))
	waitReady(t, srv, base)
	browsers := make([]*browser, browserWorkers)
	for i := range browsers {
		browsers[i] = signInBrowser(t, base, lead.Email, true)
	}

	// The load: every worker loops until stop, pacing itself below the
	// API's per-token rate limit.
	rec := &recorder{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := func() *http.Client { return &http.Client{Timeout: 10 * time.Second} }
	loop := func(pause time.Duration, do func(i int) outcome) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec.add(do(i))
				time.Sleep(pause)
			}
		}()
	}
	for w := range apiWorkers {
		c, token := client(), revealTokens[w]
		loop(60*time.Millisecond, func(i int) outcome {
			id := ids[(w+i)%nKeys]
			o := outcome{kind: "api-reveal", start: time.Now()}
			var value string
			o.status, value, o.body, o.err = apiReveal(c, base, token, id)
			o.end = time.Now()
			if o.status == http.StatusOK && value != values[id] {
				o.err = fmt.Errorf("revealed a wrong value for %s", id)
			}
			return o
		})
	}
	for w, b := range browsers {
		loop(20*time.Millisecond, func(i int) outcome {
			id := ids[(w+i)%nKeys]
			o := outcome{kind: "browser-reveal", start: time.Now()}
			o.status, o.body, o.err = b.reveal(id)
			o.end = time.Now()
			if o.status == http.StatusOK && !strings.Contains(string(o.body), values[id]) {
				o.err = fmt.Errorf("reveal page of %s lacks the value", id)
			}
			return o
		})
	}
	wc := client()
	loop(100*time.Millisecond, func(i int) outcome {
		o := outcome{kind: "api-create", start: time.Now()}
		o.status, o.body, o.err = apiCall(wc, http.MethodPost, base, writeToken, "/api/v1/keys", map[string]any{
			"name": fmt.Sprintf("created-%d-%s", i, randomHex(t, 3)), "project": "fault", "environment": "development",
			"owner": lead.Email, "value": "sk-test-" + randomHex(t, 20)})
		o.end = time.Now()
		return o
	})

	time.Sleep(time.Second)
	stopAt := time.Now()
	if crash {
		cluster.Kill()
	} else {
		cluster.Stop()
	}
	// Killing every backend takes a few milliseconds; a request sent in
	// them can still commit. After this none can.
	downAt := time.Now()
	time.Sleep(500 * time.Millisecond)
	probe := client()
	if code, body, err := getStatus(probe, base, "/readyz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d %q %v, want 503", code, body, err)
	}
	if code, _, err := getStatus(probe, base, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz during the outage: %d %v, want 200", code, err)
	}
	time.Sleep(1500 * time.Millisecond)
	startAt := time.Now()
	cluster.Start()
	upAt := time.Now()

	// Recovered: every kind of request succeeds again, without a restart
	// of keyledger.
	deadline := upAt.Add(15 * time.Second)
	var recovered time.Time
	for recovered.IsZero() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		seen := map[string]int{}
		for _, o := range rec.snapshot() {
			if o.start.After(upAt) && (o.status == http.StatusOK || o.status == http.StatusCreated) {
				seen[o.kind]++
			}
		}
		if seen["api-reveal"] >= 3 && seen["browser-reveal"] >= 3 && seen["api-create"] >= 2 {
			recovered = time.Now()
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if srv.exited() {
		t.Fatalf("keyledger exited during the outage:\n%s", srv.output)
	}
	if recovered.IsZero() {
		t.Fatalf("no recovery within 15s of Postgres coming back")
	}
	if code, body, err := getStatus(probe, base, "/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz after recovery: %d %q %v", code, body, err)
	}

	// Classify what the clients saw.
	all := rec.snapshot()
	var ok, unavailable, reveals200, creates201 int
	var firstOKAfter time.Time
	var last503 time.Time
	var slowest time.Duration
	for _, o := range all {
		d := o.end.Sub(o.start)
		slowest = max(slowest, d)
		if d > 5*time.Second {
			t.Errorf("%s took %s (started %s after the stop)", o.kind, d.Round(time.Millisecond), o.start.Sub(stopAt).Round(time.Millisecond))
		}
		switch {
		case o.err != nil:
			t.Errorf("%s: %v (status %d)", o.kind, o.err, o.status)
		case o.status == http.StatusOK || o.status == http.StatusCreated:
			ok++
			if o.kind == "api-create" {
				creates201++
			} else {
				reveals200++
			}
			if o.start.After(upAt) && (firstOKAfter.IsZero() || o.end.Before(firstOKAfter)) {
				firstOKAfter = o.end
			}
		case o.status == http.StatusServiceUnavailable:
			unavailable++
			if o.end.After(last503) {
				last503 = o.end
			}
			if o.end.Before(stopAt) {
				t.Errorf("%s answered 503 %s before Postgres was stopped", o.kind, stopAt.Sub(o.end))
			}
			if strings.HasPrefix(o.kind, "api") {
				if code, _ := apiErrorOf(o.body); code != keyledger.EUNAVAILABLE {
					t.Errorf("%s 503 with error code %q: %s", o.kind, code, o.body)
				}
			}
		default:
			t.Errorf("%s: status %d (started %s after the stop): %.300s", o.kind, o.status, o.start.Sub(stopAt).Round(time.Millisecond), o.body)
		}
	}
	t.Logf("%d requests: %d ok (%d reveals, %d creates), %d answered 503; slowest %s; stop→start %s; first success %s after Postgres was up, last 503 %s after",
		len(all), ok, reveals200, creates201, unavailable, slowest.Round(time.Millisecond), startAt.Sub(stopAt).Round(time.Millisecond),
		firstOKAfter.Sub(upAt).Round(time.Millisecond), last503.Sub(upAt).Round(time.Millisecond))
	if unavailable == 0 {
		t.Error("no request saw the outage (no 503)")
	}
	if last503.After(upAt.Add(5 * time.Second)) {
		t.Errorf("still answering 503 %s after Postgres came back", last503.Sub(upAt))
	}

	// No half-written rows: the server's audit agrees with what clients
	// were told, and every key is whole.
	ctx := context.Background()
	inflight := 0 // reveals sent before the database was fully down and answered 503
	for _, o := range all {
		if o.kind != "api-create" && o.start.Before(downAt) && o.status == http.StatusServiceUnavailable {
			inflight++
		}
	}
	switch n := countAudit(t, pool, keyledger.ActionKeyReveal); {
	case !crash && n != reveals200:
		t.Errorf("%d key.reveal events, clients got %d reveals answered 200", n, reveals200)
	case crash && (n < reveals200 || n > reveals200+inflight):
		t.Errorf("%d key.reveal events, clients got %d reveals answered 200 (%d were in flight at the crash)", n, reveals200, inflight)
	case n != reveals200:
		t.Logf("%d key.reveal events for %d reveals answered 200: %d reveal(s) in flight at the crash committed", n, reveals200, n-reveals200)
	}
	var keys int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keys").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	createsInflight := 0
	for _, o := range all {
		if o.kind == "api-create" && o.start.Before(downAt) && o.status == http.StatusServiceUnavailable {
			createsInflight++
		}
	}
	if keys < nKeys+creates201 || keys > nKeys+creates201+createsInflight || (!crash && keys != nKeys+creates201) {
		t.Errorf("%d keys, want %d seeded + %d created", keys, nKeys, creates201)
	}
	checkNoHalfWrittenRows(t, st, pool)
}
