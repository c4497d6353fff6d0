package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// exportFixture: production holds two of owner's keys (two projects, same
// provider), one of member2's and one of the lead's; staging and
// development hold a few more; one production key is archived.
type exportFixture struct {
	*lcFixture
	member2 *keyledger.User
	values  map[string]string         // by key id
	keys    map[string]*keyledger.Key // by name
}

func newExportFixture(t *testing.T) *exportFixture {
	t.Helper()
	f := &exportFixture{lcFixture: newLCFixture(t), values: map[string]string{}, keys: map[string]*keyledger.Key{}}
	f.member2 = f.user(t, "member2@example.com", keyledger.RoleMember)
	add := func(name, project, env string, owner *keyledger.User, prefix string) {
		value := secretValue(t, prefix)
		k := f.key(t, owner, keyledger.KeyInput{Name: name, Project: project, Environment: env, OwnerEmail: owner.Email, Value: value})
		f.values[k.ID] = value
		f.keys[name] = k
	}
	add("OpenAI checkout", "checkout", "production", f.owner, "sk-proj-")
	add("OpenAI search", "search", "production", f.owner, "sk-proj-")
	add("Stripe", "checkout", "production", f.member2, "sk_live_")
	add("Anthropic", "search", "production", f.lead, "sk-ant-")
	add("Old", "search", "production", f.owner, "sk-proj-")
	if err := f.s.ArchiveKey(t.Context(), as(f.owner), f.keys["Old"].ID); err != nil {
		t.Fatal(err)
	}
	add("Staging OpenAI", "checkout", "staging", f.owner, "sk-proj-")
	add("Dev OpenAI", "checkout", "development", f.owner, "sk-proj-")
	add("Dev Stripe", "checkout", "development", f.member2, "sk_test_")
	return f
}

func keyNames(keys []keyledger.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Name)
	}
	slices.Sort(out)
	return out
}

func entryNames(es []keyledger.ExportEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.KeyName)
	}
	slices.Sort(out)
	return out
}

func refusedNames(rs []store.RefusedKey) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Key.Name)
	}
	slices.Sort(out)
	return out
}

