package store_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

func TestVerifyKey(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	v := newFakeVerifier()
	k, old := f.newKey(t, "Checked", "production")
	value := secretValue(t, "sk-proj-")
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: value}); err != nil {
		t.Fatal(err)
	}
	v.set(value, keyledger.VerifyResult{Result: keyledger.VerifyInvalid, Message: "401 Incorrect API key provided"})
	f.clock.Advance(time.Minute)
	now := f.clock.Now()
	reveals := f.actionCount(t, keyledger.ActionKeyReveal, k.ID)
	res, err := f.s.VerifyKey(ctx, as(f.owner), k.ID, v)
	if err != nil {
		t.Fatalf("VerifyKey: %v", err)
	}
	if res.Result != keyledger.VerifyInvalid {
		t.Errorf("result %+v", res)
	}
	if calls := v.calls(); len(calls) != 1 || calls[0] != value {
		t.Errorf("the verifier got %d secrets; the current value: %v, the old one: %v", len(calls), slices.Contains(calls, value), slices.Contains(calls, old))
	}
	got, err := f.s.GetKey(ctx, as(f.other), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastVerifiedAt == nil || !got.LastVerifiedAt.Equal(now) || got.VerifyResult != keyledger.VerifyInvalid ||
		got.VerifyMessage != "401 Incorrect API key provided" {
		t.Errorf("key after verify: at %v result %q message %q", got.LastVerifiedAt, got.VerifyResult, got.VerifyMessage)
	}
	evs := f.events(t, keyledger.ActionKeyVerify, k.ID)
	if len(evs) != 1 {
		t.Fatalf("%d key.verify events", len(evs))
	}
	if ev := evs[0]; ev.Actor != f.owner.Email || ev.Version != 2 || ev.Details["result"] != keyledger.VerifyInvalid || ev.Env != "production" {
		t.Errorf("key.verify event %+v", ev)
	}
	noSecretIn(t, value, evs[0].Raw, evs[0].Reason)
	// A check is a use by the system, not a reveal to a person.
	if n := f.actionCount(t, keyledger.ActionKeyReveal, k.ID); n != reveals {
		t.Error("VerifyKey was audited as a reveal")
	}
	if recs, err := f.s.KeyReveals(ctx, as(f.lead), k.ID, 0); err != nil || len(recs) != 0 {
		t.Errorf("KeyReveals after a check: %+v, %v", recs, err)
	}

	t.Run("who may check", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			user *keyledger.User
			code string
		}{
			{"lead", f.lead, ""},
			{"admin", f.admin, ""},
			{"owner", f.owner, ""},
			{"other member in production", f.other, keyledger.EFORBIDDEN},
			{"deactivated lead", f.gone, keyledger.EFORBIDDEN},
		} {
			calls := len(v.calls())
			before := f.actionCount(t, keyledger.ActionKeyVerify, k.ID)
			_, err := f.s.VerifyKey(ctx, as(tc.user), k.ID, v)
			if keyledger.ErrorCode(err) != tc.code {
				t.Errorf("%s: %v, want code %q", tc.name, err, tc.code)
			}
			if tc.code != "" {
				if len(v.calls()) != calls {
					t.Errorf("%s: the value was sent to the provider anyway", tc.name)
				}
				if f.actionCount(t, keyledger.ActionKeyVerify, k.ID) != before {
					t.Errorf("%s: a refused check was audited", tc.name)
				}
			}
		}
		// In development anyone may reveal, so anyone may check.
		dev, _ := f.newKey(t, "Dev checked", "development")
		if _, err := f.s.VerifyKey(ctx, as(f.other), dev.ID, v); err != nil {
			t.Errorf("other member checking a development key: %v", err)
		}
	})

	t.Run("scheduler", func(t *testing.T) {
		if _, err := f.s.VerifyKey(ctx, keyledger.SystemActor("scheduler"), k.ID, v); err != nil {
			t.Fatal(err)
		}
		evs := f.events(t, keyledger.ActionKeyVerify, k.ID)
		if last := evs[len(evs)-1]; last.Actor != "scheduler" {
			t.Errorf("scheduled check audited as %q", last.Actor)
		}
	})

	t.Run("unsupported provider", func(t *testing.T) {
		aws := f.key(t, f.owner, keyledger.KeyInput{Name: "AWS", Project: "chatbot", Environment: "production", OwnerEmail: f.owner.Email,
			Value: "AKIA" + strings.ToUpper(secretValue(t, ""))[:16]})
		if aws.Provider != keyledger.ProviderAWS {
			t.Fatalf("provider %q", aws.Provider)
		}
		calls := len(v.calls())
		_, err := f.s.VerifyKey(ctx, as(f.owner), aws.ID, v)
		wantCode(t, err, keyledger.EINVALID)
		if !strings.Contains(err.Error(), "by hand") {
			t.Errorf("unsupported provider message %q does not say to check by hand", err)
		}
		if len(v.calls()) != calls || f.actionCount(t, keyledger.ActionKeyVerify, aws.ID) != 0 {
			t.Error("unsupported provider was called or audited")
		}
	})

	t.Run("archived and unknown", func(t *testing.T) {
		gone, _ := f.newKey(t, "Archived checked", "development")
		if err := f.s.ArchiveKey(ctx, as(f.owner), gone.ID); err != nil {
			t.Fatal(err)
		}
		_, err := f.s.VerifyKey(ctx, as(f.owner), gone.ID, v)
		wantCode(t, err, keyledger.ECONFLICT)
		_, err = f.s.VerifyKey(ctx, as(f.owner), "7d444840-9dc0-11d1-b245-5ffdce74fad2", v)
		wantCode(t, err, keyledger.ENOTFOUND)
		_, err = f.s.VerifyKey(ctx, as(f.owner), "../etc", v)
		wantCode(t, err, keyledger.ENOTFOUND)
	})

	t.Run("long and broken messages are cut", func(t *testing.T) {
		long, lv := f.newKey(t, "Chatty provider", "development")
		v.set(lv, keyledger.VerifyResult{Result: keyledger.VerifyUnreachable, Message: strings.Repeat("ü", 400) + "\xff"})
		res, err := f.s.VerifyKey(ctx, as(f.owner), long.ID, v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.s.GetKey(ctx, as(f.owner), long.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n := utf8.RuneCountInString(got.VerifyMessage); n != 300 || !utf8.ValidString(got.VerifyMessage) || got.VerifyMessage != res.Message {
			t.Errorf("stored message of %d runes (valid UTF-8: %v)", n, utf8.ValidString(got.VerifyMessage))
		}
	})
}

// TestVerifyRacingRotation: a check reads the current value, then someone
// rotates while the provider call is in flight. The old value's result
// must not be recorded as the new value's.
func TestVerifyRacingRotation(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	v := newFakeVerifier()
	k, old := f.newKey(t, "Rotated mid-check", "development")
	v.set(old, keyledger.VerifyResult{Result: keyledger.VerifyInvalid, Message: "revoked"})
	next := secretValue(t, "sk-proj-")
	var once sync.Once
	v.during = func() {
		once.Do(func() {
			if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: next}); err != nil {
				t.Errorf("rotate during check: %v", err)
			}
		})
	}
	_, err := f.s.VerifyKey(ctx, as(f.owner), k.ID, v)
	if err != nil && keyledger.ErrorCode(err) != keyledger.ECONFLICT {
		t.Errorf("VerifyKey racing a rotation: %v, want success or a conflict", err)
	}
	got, err := f.s.GetKey(ctx, as(f.owner), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentVersion != 2 {
		t.Fatalf("version %d", got.CurrentVersion)
	}
	if got.VerifyResult != "" || got.LastVerifiedAt != nil {
		t.Errorf("version 2 (never checked) shows result %q at %v from a check of version 1", got.VerifyResult, got.LastVerifiedAt)
	}
	// The value was still used, so the use is audited, for version 1.
	evs := f.events(t, keyledger.ActionKeyVerify, k.ID)
	if len(evs) != 1 || evs[0].Version != 1 {
		t.Errorf("key.verify events %+v, want one for version 1", evs)
	}
	page, err := f.s.ListKeys(ctx, as(f.owner), store.KeyFilter{Status: "never_verified"})
	if err != nil || page.Total != 1 {
		t.Errorf("never_verified lists %d keys (%v), want the rotated one", page.Total, err)
	}
}

