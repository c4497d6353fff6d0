package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// leakedAtProvider registers an OpenAI key in development owned by the
// fixture's owner, puts the same key at the fake, syncs, and reports its
// value leaked; it returns the key, the fake's key id and the incident.
func leakedAtProvider(t *testing.T, f *revokeFixture, name string) (*keyledger.Key, string, int64) {
	t.Helper()
	v := "sk-proj-" + secretValue(t, "")
	k := f.key(t, f.owner, keyledger.KeyInput{Name: name, Project: "core", Environment: "development", OwnerEmail: f.owner.Email, Value: v})
	id := f.oa.AddKey(providertest.OpenAIKey{Project: "proj_core", Name: name, RedactedValue: providertest.OpenAIRedact(v),
		OwnerType: "user", OwnerID: "user_1", OwnerEmail: f.owner.Email})
	f.sync(t)
	r, err := f.s.ReportLeak(context.Background(), as(f.other), keyledger.LeakReportInput{Value: v, Where: "a public gist"})
	if err != nil || !r.Matched {
		t.Fatalf("report: %+v, %v", r, err)
	}
	return k, id, r.IncidentID
}

func (f *revokeFixture) leak(t *testing.T, id int64) *keyledger.LeakIncident {
	t.Helper()
	inc, err := f.s.LeakIncident(context.Background(), as(f.lead), id)
	if err != nil {
		t.Fatalf("incident %d: %v", id, err)
	}
	return inc
}

// providerKeyRowID is the provider_keys id of the fake's key id.
func (f *revokeFixture) providerKeyRowID(t *testing.T, providerKeyID string) int64 {
	t.Helper()
	var id int64
	if err := f.pool.QueryRow(context.Background(), "SELECT id FROM provider_keys WHERE provider_key_id = $1", providerKeyID).Scan(&id); err != nil {
		t.Fatalf("provider key %s: %v", providerKeyID, err)
	}
	return id
}