func TestExportKeys(t *testing.T) {
	t.Parallel()
	f := newExportFixture(t)
	ctx := t.Context()
	policy := "In production only the key's owner, leads and admins may reveal keys."
	tests := []struct {
		name          string
		user          *keyledger.User
		env, project  string
		included      []string
		refused       []string
		reasonMissing bool
	}{
		{"member2 in production", f.member2, "production", "", []string{"Stripe"}, []string{"Anthropic", "OpenAI checkout", "OpenAI search"}, false},
		{"owner in production", f.owner, "production", "", []string{"OpenAI checkout", "OpenAI search"}, []string{"Anthropic", "Stripe"}, false},
		{"owner in production, one project", f.owner, "production", " search ", []string{"OpenAI search"}, []string{"Anthropic"}, false},
		{"lead in production", f.lead, "production", "", []string{"Anthropic", "OpenAI checkout", "OpenAI search", "Stripe"}, nil, false},
		{"admin in production", f.admin, "production", "", []string{"Anthropic", "OpenAI checkout", "OpenAI search", "Stripe"}, nil, false},
		{"member2 in development", f.member2, "development", "", []string{"Dev OpenAI", "Dev Stripe"}, nil, true},
		{"other in staging", f.other, "staging", "", []string{"Staging OpenAI"}, nil, false},
		{"unknown project", f.owner, "production", "nope", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason := "deploying " + tt.name
			if tt.reasonMissing {
				reason = ""
			}
			preview, err := f.s.ExportPreview(ctx, as(tt.user), tt.env, tt.project)
			if err != nil {
				t.Fatalf("ExportPreview: %v", err)
			}
			exports := f.actionCount(t, keyledger.ActionKeyExport, "")
			before := f.tableCounts(t)
			res, err := f.s.ExportKeys(ctx, as(tt.user), tt.env, tt.project, reason, keyledger.FormatDotenv)
			if err != nil {
				t.Fatalf("ExportKeys: %v", err)
			}
			if got := entryNames(res.Entries); !slices.Equal(got, tt.included) {
				t.Errorf("exported %v, want %v", got, tt.included)
			}
			if got := refusedNames(res.Refused); !slices.Equal(got, tt.refused) {
				t.Errorf("refused %v, want %v", got, tt.refused)
			}
			for _, r := range res.Refused {
				if r.Reason != policy {
					t.Errorf("refused %q with %q, want %q", r.Key.Name, r.Reason, policy)
				}
			}
			// The preview shows the same split and audits nothing.
			if got := keyNames(preview.Included); !slices.Equal(got, tt.included) {
				t.Errorf("preview includes %v, export %v", got, tt.included)
			}
			if got := refusedNames(preview.Refused); !slices.Equal(got, tt.refused) {
				t.Errorf("preview refuses %v, export %v", got, tt.refused)
			}
			for _, r := range preview.Refused {
				if r.Reason != policy {
					t.Errorf("preview refuses %q with %q, want %q", r.Key.Name, r.Reason, policy)
				}
			}
			if res.Environment.Name != tt.env || preview.Environment.Name != tt.env {
				t.Errorf("environment %q / %q", res.Environment.Name, preview.Environment.Name)
			}
			// Values are the current ones; the file reads back to them.
			parsed, err := godotenv.Unmarshal(string(res.File))
			if err != nil {
				t.Fatalf("dotenv file does not parse: %v", err)
			}
			if len(parsed) != len(res.Entries) {
				t.Errorf("file holds %d variables for %d entries", len(parsed), len(res.Entries))
			}
			for _, e := range res.Entries {
				if e.Value != f.values[e.KeyID] {
					t.Errorf("%q exported with the wrong value", e.KeyName)
				}
				if parsed[e.VarName] != e.Value {
					t.Errorf("%q: %s reads back wrong", e.KeyName, e.VarName)
				}
			}
			// One key.export per exported key, with the reason; nothing
			// else changed.
			if n := f.actionCount(t, keyledger.ActionKeyExport, ""); n != exports+len(res.Entries) {
				t.Errorf("%d key.export events for %d keys", n-exports, len(res.Entries))
			}
			after := f.tableCounts(t)
			after["audit_events"] -= len(res.Entries)
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("export changed more than the audit log: %v -> %v", before, after)
			}
			for _, e := range res.Entries {
				evs := f.events(t, keyledger.ActionKeyExport, e.KeyID)
				last := evs[len(evs)-1]
				if last.Actor != tt.user.Email || last.Reason != strings.TrimSpace(reason) || last.Version != 1 || last.Env != tt.env {
					t.Errorf("key.export event for %q: %+v", e.KeyName, last)
				}
				noSecretIn(t, e.Value, last.Raw, last.Reason)
			}
		})
	}

	// Exports count as reveals in the key's "who has seen it" list.
	t.Run("exports show in KeyReveals", func(t *testing.T) {
		id := f.keys["Stripe"].ID
		recs, err := f.s.KeyReveals(ctx, as(f.lead), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		who := map[string]bool{}
		for _, r := range recs {
			if r.Action == keyledger.ActionKeyExport {
				who[r.Email] = true
				if !r.StillValid || r.Version != 1 {
					t.Errorf("export record %+v", r)
				}
			}
		}
		for _, u := range []*keyledger.User{f.member2, f.lead, f.admin} {
			if !who[u.Email] {
				t.Errorf("KeyReveals does not list %s's export: %+v", u.Email, recs)
			}
		}
		if who[f.owner.Email] {
			t.Error("KeyReveals lists an export of a key that was refused")
		}
	})
}

