package templates

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// TestKeyListAudienceCoversTheBody renders the key list body for many
// viewers over lists with either reveal policy: viewers whose
// KeyListAudience is the same must get the same HTML, or the server's
// kept bodies (store/epochcache.go) would show one viewer another's page.
// A template that starts reading more of the viewer fails here until
// KeyListAudience names it.
func TestKeyListAudienceCoversTheBody(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var viewers []*keyledger.User
	for i, role := range []keyledger.Role{keyledger.RoleMember, keyledger.RoleLead, keyledger.RoleAdmin} {
		for j, shell := range []keyledger.ShellFormat{"", keyledger.FormatBash, keyledger.FormatFish, keyledger.FormatDotenv} {
			for id := int64(1); id <= 3; id++ {
				viewers = append(viewers, &keyledger.User{ID: id, Email: fmt.Sprintf("v%d-%d-%d@example.com", i, j, id),
					Name: fmt.Sprintf("Viewer %d %d", i, j), Role: role, Status: keyledger.UserActive, Shell: shell,
					TOTPEnabled: id%2 == 0, CreatedAt: now.Add(-time.Duration(id) * time.Hour)})
			}
		}
	}
	open := keyledger.Environment{ID: 1, Name: "development", RevealPolicy: keyledger.RevealAnyUser}
	ownerOnly := keyledger.Environment{ID: 2, Name: "staging", RevealPolicy: keyledger.RevealOwnerLeadsAdmins}
	// Owner-only, but the quick copy is never offered there (a reason
	// and a password first): the person makes no difference.
	guarded := keyledger.Environment{ID: 3, Name: "production", RevealPolicy: keyledger.RevealOwnerLeadsAdmins, ReasonRequired: true, Sensitive: true}
	key := func(id string, env keyledger.Environment, owner int64, rotateIn time.Duration) keyledger.Key {
		return keyledger.Key{ID: id, Name: "openai", Project: "checkout", Provider: "openai", Environment: env.Name,
			EnvironmentID: env.ID, EnvironmentInfo: env, OwnerID: owner, OwnerEmail: fmt.Sprintf("o%d@example.com", owner),
			OwnerActive: true, MaskedHint: "sk-proj-…" + id[:4], RotateBy: now.Add(rotateIn)}
	}
	for _, envs := range [][]keyledger.Environment{{open}, {open, ownerOnly}, {ownerOnly}, {guarded}, {open, guarded}, {ownerOnly, guarded}} {
		var keys []keyledger.Key
		for i, e := range envs {
			keys = append(keys, key(fmt.Sprintf("%04d-a", i), e, 1, 5*24*time.Hour), key(fmt.Sprintf("%04d-b", i), e, 2, -3*24*time.Hour))
		}
		for _, first := range []bool{false, true} {
			v := KeyListView{Rows: []KeyRow{{Name: "openai", Project: "checkout", Keys: keys}}, Matching: len(keys), All: len(keys),
				Page: 1, Pages: 1, Columns: envs, Environments: envs}
			if first {
				v = KeyListView{} // the first-run page
			}
			bodies := map[string]string{}
			for _, u := range viewers {
				p := Page{User: u, CSRF: "csrf-hole", Now: now, Asset: func(n string) string { return "/static/" + n }}
				var sb strings.Builder
				if err := KeyListBody(p, v).Render(context.Background(), &sb); err != nil {
					t.Fatal(err)
				}
				a := KeyListAudience(u, v.Columns)
				if prev, ok := bodies[a]; ok && prev != sb.String() {
					t.Errorf("envs %v, first run %v: audience %q covers two different bodies (viewer %d, %s)", envNames(envs), first, a, u.ID, u.Role)
				}
				bodies[a] = sb.String()
			}
			if len(bodies) < 2 {
				t.Errorf("envs %v: %d audiences; the test would not notice a missing part", envNames(envs), len(bodies))
			}
		}
	}
}

func envNames(envs []keyledger.Environment) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.Name)
	}
	return out
}