// TestLeakIncidentClosesByRevokeAtProvider: the incident of a leaked
// version that is alive at a connected provider offers that provider key;
// rotating the key and revoking that key at the provider (one DELETE, of
// the right id) counts the version revoked and closes the incident.
// Revoking at the provider first leaves it open (still current) until the
// rotation closes it.
func TestLeakIncidentClosesByRevokeAtProvider(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()

	t.Run("rotate then revoke", func(t *testing.T) {
		k, id, incID := leakedAtProvider(t, f, "checkout")
		// A key at the fake that must not be touched.
		_, otherID := f.openAIKey(t, "search", "development")
		f.sync(t)
		row := f.providerKeyRowID(t, id)
		inc := f.leak(t, incID)
		if !inc.ProviderRevocable || inc.ProviderKey != row {
			t.Fatalf("incident offers provider key %d (revocable %v), want %d", inc.ProviderKey, inc.ProviderRevocable, row)
		}
		f.clock.Advance(time.Hour)
		if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: "sk-proj-" + secretValue(t, "")}); err != nil {
			t.Fatal(err)
		}
		inc = f.leak(t, incID)
		if !inc.Open() || inc.RotatedAt == nil || inc.RevokedAt != nil {
			t.Fatalf("after rotation: open %v rotated %v revoked %v", inc.Open(), inc.RotatedAt, inc.RevokedAt)
		}
		// Version 1 is still alive at the provider: still offered.
		if inc.ProviderKey != row {
			t.Errorf("after rotation the incident offers %d, want %d", inc.ProviderKey, row)
		}
		f.clock.Advance(time.Hour)
		f.oa.ResetRequests()
		res, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, inc.ProviderKey, "leaked in a public gist")
		if err != nil || res.Already || res.Key.ProviderKeyID != id {
			t.Fatalf("revoke at provider: %+v, %v", res, err)
		}
		if n := f.oa.Count("DELETE", "/v1/organization/projects/proj_core/api_keys/"+id); n != 1 || len(f.oa.Requests()) != 1 {
			t.Errorf("the fake saw %d DELETEs of %s, want exactly 1 request; requests: %+v", n, id, f.oa.Requests())
		}
		if _, ok := f.oa.Key(otherID); !ok {
			t.Error("another key was deleted")
		}
		inc = f.leak(t, incID)
		if inc.Open() || inc.RevokedAt == nil || inc.CloseReason != keyledger.LeakClosedResolved || inc.TimeToClose() != 2*time.Hour {
			t.Fatalf("after revoke at provider: closed %v (%s), revoked %v, time to close %v", inc.ClosedAt, inc.CloseReason, inc.RevokedAt, inc.TimeToClose())
		}
		if got := stepNames(inc); got != "reported rotated revoked closed" {
			t.Errorf("timeline %q", got)
		}
		for _, s := range inc.Steps {
			if s.Step == keyledger.LeakStepRevoked && (s.By != f.owner.Email || !strings.Contains(s.Note, id)) {
				t.Errorf("revoked step %+v: want by %s, naming %s", s, f.owner.Email, id)
			}
		}
		if inc.ProviderRevocable {
			t.Error("a closed incident whose provider key is revoked still offers a revoke")
		}
		if n := f.actionCount(t, keyledger.ActionLeakClose, k.ID); n != 1 {
			t.Errorf("%d %s events, want 1", n, keyledger.ActionLeakClose)
		}
		if got, _ := f.s.GetKey(ctx, as(f.owner), k.ID); got.Compromised() {
			t.Error("the key is still compromised after its incident closed")
		}
	})

	t.Run("revoke then rotate", func(t *testing.T) {
		k, id, incID := leakedAtProvider(t, f, "billing")
		row := f.providerKeyRowID(t, id)
		if inc := f.leak(t, incID); inc.ProviderKey != row {
			t.Fatalf("incident offers %d, want %d", inc.ProviderKey, row)
		}
		f.oa.ResetRequests()
		if _, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, row, "leaked, stop it now"); err != nil {
			t.Fatal(err)
		}
		if n := f.oa.Count("DELETE", "/v1/organization/projects/proj_core/api_keys/"+id); n != 1 {
			t.Errorf("the fake saw %d DELETEs of %s, want 1", n, id)
		}
		inc := f.leak(t, incID)
		if !inc.Open() || inc.RevokedAt == nil || inc.RotatedAt != nil {
			t.Fatalf("revoked before rotation: open %v revoked %v rotated %v", inc.Open(), inc.RevokedAt, inc.RotatedAt)
		}
		if inc.ProviderRevocable {
			t.Error("the incident still offers a revoke of a provider key revoked already")
		}
		if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: "sk-proj-" + secretValue(t, "")}); err != nil {
			t.Fatal(err)
		}
		inc = f.leak(t, incID)
		if inc.Open() || inc.CloseReason != keyledger.LeakClosedResolved {
			t.Fatalf("after rotation: closed %v (%s)", inc.ClosedAt, inc.CloseReason)
		}
		if got := stepNames(inc); got != "reported revoked rotated closed" {
			t.Errorf("timeline %q", got)
		}
	})

	t.Run("revoked at provider before the leak was reported", func(t *testing.T) {
		v := "sk-proj-" + secretValue(t, "")
		k := f.key(t, f.owner, keyledger.KeyInput{Name: "early", Project: "core", Environment: "development", OwnerEmail: f.owner.Email, Value: v})
		id := f.oa.AddKey(providertest.OpenAIKey{Project: "proj_core", Name: "early", RedactedValue: providertest.OpenAIRedact(v),
			OwnerType: "user", OwnerID: "user_1", OwnerEmail: f.owner.Email})
		f.sync(t)
		row := f.providerKeyRowID(t, id)
		if _, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, row, "rotating out"); err != nil {
			t.Fatal(err)
		}
		r, err := f.s.ReportLeak(ctx, as(f.other), keyledger.LeakReportInput{Value: v, Where: "an old ticket"})
		if err != nil || !r.Matched {
			t.Fatalf("report: %+v, %v", r, err)
		}
		if inc := f.leak(t, r.IncidentID); inc.ProviderRevocable || inc.RevokedAt != nil {
			t.Fatalf("incident: revocable %v revoked %v; want not offered, not yet counted", inc.ProviderRevocable, inc.RevokedAt)
		}
		// Asking again makes no call and tells the incident.
		f.oa.ResetRequests()
		res, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, row, "the leak")
		if err != nil || !res.Already || len(f.oa.Requests()) != 0 {
			t.Fatalf("revoke again: %+v, %v, %d requests", res, err, len(f.oa.Requests()))
		}
		if inc := f.leak(t, r.IncidentID); !inc.Open() || inc.RevokedAt == nil {
			t.Fatalf("after the repeated revoke: open %v revoked %v", inc.Open(), inc.RevokedAt)
		}
	})
}

// TestLeakIncidentOffersOnlyWhatRevokeAtProviderTakes: a provider key
// nobody linked whose hint is the leaked version's is offered only once
// that version is superseded, which is when RevokeAtProvider takes it (a
// button that can only fail is not shown); then it closes the incident.
func TestLeakIncidentOffersOnlyWhatRevokeAtProviderTakes(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	k, id, incID := leakedAtProvider(t, f, "unlinked")
	row := f.providerKeyRowID(t, id)
	// As when the sync could not tell which key it is.
	if _, err := f.pool.Exec(ctx, "UPDATE provider_keys SET key_id = NULL, match_state = 'unmatched' WHERE id = $1", row); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, row, "leaked")
	wantCode(t, err, keyledger.ECONFLICT)
	if inc := f.leak(t, incID); inc.ProviderRevocable {
		t.Errorf("the current version's unlinked provider key %d is offered, but RevokeAtProvider refuses it", inc.ProviderKey)
	}
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: "sk-proj-" + secretValue(t, "")}); err != nil {
		t.Fatal(err)
	}
	inc := f.leak(t, incID)
	if !inc.ProviderRevocable || inc.ProviderKey != row {
		t.Fatalf("after rotation: offered %d (revocable %v), want %d", inc.ProviderKey, inc.ProviderRevocable, row)
	}
	f.oa.ResetRequests()
	if _, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, inc.ProviderKey, "leaked"); err != nil {
		t.Fatal(err)
	}
	if n := f.oa.Count("DELETE", "/v1/organization/projects/proj_core/api_keys/"+id); n != 1 {
		t.Errorf("the fake saw %d DELETEs of %s, want 1", n, id)
	}
	if inc := f.leak(t, incID); inc.Open() || stepNames(inc) != "reported rotated revoked closed" {
		t.Errorf("open %v, timeline %q", inc.Open(), stepNames(inc))
	}
}