func TestExportKeysRefusals(t *testing.T) {
	t.Parallel()
	f := newExportFixture(t)
	ctx := t.Context()
	t.Run("reason required", func(t *testing.T) {
		for _, env := range []string{"staging", "production"} {
			before := f.tableCounts(t)
			res, err := f.s.ExportKeys(ctx, as(f.owner), env, "", "  ", keyledger.FormatJSON)
			wantField(t, err, keyledger.EINVALID, "reason")
			if len(res.Entries) != 0 || len(res.File) != 0 {
				t.Errorf("%s: refused export returned %d entries", env, len(res.Entries))
			}
			if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("%s: refused export changed rows", env)
			}
		}
	})
	t.Run("unknown environment", func(t *testing.T) {
		before := f.tableCounts(t)
		_, err := f.s.ExportKeys(ctx, as(f.owner), "qa", "", "why", keyledger.FormatJSON)
		wantField(t, err, keyledger.EINVALID, "environment")
		_, err = f.s.ExportPreview(ctx, as(f.owner), "qa", "")
		wantField(t, err, keyledger.EINVALID, "environment")
		if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Error("refused export changed rows")
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		before := f.tableCounts(t)
		_, err := f.s.ExportKeys(ctx, as(f.owner), "development", "", "", keyledger.ShellFormat("yaml"))
		wantCode(t, err, keyledger.EINVALID)
		if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Error("export in an unknown format was audited")
		}
	})
	t.Run("deactivated", func(t *testing.T) {
		_, err := f.s.ExportKeys(ctx, as(f.gone), "development", "", "", keyledger.FormatJSON)
		wantCode(t, err, keyledger.EFORBIDDEN)
		_, err = f.s.ExportPreview(ctx, as(f.gone), "development", "")
		wantCode(t, err, keyledger.EFORBIDDEN)
		_, err = f.s.ExportKeys(ctx, keyledger.SystemActor("x"), "development", "", "", keyledger.FormatJSON)
		wantCode(t, err, keyledger.EUNAUTHORIZED)
	})
	t.Run("deactivated a moment ago", func(t *testing.T) {
		stale := f.user(t, "stale@example.com", keyledger.RoleLead)
		if _, err := f.s.DeactivateUser(ctx, as(f.admin), stale.Email); err != nil {
			t.Fatal(err)
		}
		before := f.tableCounts(t)
		_, err := f.s.ExportKeys(ctx, as(stale), "production", "", "leaving", keyledger.FormatJSON)
		wantCode(t, err, keyledger.EFORBIDDEN)
		if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Error("refused export changed rows")
		}
	})
	t.Run("value dotenv cannot carry", func(t *testing.T) {
		awkward := `it's a "quoted" value`
		k := f.key(t, f.owner, keyledger.KeyInput{Name: "Awkward", Provider: "acme", Project: "legacy", Environment: "development",
			OwnerEmail: f.owner.Email, Value: awkward})
		// Left out with its reason, not audited; the rest is exported
		// (issue 12, item 4).
		res, err := f.s.ExportKeys(ctx, as(f.owner), "development", "legacy", "", keyledger.FormatDotenv)
		if err != nil {
			t.Fatalf("dotenv export refused: %v", err)
		}
		if len(res.Entries) != 0 || len(res.Refused) != 1 || res.Refused[0].Key.ID != k.ID || !strings.HasPrefix(res.Refused[0].Reason, "cannot be written as a .env line") {
			t.Errorf("entries %d, refused %+v", len(res.Entries), res.Refused)
		}
		if !strings.Contains(string(res.File), "# left out: Awkward (legacy): cannot be written") || strings.Contains(string(res.File), "quoted") {
			t.Errorf("the file does not name the key it lacks, or holds its value:\n%s", res.File)
		}
		ev, err := f.s.ListAudit(ctx, as(f.admin), store.AuditFilter{KeyID: k.ID, Action: keyledger.ActionKeyExport, Limit: 10})
		if err != nil || len(ev.Events) != 0 {
			t.Errorf("%d export events for a key left out (%v)", len(ev.Events), err)
		}
		// JSON carries it.
		res, err = f.s.ExportKeys(ctx, as(f.owner), "development", "legacy", "", keyledger.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]string
		if err := json.Unmarshal(res.File, &obj); err != nil {
			t.Fatal(err)
		}
		if len(res.Entries) != 1 || obj[res.Entries[0].VarName] != awkward || res.Entries[0].KeyID != k.ID {
			t.Errorf("json export %s", res.File)
		}
	})
	t.Run("current value after rotation", func(t *testing.T) {
		k := f.keys["Dev OpenAI"]
		next := secretValue(t, "sk-proj-")
		if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: next}); err != nil {
			t.Fatal(err)
		}
		res, err := f.s.ExportKeys(ctx, as(f.owner), "development", "checkout", "", keyledger.FormatBash)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Entries {
			if e.KeyID == k.ID && e.Value != next {
				t.Error("export has the superseded value")
			}
		}
		evs := f.events(t, keyledger.ActionKeyExport, k.ID)
		if last := evs[len(evs)-1]; last.Version != 2 {
			t.Errorf("export audited as version %d, want 2", last.Version)
		}
		if !strings.Contains(string(res.File), "export OPENAI_API_KEY='"+next+"'") {
			t.Errorf("bash export:\n%s", res.File)
		}
	})
}

