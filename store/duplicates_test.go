package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestDuplicateValueIsNoOracle: a value already stored is named only to
// someone who may reveal the key holding it. Anyone else learns only that
// keyledger has it; the hit is audited on the existing key and its owner
// and the leads are told that the value is held outside the reveal policy.
// Registration and rotation alike; nothing is stored.
func TestDuplicateValueIsNoOracle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := context.Background()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	lead := f.user(t, "lead@example.com", keyledger.RoleLead)
	member := f.user(t, "member@example.com", keyledger.RoleMember)
	const secret = "sk-proj-PRODsecretvalue0123456789abcdefXyZ9"
	prod := f.key(t, admin, keyledger.KeyInput{Name: "admin-prod-openai", Project: "core", Environment: "production", OwnerEmail: admin.Email, Value: secret})
	mine := f.key(t, member, keyledger.KeyInput{Name: "member-dev", Project: "checkout", Environment: "development", OwnerEmail: member.Email, Value: "sk-proj-memberdev0123456789abcdefghijXyZ9"})
	rows := func() int {
		var n int
		if err := f.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM key_versions)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := rows()
	leaks := func(what string, err error) {
		t.Helper()
		all := err.Error()
		for _, m := range keyledger.FieldErrors(err) {
			all += m
		}
		for _, s := range []string{"admin-prod-openai", "core", "production", secret} {
			if strings.Contains(all, s) {
				t.Errorf("%s: the answer names %q: %s", what, s, all)
			}
		}
		if !strings.Contains(keyledger.FieldErrors(err)["value"], "already stored in keyledger") || !strings.Contains(keyledger.FieldErrors(err)["value"], "lead") {
			t.Errorf("%s: the field error does not say the value is stored or to ask a lead: %q", what, keyledger.FieldErrors(err)["value"])
		}
	}

	// A member registers the production value in development.
	_, err := f.s.CreateKey(ctx, as(member), keyledger.KeyInput{Name: "copy", Project: "checkout", Environment: "development", OwnerEmail: member.Email, Value: secret})
	if keyledger.ErrorCode(err) != keyledger.ECONFLICT {
		t.Fatalf("member registering a stored value: %v, want a conflict", err)
	}
	leaks("member register", err)
	// The member rotates their own key to it.
	_, err = f.s.RotateKey(ctx, as(member), mine.ID, keyledger.RotateInput{Value: secret})
	if keyledger.ErrorCode(err) != keyledger.ECONFLICT {
		t.Fatalf("member rotating to a stored value: %v, want a conflict", err)
	}
	leaks("member rotate", err)
	// A lead may reveal it: told which key holds it.
	_, err = f.s.CreateKey(ctx, as(lead), keyledger.KeyInput{Name: "copy", Project: "checkout", Environment: "staging", OwnerEmail: lead.Email, Value: secret})
	if keyledger.ErrorCode(err) != keyledger.ECONFLICT || !strings.Contains(keyledger.FieldErrors(err)["value"], `"admin-prod-openai"`) {
		t.Errorf("lead registering a stored value: %v, want a conflict naming the key", err)
	}
	if got := rows(); got != before {
		t.Errorf("%d keys and versions after refused duplicates, want %d", got, before)
	}

	// Audited on the existing key: who tried, where, how; never the value
	// or its fingerprint.
	evs, err := f.s.ListAudit(ctx, as(admin), store.AuditFilter{KeyID: prod.ID, Action: keyledger.ActionKeyDuplicateValue, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) != 3 {
		t.Fatalf("%d %s events on the existing key, want 3", len(evs.Events), keyledger.ActionKeyDuplicateValue)
	}
	var rawDetails string
	if err := f.pool.QueryRow(ctx, "SELECT string_agg(details::text, ' ') FROM audit_events WHERE action = $1", keyledger.ActionKeyDuplicateValue).Scan(&rawDetails); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"attempted_by": "member@example.com"`, `"environment": "development"`, `"via": "register"`, `"via": "rotate"`, `"may_reveal": false`, `"may_reveal": true`} {
		if !strings.Contains(rawDetails, want) {
			t.Errorf("audit details lack %s: %s", want, rawDetails)
		}
	}
	if strings.Contains(rawDetails, secret) || strings.Contains(rawDetails, "fingerprint") {
		t.Errorf("audit details carry the value or its fingerprint: %s", rawDetails)
	}

	// The owner and the leads are told, once per person who tried; the
	// lead who may reveal it triggers no alert.
	n := &fakeNotifier{}
	sent, err := f.s.SendValueAlerts(ctx, n, testLinks("https://keys.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	got := n.take()
	if sent != 1 || len(got) != 1 {
		t.Fatalf("sent %d alerts (%d notifications), want 1", sent, len(got))
	}
	a := got[0]
	if a.Kind != keyledger.AlertDuplicateValue || a.KeyID != prod.ID || a.AttemptedBy != member.Email || a.Attempts != 2 {
		t.Errorf("alert %+v", a)
	}
	if strings.Join(a.Recipients, ",") != "admin@example.com,lead@example.com" {
		t.Errorf("recipients %v, want the owner and the leads", a.Recipients)
	}
	if again, _ := f.s.SendValueAlerts(ctx, n, testLinks("")); again != 0 {
		t.Errorf("%d alerts sent twice", again)
	}
}