func TestMarkVerified(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k := f.key(t, f.owner, keyledger.KeyInput{Name: "Vendor portal", Provider: "acme", Project: "ops", Environment: "production",
		OwnerEmail: f.owner.Email, Value: secretValue(t, "acme_")})
	for _, tc := range []struct {
		name, note string
		user       *keyledger.User
		code       string
		field      string
	}{
		{"empty note", "", f.owner, keyledger.EINVALID, "note"},
		{"blank note", " \n ", f.owner, keyledger.EINVALID, "note"},
		{"note too long", strings.Repeat("n", 301), f.owner, keyledger.EINVALID, "note"},
		{"control characters", "signed in\x1b[2J", f.owner, keyledger.EINVALID, "note"},
		{"other member", "looked fine", f.other, keyledger.EFORBIDDEN, ""},
		{"deactivated lead", "looked fine", f.gone, keyledger.EFORBIDDEN, ""},
	} {
		before := f.tableCounts(t)
		err := f.s.MarkVerified(ctx, as(tc.user), k.ID, tc.note)
		if tc.field != "" {
			wantField(t, err, tc.code, tc.field)
		} else if keyledger.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
		if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s: refused mark changed rows", tc.name)
		}
	}
	for i, u := range []*keyledger.User{f.owner, f.lead, f.admin} {
		f.clock.Advance(time.Hour)
		note := fmt.Sprintf("signed in to the vendor portal with it (%d)", i)
		if err := f.s.MarkVerified(ctx, as(u), k.ID, "  "+note+" "); err != nil {
			t.Fatalf("MarkVerified as %s: %v", u.Email, err)
		}
		got, err := f.s.GetKey(ctx, as(u), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.VerifyResult != keyledger.VerifyManual || !strings.Contains(got.VerifyMessage, note) ||
			got.LastVerifiedAt == nil || !got.LastVerifiedAt.Equal(f.clock.Now()) {
			t.Errorf("after MarkVerified by %s: %q %q %v", u.Email, got.VerifyResult, got.VerifyMessage, got.LastVerifiedAt)
		}
		if by := f.count(t, "SELECT coalesce(verified_by, 0) FROM keys WHERE id = $1", k.ID); int64(by) != u.ID {
			t.Errorf("verified_by %d, want %d", by, u.ID)
		}
		evs := f.events(t, keyledger.ActionKeyVerify, k.ID)
		if len(evs) != i+1 || evs[i].Actor != u.Email || evs[i].Details["result"] != keyledger.VerifyManual {
			t.Errorf("key.verify events %+v", evs)
		}
	}
	// An automatic check afterwards clears verified_by.
	oa, _ := f.newKey(t, "OpenAI marked", "development")
	if err := f.s.MarkVerified(ctx, as(f.owner), oa.ID, "tried it in the playground"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.VerifyKey(ctx, keyledger.SystemActor("scheduler"), oa.ID, newFakeVerifier()); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, "SELECT count(*) FROM keys WHERE id = $1 AND verified_by IS NULL AND verify_result = 'ok'", oa.ID); n != 1 {
		t.Error("automatic check after a manual one kept verified_by")
	}
	// Archived keys cannot be marked.
	if err := f.s.ArchiveKey(ctx, as(f.owner), oa.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.MarkVerified(ctx, as(f.owner), oa.ID, "too late"), keyledger.ECONFLICT)
}

