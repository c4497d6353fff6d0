package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// TestLeakPageProviderRevokeAsksForStepUp: on the incident of a leaked
// production key that OpenAI lists, the "Revoke at provider" form of an
// owner whose last password is older than 10 minutes carries a step_up
// field (as the key page's form does), and sending it with the password
// revokes the key at OpenAI; a fresh session's form has no such field.
func TestLeakPageProviderRevokeAsksForStepUp(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	ctx := context.Background()
	leaked := "sk-proj-" + authzRand(20) + "Lk9p"
	k := env.createKey("member", "production", "checkout", leaked)
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_checkout", Name: "checkout"})
	atOpenAI := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "checkout", RedactedValue: providertest.OpenAIRedact(leaked)})
	fakes.connectOpenAI(t, env, "acme")
	r, err := env.Store.ReportLeak(ctx, actorOf(env, "member2"), keyledger.LeakReportInput{Value: leaked, Where: "a CI log"})
	if err != nil || !r.Matched {
		t.Fatalf("report: %+v, %v", r, err)
	}
	incident := "/leaks/" + strconv.FormatInt(r.IncidentID, 10)

	fresh := env.client().login("member")
	_, page := fresh.get(incident)
	if !strings.Contains(page, `data-testid="leak-provider-revoke"`) || strings.Contains(page, `name="step_up"`) {
		t.Errorf("a fresh session's incident page:\n%s", authzMain(page, ""))
	}

	owner := env.client().login("member")
	ageStepUp(t, env, env.Users["member"])
	_, page = owner.get(incident)
	form := regexp.MustCompile(`(?s)<form method="post" action="/keys/` + k.ID + `/provider-revoke".*?</form>`).FindString(page)
	if !strings.Contains(form, `name="step_up"`) || !strings.Contains(form, `type="password"`) || !strings.Contains(form, `<label for="leak-pr-step-up">`) {
		t.Fatalf("the revoke form of a stale session has no step_up field:\n%s", form)
	}
	pk := regexp.MustCompile(`name="provider_key" value="(\d+)"`).FindStringSubmatch(form)
	reason := regexp.MustCompile(`name="reason" value="([^"]+)"`).FindStringSubmatch(form)
	if pk == nil || reason == nil {
		t.Fatalf("form fields: %s", form)
	}

	// Without the password: refused, nothing revoked.
	resp, _ := owner.post("/keys/"+k.ID+"/provider-revoke", url.Values{"reason": {reason[1]}, "provider_key": {pk[1]}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("without step_up: %d", resp.StatusCode)
	}
	if _, ok := fakes.openai.Key(atOpenAI); !ok {
		t.Fatal("revoked without a step-up")
	}
	resp, _ = owner.post("/keys/"+k.ID+"/provider-revoke", url.Values{"reason": {reason[1]}, "provider_key": {pk[1]}, "step_up": {Password}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?provider_revoked=1" {
		t.Fatalf("with step_up: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, ok := fakes.openai.Key(atOpenAI); ok {
		t.Error("OpenAI still has the leaked key")
	}
}
