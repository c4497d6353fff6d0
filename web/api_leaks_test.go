package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// TestAPILeakCheck: POST /leaks/check answers, per candidate index that is
// a stored value, the key's metadata and whether it is the current
// version; unknown candidates are not answered; one audit event per call
// carries the counts, never a candidate.
func TestAPILeakCheck(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	ctx := context.Background()
	k, oldValue := a.key("member", "production", "prod openai")
	newValue := a.secret()
	if _, err := env.Store.RotateKey(ctx, keyledger.Actor{User: env.Users["member"]}, k.ID, keyledger.RotateInput{Value: newValue, GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	unknown := "sk-proj-" + authzRand(40)
	tok, tokID := a.tokenWithID("member2", "read")

	r := a.do(tok, http.MethodPost, "/api/v1/leaks/check", wire.LeakCheckRequest{Candidates: []string{unknown, oldValue, "  " + newValue + "\n"}})
	a.want(r, http.StatusOK, "")
	var got wire.LeakCheckResult
	r.decode(t, &got)
	if len(got.Hits) != 2 {
		t.Fatalf("hits %+v, want 2", got.Hits)
	}
	byIndex := map[int]wire.LeakHit{}
	for _, h := range got.Hits {
		byIndex[h.Index] = h
	}
	old, cur := byIndex[1], byIndex[2]
	if old.KeyID != k.ID || old.Name != "prod openai" || old.Environment != "production" || old.Project != "checkout" ||
		old.OwnerEmail != "member@example.com" || old.Version != 1 || old.Current {
		t.Errorf("old version hit %+v", old)
	}
	if cur.KeyID != k.ID || cur.Version != 2 || !cur.Current {
		t.Errorf("current version hit %+v", cur)
	}
	for _, v := range []string{oldValue, newValue, unknown} {
		if strings.Contains(string(r.Body), v) {
			t.Error("the answer carries a candidate")
		}
	}

	// One audit event, with counts and the token, never the candidates.
	evs := a.events("", keyledger.ActionLeakCheck)
	if len(evs) != 1 {
		t.Fatalf("%d leak.check events, want 1", len(evs))
	}
	e := evs[0]
	if e.ActorEmail != "member2@example.com" || viaToken(t, e) != tokID {
		t.Errorf("event actor %q via %d", e.ActorEmail, viaToken(t, e))
	}
	var details struct{ Candidates, Hits int }
	if err := json.Unmarshal([]byte(e.Details), &details); err != nil || details.Candidates != 3 || details.Hits != 2 {
		t.Errorf("details %s: want 3 candidates, 2 hits (%v)", e.Details, err)
	}
	for _, v := range []string{oldValue, newValue, unknown} {
		if strings.Contains(mustJSONString(t, e), v) {
			t.Error("the audit event carries a candidate")
		}
	}

	// Scope: read is needed.
	a.want(a.do(a.token("member2", "reveal"), http.MethodPost, "/api/v1/leaks/check", wire.LeakCheckRequest{Candidates: []string{oldValue}}), http.StatusForbidden, "forbidden")
	// Limits: too many candidates, or one too long, is a 422 with the field.
	many := make([]string, keyledger.MaxLeakCandidates+1)
	for i := range many {
		many[i] = "x"
	}
	r = a.do(tok, http.MethodPost, "/api/v1/leaks/check", wire.LeakCheckRequest{Candidates: many})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("candidates") == "" {
		t.Errorf("no candidates field error: %s", r.Body)
	}
	r = a.do(tok, http.MethodPost, "/api/v1/leaks/check", wire.LeakCheckRequest{Candidates: []string{strings.Repeat("a", keyledger.MaxLeakCandidateBytes+1)}})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if len(a.events("", keyledger.ActionLeakCheck)) != 1 {
		t.Error("a refused call was audited")
	}
}

func mustJSONString(t testing.TB, v any) string { return string(mustJSON(t, v)) }
