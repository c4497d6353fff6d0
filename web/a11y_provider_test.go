package web_test

import (
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// a11yProviders puts the accessibility test's development key at the
// OpenAI fake with usage on several days (so the key page draws its
// charts and offers the revoke form), and a key member2 created in the
// dashboard (so member2's offboarding checklist has a provider item).
// The caller connects the fake and syncs usage.
func a11yProviders(t *testing.T, env *testEnv, fakes *providerFakes, devValue string) {
	t.Helper()
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_checkout", Name: "checkout"})
	now := env.Store.Now()
	id := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "OpenAI dev", RedactedValue: providertest.OpenAIRedact(devValue),
		LastUsedAt: now.Add(-2 * time.Hour), OwnerType: "user", OwnerEmail: "member@example.com"})
	today := keyledger.UTCDay(now)
	for i, n := range []int64{120, 0, 340, 90, 1200, 15, 0, 610} {
		if n > 0 {
			fakes.openai.AddUsage(providertest.OpenAIUsage{KeyID: id, Project: "proj_checkout", Day: today.AddDate(0, 0, -i*3), Requests: n, InputTokens: n * 800, OutputTokens: n * 120})
		}
	}
	fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "made in the dashboard", RedactedValue: "sk-proj-Qq...Zt4k",
		OwnerType: "user", OwnerEmail: "member2@example.com"})
}
