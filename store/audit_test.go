package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// auditFixture performs a mix of audited actions and returns the fixture
// and the event ids in chain order.
func auditFixture(t *testing.T) (*revealFixture, []int64) {
	t.Helper()
	f := newRevealFixture(t)
	ctx := t.Context()
	for _, u := range []*keyledger.User{f.owner, f.lead, f.admin} {
		if _, err := f.s.Reveal(ctx, as(u), f.keys["production"].ID, "audit fixture "+u.Email); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.Authenticate(ctx, keyledger.Actor{IP: "203.0.113.1"}, f.other.Email, "wrong password, sorry"); err != store.ErrBadCredentials {
		t.Fatal(err)
	}
	if _, err := f.s.UpdateKey(ctx, as(f.lead), f.keys["staging"].ID, keyledger.KeyInput{Project: "other", OwnerEmail: f.owner.Email}); err != nil {
		t.Fatal(err)
	}
	verifyChained(t, f.s)
	rows, err := f.pool.Query(ctx, "SELECT event_id FROM audit_chain ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) < 14 {
		t.Fatalf("only %d events chained", len(ids))
	}
	return f, ids
}

func TestVerifyAuditEmptyAndFresh(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	r, err := f.s.VerifyAudit(ctx)
	if err != nil || !r.OK() || r.Checked != 0 || r.Unchained != 0 {
		t.Fatalf("empty log: %+v, %v", r, err)
	}
	f.user(t, "alice@example.com", keyledger.RoleMember)
	r, err = f.s.VerifyAudit(ctx)
	if err != nil {
		t.Fatalf("VerifyAudit after one event: %v", err)
	}
	if !r.OK() || r.Checked+r.Unchained != 1 {
		t.Errorf("after one event: %+v", r)
	}
}

func TestChainAndVerifyAudit(t *testing.T) {
	t.Parallel()
	f, ids := auditFixture(t)
	ctx := t.Context()
	total := f.count(t, "SELECT count(*) FROM audit_events")
	r := verifyChained(t, f.s)
	if r.Checked != int64(total) || len(ids) != total {
		t.Errorf("Checked %d, chain %d, want %d events", r.Checked, len(ids), total)
	}
	// Chaining again finds nothing new; the chain is stable.
	n, err := f.s.ChainAudit(ctx)
	if err != nil || n != 0 {
		t.Errorf("second ChainAudit chained %d, %v", n, err)
	}
	// New events extend it.
	if _, err := f.s.Reveal(ctx, as(f.owner), f.keys["development"].ID, ""); err != nil {
		t.Fatal(err)
	}
	r = verifyChained(t, f.s)
	if r.Checked != int64(total+1) {
		t.Errorf("Checked %d after one more event, want %d", r.Checked, total+1)
	}
	// Every event is in the chain exactly once, in a gapless sequence.
	if n := f.count(t, "SELECT count(*) FROM audit_chain c JOIN audit_events e ON e.id = c.event_id AND e.txid = c.event_txid"); n != total+1 {
		t.Errorf("%d chain links match their event, want %d", n, total+1)
	}
	if n := f.count(t, "SELECT max(seq) - min(seq) + 1 - count(*) FROM audit_chain"); n != 0 {
		t.Errorf("chain has %d gaps", n)
	}
}

// Another replica chaining at the moment `audit verify` runs must not make
// an intact log look tampered with: events it has not chained yet are
// unchained, not "inserted out of order".
func TestVerifyAuditWhileAnotherChainerHoldsTheLock(t *testing.T) {
	t.Parallel()
	f, _ := auditFixture(t)
	ctx := t.Context()
	if _, err := f.s.Reveal(ctx, as(f.owner), f.keys["development"].ID, ""); err != nil {
		t.Fatal(err)
	}
	conn, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", store.ChainLock); err != nil {
		t.Fatal(err)
	}
	r, err := f.s.VerifyAudit(ctx)
	if _, uerr := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", store.ChainLock); uerr != nil {
		t.Fatal(uerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Errorf("intact log reported as tampered while another chainer held the lock: %+v", r)
	}
	if r.Unchained != 1 {
		t.Errorf("Unchained %d, want 1", r.Unchained)
	}
	verifyChained(t, f.s)
}

func TestVerifyAuditDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// tamper edits the log as a superuser; target is the index into
		// the chain of the event it changes. It returns the event id that
		// VerifyAudit must name.
		tamper  func(t *testing.T, f *revealFixture, ids []int64) int64
		problem []string
	}{
		{"reason edited", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			var id int64
			if err := f.pool.QueryRow(t.Context(), "SELECT id FROM audit_events WHERE action = $1 AND actor_id = $2", keyledger.ActionKeyReveal, f.lead.ID).Scan(&id); err != nil {
				t.Fatal(err)
			}
			f.asSuperuser(t, "UPDATE audit_events SET reason = 'nothing to see' WHERE id = $1", id)
			return id
		}, []string{"does not match its hash"}},
		{"actor rewritten", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, "UPDATE audit_events SET actor_email = 'someone@else.example' WHERE id = $1", ids[7])
			return ids[7]
		}, []string{"does not match its hash"}},
		{"details edited", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, `UPDATE audit_events SET details = details || '{"x": 1}' WHERE id = $1`, ids[3])
			return ids[3]
		}, []string{"does not match its hash"}},
		{"time moved by a millisecond", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, "UPDATE audit_events SET at = at + interval '1 millisecond' WHERE id = $1", ids[5])
			return ids[5]
		}, []string{"does not match its hash"}},
		{"first event edited", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, "UPDATE audit_events SET ip = '10.0.0.1' WHERE id = $1", ids[0])
			return ids[0]
		}, []string{"does not match its hash"}},
		{"reveal event deleted", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			var id int64
			if err := f.pool.QueryRow(t.Context(), "SELECT id FROM audit_events WHERE action = $1 AND actor_id = $2", keyledger.ActionKeyReveal, f.admin.ID).Scan(&id); err != nil {
				t.Fatal(err)
			}
			f.asSuperuser(t, "DELETE FROM audit_events WHERE id = $1", id)
			return id
		}, []string{"missing", "deleted"}},
		{"last event deleted", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			last := ids[len(ids)-1]
			f.asSuperuser(t, "DELETE FROM audit_events WHERE id = $1", last)
			return last
		}, []string{"missing", "deleted"}},
		{"chain link deleted", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, "DELETE FROM audit_chain WHERE seq = 6")
			return ids[6] // the link after the gap
		}, []string{"chain link 6 is missing"}},
		{"first chain link deleted", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, "DELETE FROM audit_chain WHERE seq = 1")
			return ids[1]
		}, []string{"chain link 1 is missing"}},
		{"event and its link deleted", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, "DELETE FROM audit_events WHERE id = $1", ids[4])
			f.asSuperuser(t, "DELETE FROM audit_chain WHERE event_id = $1", ids[4])
			return ids[5]
		}, []string{"chain link 5 is missing"}},
		{"two events swapped in the chain", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			f.asSuperuser(t, `UPDATE audit_chain SET event_id = -1 WHERE event_id = $1`, ids[2])
			f.asSuperuser(t, `UPDATE audit_chain SET event_id = $1 WHERE event_id = $2`, ids[2], ids[3])
			f.asSuperuser(t, `UPDATE audit_chain SET event_id = $1 WHERE event_id = -1`, ids[3])
			return ids[3] // now at link 3
		}, []string{"does not match its hash"}},
		{"event forged into the past", func(t *testing.T, f *revealFixture, ids []int64) int64 {
			var id int64
			if err := f.pool.QueryRow(t.Context(), `INSERT INTO audit_events (txid, actor_email, action, reason) VALUES ('3'::xid8, 'admin@example.com', 'key.reveal', 'forged')
				RETURNING id`).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		}, []string{"not in the chain", "out of order"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, ids := auditFixture(t)
			want := tc.tamper(t, f, ids)
			r, err := f.s.VerifyAudit(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() {
				t.Fatalf("tampering not detected: %+v", r)
			}
			if r.BadEventID != want {
				t.Errorf("BadEventID %d, want %d (%s)", r.BadEventID, want, r.Problem)
			}
			for _, p := range tc.problem {
				if !strings.Contains(r.Problem, p) {
					t.Errorf("problem %q lacks %q", r.Problem, p)
				}
			}
			// More events on top do not heal it.
			if _, err := f.s.Reveal(t.Context(), as(f.owner), f.keys["development"].ID, ""); err != nil {
				t.Fatal(err)
			}
			r2, err := f.s.VerifyAudit(t.Context())
			if err != nil || r2.OK() || r2.BadEventID != r.BadEventID {
				t.Errorf("after more events: %+v, %v", r2, err)
			}
		})
	}
}