// TestLifecycleFailsClosedWithoutAudit: when the audit event cannot be
// written, rotations, rollbacks, destruction, checks and exports change
// nothing and hand out nothing.
func TestLifecycleFailsClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	f := newExportFixture(t)
	ctx := t.Context()
	exec := func(sql string) {
		t.Helper()
		if _, err := f.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	k := f.keys["Dev OpenAI"]
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-"), GraceDays: "0"}); err != nil {
		t.Fatal(err)
	}
	exec(`CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit storage is broken (test)'; END $$`)
	// Only the second key of the export fails: the first one's event and
	// the export as a whole must roll back with it.
	exec(`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW
		WHEN (NEW.action <> 'key.export' OR NEW.key_name = 'OpenAI search') EXECUTE FUNCTION test_refuse_audit()`)
	before := f.tableCounts(t)
	snapshot := func() string {
		t.Helper()
		var s string
		if err := f.pool.QueryRow(ctx, `SELECT string_agg(concat_ws('|', key_id, version, superseded_at, destroy_after, destroyed_at, ciphertext IS NULL), ',' ORDER BY key_id, version)
			FROM key_versions`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		var keys string
		if err := f.pool.QueryRow(ctx, `SELECT string_agg(concat_ws('|', id, current_version, masked_hint, last_verified_at, verify_result), ',' ORDER BY id)
			FROM keys`).Scan(&keys); err != nil {
			t.Fatal(err)
		}
		return s + "\n" + keys
	}
	state := snapshot()
	res, err := f.s.ExportKeys(ctx, as(f.owner), "production", "", "incident", keyledger.FormatJSON)
	if err == nil || len(res.Entries) != 0 || len(res.File) != 0 {
		t.Errorf("export without its audit events: %d entries, %v", len(res.Entries), err)
	}
	if _, err := f.s.RotateKey(ctx, as(f.owner), f.keys["Dev Stripe"].ID, keyledger.RotateInput{Value: secretValue(t, "sk_test_")}); err == nil {
		t.Error("RotateKey succeeded without its audit event")
	}
	if _, err := f.s.DestroyExpiredVersions(ctx); err == nil {
		t.Error("DestroyExpiredVersions succeeded without its audit event")
	}
	if _, err := f.s.VerifyKey(ctx, as(f.owner), f.keys["Dev Stripe"].ID, newFakeVerifier()); err == nil {
		t.Error("VerifyKey recorded a result without its audit event")
	}
	if err := f.s.MarkVerified(ctx, as(f.owner), f.keys["Dev Stripe"].ID, "by hand"); err == nil {
		t.Error("MarkVerified succeeded without its audit event")
	}
	if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("unaudited changes committed: %v -> %v", before, after)
	}
	if got := snapshot(); got != state {
		t.Errorf("unaudited changes committed:\n%s\n->\n%s", state, got)
	}
	exec(`DROP TRIGGER test_refuse_audit ON audit_events`)
	if n, err := f.s.DestroyExpiredVersions(ctx); err != nil || n != 1 {
		t.Errorf("DestroyExpiredVersions after repair: %d, %v", n, err)
	}
}
