package web_test

import (
	"context"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// section returns the element that carries data-testid=id, up to the end
// of its tag name's first closing tag; enough for the flat blocks the key
// page draws.
func section(t *testing.T, body, tag, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<` + tag + `[^>]*data-testid="` + regexp.QuoteMeta(id) + `"[^>]*>.*?</` + tag + `>`).FindString(body)
	if m == "" {
		t.Fatalf("no <%s data-testid=%q> on the page", tag, id)
	}
	return m
}

// The key page: an overdue banner counted by the store's clock, a danger
// zone apart from Edit, and "who has seen this key" one line per person.
func TestKeyPageHierarchy(t *testing.T) {
	t.Parallel()
	// The store's clock runs two days ahead of the wall clock once the
	// reveals are done: the page must count by it, not by time.Now.
	var offset atomic.Int64
	env := newEnvWithStore(t, store.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	ctx := context.Background()
	k := env.createKey("member", "development", "hier-key", "sk-test-hierarchy-0123456789abcdef")
	// 29 days and a few hours past due by the wall clock, 31 by the store's.
	if _, err := env.Pool.Exec(ctx, `UPDATE keys SET rotate_by = now() - interval '29 days 5 hours' WHERE id = $1`, k.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := env.Store.Reveal(ctx, actorOf(env, "member"), k.ID, "debugging "+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Store.Reveal(ctx, actorOf(env, "member2"), k.ID, "one look"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.DeactivateUser(ctx, keyledger.SystemActor("test"), "member2@example.com"); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(2 * 24 * time.Hour))
	lead := env.client().login("lead")
	resp, body := lead.get("/keys/" + k.ID)
	if resp.StatusCode != 200 {
		t.Fatalf("key page: %d", resp.StatusCode)
	}

	t.Run("overdue banner", func(t *testing.T) {
		b := section(t, body, "p", "overdue-banner")
		if !strings.Contains(b, "Overdue by 31 days") || !strings.Contains(b, `href="/keys/`+k.ID+`/rotate"`) {
			t.Errorf("overdue banner = %s", b)
		}
	})
	t.Run("danger zone apart from edit", func(t *testing.T) {
		dz := section(t, body, "section", "danger-zone")
		if !strings.Contains(dz, `data-testid="archive"`) {
			t.Errorf("danger zone has no archive: %s", dz)
		}
		if strings.Contains(dz, "/edit") {
			t.Errorf("Edit sits inside the danger zone: %s", dz)
		}
		if !strings.Contains(body, `href="/keys/`+k.ID+`/edit"`) {
			t.Error("no Edit link on the page")
		}
		if strings.Index(body, `data-testid="reveal-submit"`) > strings.Index(body, "<h2>Details</h2>") {
			t.Error("Reveal comes after Details")
		}
		// One primary action: every other button in main is secondary.
		main := body[strings.Index(body, "<main"):strings.Index(body, "</main>")]
		for _, b := range regexp.MustCompile(`<(?:button|a)[^>]*(?:type="submit"|role="button")[^>]*>`).FindAllString(main, -1) {
			primary := !strings.Contains(b, "secondary") && !strings.Contains(b, "outline")
			if primary != strings.Contains(b, `data-testid="reveal-submit"`) {
				t.Errorf("primary=%v for %s; want Reveal the only primary action", primary, b)
			}
		}
	})
	t.Run("viewers collapsed", func(t *testing.T) {
		rows := regexp.MustCompile(`(?s)<tr data-testid="reveal-row">.*?</tr>`).FindAllString(body, -1)
		if len(rows) != 2 {
			t.Fatalf("%d viewer rows, want 2 (one per person): %v", len(rows), rows)
		}
		// Newest first: member2 looked last.
		if !strings.Contains(rows[0], "Member2") || !strings.Contains(rows[0], "1 reveal") || !strings.Contains(rows[0], "deactivated") {
			t.Errorf("member2's row = %s", rows[0])
		}
		if !strings.Contains(rows[1], "Member") || !strings.Contains(rows[1], "3 reveals") || strings.Contains(rows[1], "deactivated") {
			t.Errorf("member's row = %s", rows[1])
		}
		for i, r := range rows {
			if !strings.Contains(r, "2 days ago") {
				t.Errorf("row %d does not say its last reveal was 2 days ago (store clock): %s", i, r)
			}
		}
		if !strings.Contains(rows[1], "debugging c") {
			t.Errorf("member's row does not show the latest reason: %s", rows[1])
		}
	})
	t.Run("development is not marked sensitive", func(t *testing.T) {
		if strings.Contains(body, `data-testid="sensitive-env"`) {
			t.Error("a development key is marked as a sensitive environment")
		}
	})
}

// Production is marked by its environment's sensitive flag, on the key
// page and on the reveal result.
func TestKeyPageSensitiveEnvironment(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	k := env.createKey("lead", "production", "prod-key", "sk-test-production-0123456789abcdef")
	lead := env.client().login("lead")
	_, body := lead.get("/keys/" + k.ID)
	if !strings.Contains(body, `data-testid="sensitive-env"`) {
		t.Error("the production key page is not marked sensitive")
	}
	if strings.Contains(body, `data-testid="overdue-banner"`) {
		t.Error("a fresh key shows an overdue banner")
	}
	resp, page := lead.post("/keys/"+k.ID+"/reveal", map[string][]string{"reason": {"incident 42"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `data-testid="secret-value"`) {
		t.Fatalf("reveal: %d", resp.StatusCode)
	}
	if !strings.Contains(page, `data-testid="sensitive-env"`) {
		t.Error("the reveal result of a production key is not marked sensitive")
	}
}