func TestKeysToVerify(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	v := newFakeVerifier()
	t0 := f.clock.Now()
	never, _ := f.newKey(t, "Never checked", "development")
	early, _ := f.newKey(t, "Checked at t0", "staging")
	late := f.key(t, f.owner, keyledger.KeyInput{Name: "Anthropic checked later", Project: "chatbot", Environment: "production",
		OwnerEmail: f.owner.Email, Value: secretValue(t, "sk-ant-")})
	unsupported := f.key(t, f.owner, keyledger.KeyInput{Name: "Vendor", Provider: "acme", Project: "ops", Environment: "development",
		OwnerEmail: f.owner.Email, Value: secretValue(t, "acme_")})
	archived, _ := f.newKey(t, "Archived, never checked", "development")
	if err := f.s.ArchiveKey(ctx, as(f.owner), archived.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.VerifyKey(ctx, as(f.owner), early.ID, v); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.s.VerifyKey(ctx, as(f.owner), late.ID, v); err != nil {
		t.Fatal(err)
	}
	list := func(limit int) []string {
		t.Helper()
		ids, err := f.s.KeysToVerify(ctx, v, 24*time.Hour, limit)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	name := map[string]string{never.ID: "never", early.ID: "early", late.ID: "late", unsupported.ID: "unsupported", archived.ID: "archived"}
	names := func(ids []string) []string {
		var out []string
		for _, id := range ids {
			out = append(out, name[id])
		}
		return out
	}
	steps := []struct {
		at    time.Duration // since t0
		limit int
		want  []string
	}{
		{time.Hour + time.Second, 100, []string{"never"}},
		{24*time.Hour - time.Second, 100, []string{"never"}},
		{24*time.Hour + 30*time.Minute, 100, []string{"never", "early"}},
		{25*time.Hour + time.Second, 100, []string{"never", "early", "late"}},
		{25*time.Hour + time.Second, 2, []string{"never", "early"}},
		{25*time.Hour + time.Second, 1, []string{"never"}},
	}
	for _, st := range steps {
		f.clock.Advance(t0.Add(st.at).Sub(f.clock.Now()))
		if got := names(list(st.limit)); !slices.Equal(got, st.want) {
			t.Errorf("at t0+%v limit %d: %v, want %v", st.at, st.limit, got, st.want)
		}
	}
	// Once checked, a key drops off until the interval passes again.
	if _, err := f.s.VerifyKey(ctx, keyledger.SystemActor("scheduler"), never.ID, v); err != nil {
		t.Fatal(err)
	}
	if got := names(list(100)); !slices.Equal(got, []string{"early", "late"}) {
		t.Errorf("after checking never: %v", got)
	}
	// A verifier that supports nothing gets nothing.
	none := newFakeVerifier()
	for _, p := range []keyledger.Provider{keyledger.ProviderOpenAI, keyledger.ProviderAnthropic} {
		none.unsupported[p] = true
	}
	if ids, err := f.s.KeysToVerify(ctx, none, time.Hour, 100); err != nil || len(ids) != 0 {
		t.Errorf("verifier supporting nothing: %v, %v", ids, err)
	}
}

func TestListKeysVerificationStatus(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	v := newFakeVerifier()
	ids := map[string]string{}
	for _, result := range append(keyledger.VerifyResults(), "never") {
		k, value := f.newKey(t, "Result "+result, "development")
		ids[k.ID] = result
		switch result {
		case "never":
		case keyledger.VerifyManual:
			if err := f.s.MarkVerified(ctx, as(f.owner), k.ID, "checked by hand"); err != nil {
				t.Fatal(err)
			}
		default:
			v.set(value, keyledger.VerifyResult{Result: result, Message: result})
			if _, err := f.s.VerifyKey(ctx, as(f.owner), k.ID, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An archived failing key is not listed.
	gone, gv := f.newKey(t, "Archived failing", "development")
	v.set(gv, keyledger.VerifyResult{Result: keyledger.VerifyInvalid})
	if _, err := f.s.VerifyKey(ctx, as(f.owner), gone.ID, v); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ArchiveKey(ctx, as(f.owner), gone.ID); err != nil {
		t.Fatal(err)
	}
	for status, want := range map[string][]string{
		"failing":        {keyledger.VerifyForbidden, keyledger.VerifyInvalid, keyledger.VerifyQuota},
		"never_verified": {"never"},
	} {
		page, err := f.s.ListKeys(ctx, as(f.other), store.KeyFilter{Status: status})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range page.Keys {
			got = append(got, ids[k.ID])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || page.Total != len(want) {
			t.Errorf("status=%s lists %v (total %d), want %v", status, got, page.Total, want)
		}
	}
	for _, r := range keyledger.VerifyResults() {
		if keyledger.VerifyFailing(r) != slices.Contains([]string{keyledger.VerifyForbidden, keyledger.VerifyInvalid, keyledger.VerifyQuota}, r) {
			t.Errorf("VerifyFailing(%q) disagrees with the failing filter", r)
		}
	}
}