func TestAuditAppendOnly(t *testing.T) {
	t.Parallel()
	f, ids := auditFixture(t)
	ctx := t.Context()
	before := f.count(t, "SELECT count(*) FROM audit_events")
	for _, sql := range []string{
		"UPDATE audit_events SET reason = 'x'",
		"UPDATE audit_events SET reason = 'x' WHERE id = " + fmt.Sprint(ids[0]),
		"DELETE FROM audit_events",
		"DELETE FROM audit_events WHERE id = " + fmt.Sprint(ids[0]),
		"TRUNCATE audit_events",
		"UPDATE audit_chain SET hash = '\\x00'",
		"DELETE FROM audit_chain",
		"TRUNCATE audit_chain",
	} {
		_, err := f.pool.Exec(ctx, sql)
		if err == nil {
			t.Errorf("%s: allowed", sql)
			continue
		}
		if !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only refusal", sql, err)
		}
	}
	if after := f.count(t, "SELECT count(*) FROM audit_events"); after != before {
		t.Errorf("events %d -> %d", before, after)
	}
	verifyChained(t, f.s)
}

func TestListAudit(t *testing.T) {
	t.Parallel()
	f, _ := auditFixture(t)
	ctx := t.Context()
	t.Run("who may read", func(t *testing.T) {
		for _, u := range []*keyledger.User{f.owner, f.other} {
			_, err := f.s.ListAudit(ctx, as(u), store.AuditFilter{})
			wantCode(t, err, keyledger.EFORBIDDEN)
		}
		_, err := f.s.ListAudit(ctx, keyledger.SystemActor("cli"), store.AuditFilter{})
		wantCode(t, err, keyledger.EFORBIDDEN)
		gone := *f.gone
		gone.Status = keyledger.UserDeactivated
		_, err = f.s.ListAudit(ctx, as(&gone), store.AuditFilter{})
		wantCode(t, err, keyledger.EFORBIDDEN)
		for _, u := range []*keyledger.User{f.lead, f.admin} {
			if _, err := f.s.ListAudit(ctx, as(u), store.AuditFilter{}); err != nil {
				t.Errorf("%s: %v", u.Role, err)
			}
		}
	})
	all, err := f.s.ListAudit(ctx, as(f.lead), store.AuditFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if total := f.count(t, "SELECT count(*) FROM audit_events"); len(all.Events) != total || all.NextBeforeID != 0 {
		t.Fatalf("%d events listed (next %d), want all %d", len(all.Events), all.NextBeforeID, total)
	}
	if !slices.IsSortedFunc(all.Events, func(a, b keyledger.AuditEvent) int { return int(b.ID - a.ID) }) {
		t.Error("not newest first")
	}
	prod := f.keys["production"]
	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			name   string
			filter store.AuditFilter
			check  func(keyledger.AuditEvent) bool
			want   int
		}{
			{"action", store.AuditFilter{Action: keyledger.ActionKeyReveal}, func(e keyledger.AuditEvent) bool { return e.Action == keyledger.ActionKeyReveal }, 3},
			{"actor", store.AuditFilter{ActorEmail: "LEAD@example.com"}, func(e keyledger.AuditEvent) bool { return e.ActorEmail == f.lead.Email }, 2},
			{"key", store.AuditFilter{KeyID: prod.ID}, func(e keyledger.AuditEvent) bool { return e.KeyID == prod.ID }, 4},
			{"key and action", store.AuditFilter{KeyID: prod.ID, Action: keyledger.ActionKeyCreate}, func(e keyledger.AuditEvent) bool {
				return e.KeyID == prod.ID && e.Action == keyledger.ActionKeyCreate
			}, 1},
			{"environment", store.AuditFilter{Environment: "Staging"}, func(e keyledger.AuditEvent) bool { return e.Environment == "staging" }, 2},
			{"garbage key id", store.AuditFilter{KeyID: "' OR 1=1 --"}, nil, 0},
			{"unknown action", store.AuditFilter{Action: "key.reveal' OR '1'='1"}, nil, 0},
			{"future", store.AuditFilter{Since: time.Now().Add(time.Hour)}, nil, 0},
			{"past", store.AuditFilter{Until: time.Now().Add(-time.Hour)}, nil, 0},
			{"window", store.AuditFilter{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, func(keyledger.AuditEvent) bool { return true }, len(all.Events)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				page, err := f.s.ListAudit(ctx, as(f.admin), tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Events) != tc.want {
					t.Errorf("%d events, want %d", len(page.Events), tc.want)
				}
				for _, e := range page.Events {
					if tc.check != nil && !tc.check(e) {
						t.Errorf("event does not match the filter: %+v", e)
					}
				}
			})
		}
	})
	t.Run("reveal event fields", func(t *testing.T) {
		page, err := f.s.ListAudit(ctx, as(f.admin), store.AuditFilter{Action: keyledger.ActionKeyReveal, ActorEmail: f.owner.Email})
		if err != nil || len(page.Events) != 1 {
			t.Fatalf("%d events, %v", len(page.Events), err)
		}
		e := page.Events[0]
		if e.ActorID != f.owner.ID || e.KeyID != prod.ID || e.KeyName != prod.Name || e.KeyVersion != 1 || e.Environment != "production" ||
			e.Reason != "audit fixture owner@example.com" || e.IP != "192.0.2.10" || e.UserAgent != "store-test/1.0" || e.Details != "{}" ||
			e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("reveal event %+v", e)
		}
	})
	t.Run("paging", func(t *testing.T) {
		var got []int64
		before := int64(0)
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			page, err := f.s.ListAudit(ctx, as(f.lead), store.AuditFilter{Limit: 4, BeforeID: before})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Events) > 4 {
				t.Fatalf("page of %d events, limit 4", len(page.Events))
			}
			for _, e := range page.Events {
				got = append(got, e.ID)
			}
			if page.NextBeforeID == 0 {
				break
			}
			if page.NextBeforeID != page.Events[len(page.Events)-1].ID {
				t.Errorf("NextBeforeID %d, want the last id on the page", page.NextBeforeID)
			}
			before = page.NextBeforeID
		}
		var want []int64
		for _, e := range all.Events {
			want = append(want, e.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged ids %v, want %v", got, want)
		}
		// Paging combines with filters.
		page, err := f.s.ListAudit(ctx, as(f.lead), store.AuditFilter{Action: keyledger.ActionKeyReveal, Limit: 2})
		if err != nil || len(page.Events) != 2 || page.NextBeforeID == 0 {
			t.Fatalf("first reveal page: %d events, next %d, %v", len(page.Events), page.NextBeforeID, err)
		}
		page, err = f.s.ListAudit(ctx, as(f.lead), store.AuditFilter{Action: keyledger.ActionKeyReveal, Limit: 2, BeforeID: page.NextBeforeID})
		if err != nil || len(page.Events) != 1 || page.NextBeforeID != 0 {
			t.Errorf("second reveal page: %d events, next %d, %v", len(page.Events), page.NextBeforeID, err)
		}
	})
}

// No audit event ever holds a value, whatever happened.
func TestAuditHoldsNoValues(t *testing.T) {
	t.Parallel()
	f, _ := auditFixture(t)
	page, err := f.s.ListAudit(context.Background(), as(f.admin), store.AuditFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Events {
		text := fmt.Sprintf("%+v", e)
		for env, v := range f.values {
			for form, needle := range leakForms(v) {
				if strings.Contains(text, needle) {
					t.Errorf("event %d holds the %s of the %s value", e.ID, form, env)
				}
			}
		}
	}
}
