package main

import (
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestFaultSIGTERMPastGrace sends SIGTERM while reveals are stuck behind
// a table lock that outlasts KEYLEDGER_SHUTDOWN_GRACE=1s. Past the grace
// the stuck requests must be answered with a clear 503 (keyledger is
// shutting down, Retry-After), never 500 "closed pool" and never a cut
// connection; nothing is revealed or audited; and since every request got
// an answer and nothing was lost, the exit code is 0 (docs/operations.md).
func TestFaultSIGTERMPastGrace(t *testing.T) {
	keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	id, _ := seedKey(t, st, lead, "grace")
	tokens := []string{mintToken(t, st, lead, "read", "reveal"), mintToken(t, st, lead, "read", "reveal")}
	env := dbEnv(url, key)
	env["KEYLEDGER_SHUTDOWN_GRACE"] = "1s"
	srv, base := serveAt(t, env)
	waitReady(t, srv, base)
	b := signInBrowser(t, base, lead.Email, true)
	before := countAudit(t, pool, keyledger.ActionKeyReveal)

	release := holdLock(t, url, "key_versions")
	type answer struct {
		kind   string
		status int
		retry  string
		body   string
		err    error
	}
	answers := make(chan answer, 3)
	var wg sync.WaitGroup
	for _, token := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 40 * time.Second}
			resp, err := c.Do(revealRequest(t, base, token, id))
			if err != nil {
				answers <- answer{kind: "api", err: err}
				return
			}
			defer func() { _ = resp.Body.Close() }()
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			answers <- answer{kind: "api", status: resp.StatusCode, retry: resp.Header.Get("Retry-After"), body: string(buf[:n])}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		status, page, err := b.reveal(id)
		answers <- answer{kind: "browser", status: status, body: string(page), err: err}
	}()
	// All three are in flight: at least one backend waits for the lock
	// (the others may share its batch or queue behind it).
	waitLockWaiters(t, url, 1)
	time.Sleep(200 * time.Millisecond)
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := srv.wait(t, 20*time.Second)
	wg.Wait()
	close(answers)
	release()

	for a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("%s reveal in flight past the grace got no answer: %v", a.kind, a.err)
		case a.status != http.StatusServiceUnavailable:
			t.Errorf("%s reveal in flight past the grace: %d %.300s, want 503", a.kind, a.status, a.body)
		case !strings.Contains(a.body, "shutting down"):
			t.Errorf("%s reveal in flight past the grace: %.300s, want it to say keyledger is shutting down", a.kind, a.body)
		case a.kind == "api" && a.retry == "":
			t.Errorf("503 without Retry-After")
		}
	}
	out := srv.output.String()
	if strings.Contains(out, "closed pool") {
		t.Errorf("a request met the closed pool:\n%s", tailString(out, 4000))
	}
	if code != 0 {
		t.Errorf("exit code %d after a grace overrun where every request was answered, want 0", code)
	}
	if !strings.Contains(out, "shutdown grace") {
		t.Errorf("the logs do not say the shutdown grace was overrun")
	}
	if n := countAudit(t, pool, keyledger.ActionKeyReveal) - before; n != 0 {
		t.Errorf("%d key.reveal events for reveals answered 503", n)
	}
}
