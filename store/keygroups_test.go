package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// groupFixture: "OpenAI" in checkout in all three environments (the
// production one spelled "openai": names group after normalization),
// "OpenAI" in search in development only, and "Stripe" in checkout in
// staging and production.
func groupFixture(t *testing.T, clk *clock) (*fixture, *keyledger.User) {
	f := newFixture(t, store.Options{Now: clk.Now})
	alice := f.user(t, "alice@example.com", keyledger.RoleLead)
	for _, k := range []struct{ name, project, env, prefix, days string }{
		{"OpenAI", "checkout", "production", "sk-proj-", "30"},
		{"OpenAI", "checkout", "development", "sk-proj-", "1"},
		{"openai", "checkout", "staging", "sk-proj-", ""},
		{"OpenAI", "search", "development", "sk-proj-", ""},
		{"Stripe", "checkout", "staging", "sk_test_", "10"},
		{"Stripe", "checkout", "production", "sk_test_", ""},
	} {
		f.key(t, alice, keyledger.KeyInput{Name: k.name, Project: k.project, Environment: k.env, OwnerEmail: alice.Email,
			Value: secretValue(t, k.prefix), RotationDays: k.days})
	}
	return f, alice
}

// groupRows renders a page as "name/project: env env…" lines.
func groupRows(p store.KeyGroupPage) []string {
	var out []string
	for _, g := range p.Groups {
		line := g.Name + "/" + g.Project + ":"
		for _, k := range g.Keys {
			line += " " + k.Environment
		}
		out = append(out, line)
	}
	return out
}

func TestListKeyGroups(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f, alice := groupFixture(t, clk)
	ctx := t.Context()
	// Two days on, the 1-day development key is overdue and the 10-day
	// Stripe key due soon.
	clk.Advance(48 * time.Hour)
	tests := []struct {
		name          string
		filter        store.KeyFilter
		want          []string
		matching, all int
	}{
		{"all: one row per name and project, environments in their order", store.KeyFilter{},
			[]string{"OpenAI/checkout: development staging production", "OpenAI/search: development", "Stripe/checkout: staging production"}, 6, 6},
		{"environment keeps the rows that have one, with that key only", store.KeyFilter{Environment: "production"},
			[]string{"OpenAI/checkout: production", "Stripe/checkout: production"}, 2, 6},
		{"project", store.KeyFilter{Project: "search"}, []string{"OpenAI/search: development"}, 1, 6},
		{"search", store.KeyFilter{Q: "stripe"}, []string{"Stripe/checkout: staging production"}, 2, 6},
		{"overdue: the row, with the overdue key only", store.KeyFilter{Status: "overdue"}, []string{"OpenAI/checkout: development"}, 1, 6},
		{"due soon", store.KeyFilter{Status: "due_soon"}, []string{"Stripe/checkout: staging"}, 1, 6},
		{"nothing matches", store.KeyFilter{Q: "no such key"}, nil, 0, 6},
		{"sorted by name, descending", store.KeyFilter{Sort: "name", Desc: true},
			[]string{"Stripe/checkout: staging production", "OpenAI/search: development", "OpenAI/checkout: development staging production"}, 6, 6},
		{"sorted by rotate-by: the soonest key of each row", store.KeyFilter{Sort: "rotate_by"},
			[]string{"OpenAI/checkout: development staging production", "Stripe/checkout: staging production", "OpenAI/search: development"}, 6, 6},
		{"archived", store.KeyFilter{Status: "archived"}, nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.s.ListKeyGroups(ctx, as(alice), tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := groupRows(p); !slices.Equal(got, tc.want) {
				t.Errorf("rows %q, want %q", got, tc.want)
			}
			if p.Matching != tc.matching || p.All != tc.all || p.TotalGroups != len(tc.want) {
				t.Errorf("counts: %d matching of %d, %d rows; want %d of %d, %d rows", p.Matching, p.All, p.TotalGroups, tc.matching, tc.all, len(tc.want))
			}
		})
	}
	for _, sort := range append(store.KeySorts(), "", "bogus", "name; DROP TABLE keys") {
		for _, desc := range []bool{false, true} {
			p, err := f.s.ListKeyGroups(ctx, as(alice), store.KeyFilter{Sort: sort, Desc: desc})
			if err != nil || len(p.Groups) != 3 || p.Matching != 6 {
				t.Errorf("sort %q desc %v: %d rows, %d keys, %v", sort, desc, len(p.Groups), p.Matching, err)
			}
		}
	}
}

func TestListKeyGroupsPages(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFixture(t, store.Options{Now: clk.Now})
	alice := f.user(t, "alice@example.com", keyledger.RoleLead)
	// 5 names in two environments each: 10 keys, 5 rows.
	for i := range 5 {
		for _, e := range []string{"development", "production"} {
			f.key(t, alice, keyledger.KeyInput{Name: fmt.Sprintf("key %d", i), Project: "p", Environment: e, OwnerEmail: alice.Email,
				Value: secretValue(t, "sk-proj-")})
		}
	}
	ctx := t.Context()
	var seen []string
	for page := 1; page <= 3; page++ {
		p, err := f.s.ListKeyGroups(ctx, as(alice), store.KeyFilter{Page: page, PerPage: 2})
		if err != nil {
			t.Fatal(err)
		}
		if p.TotalGroups != 5 || p.Matching != 10 || p.Pages() != 3 {
			t.Errorf("page %d: %d rows, %d keys, %d pages; want 5, 10, 3", page, p.TotalGroups, p.Matching, p.Pages())
		}
		for _, g := range p.Groups {
			if len(g.Keys) != 2 {
				t.Errorf("page %d: %s has %d keys, want both environments", page, g.Name, len(g.Keys))
			}
			seen = append(seen, g.Name)
		}
	}
	if want := []string{"key 0", "key 1", "key 2", "key 3", "key 4"}; !slices.Equal(seen, want) {
		t.Errorf("pages list %q, want %q", seen, want)
	}
	// Past the end: no rows, the counts still right.
	p, err := f.s.ListKeyGroups(ctx, as(alice), store.KeyFilter{Page: 9, PerPage: 2})
	if err != nil || len(p.Groups) != 0 || p.TotalGroups != 5 || p.Matching != 10 || p.All != 10 {
		t.Errorf("page 9: %d rows, counts %d/%d/%d, %v", len(p.Groups), p.TotalGroups, p.Matching, p.All, err)
	}
	// A deactivated reader is refused.
	bob := f.user(t, "bob@example.com", keyledger.RoleMember)
	bob.Status = keyledger.UserDeactivated
	if _, err := f.s.ListKeyGroups(ctx, as(bob), store.KeyFilter{}); keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
		t.Errorf("deactivated reader: %v", err)
	}
}
