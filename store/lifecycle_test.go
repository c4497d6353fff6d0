package store_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func TestRotateKey(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	tests := []struct {
		name         string
		env          string
		rotationDays string
		grace        string
		wantDays     int // effective rotation interval
		wantGrace    int
	}{
		{"development default interval, default grace", "development", "", "", 180, keyledger.DefaultGraceDays},
		{"production default interval, grace 3", "production", "", "3", 90, 3},
		{"own interval 30, grace 0", "staging", "30", " 0 ", 30, 0},
		{"own interval, grace 90", "development", "45", "90", 45, 90},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := secretValue(t, "sk-proj-")
			k := f.key(t, f.owner, keyledger.KeyInput{Name: fmt.Sprintf("Rotated %d", i), Project: "chatbot", Environment: tt.env,
				OwnerEmail: f.owner.Email, Value: old, RotationDays: tt.rotationDays})
			created := f.clock.Now()
			if k.CurrentVersion != 1 || !k.RotateBy.Equal(created.AddDate(0, 0, tt.wantDays)) {
				t.Fatalf("new key: version %d, rotate by %v", k.CurrentVersion, k.RotateBy)
			}
			f.clock.Advance(40*24*time.Hour + 3*time.Hour)
			now := f.clock.Now()
			value := secretValue(t, "sk-proj-")
			// Confirmed surrounding whitespace is kept (issue 12, item 5);
			// the hint looks past it.
			padded := "\n" + value + "  \n"
			got, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: padded, GraceDays: tt.grace, KeepWhitespace: true})
			if err != nil {
				t.Fatalf("RotateKey: %v", err)
			}
			if got.CurrentVersion != 2 {
				t.Errorf("current version %d, want 2", got.CurrentVersion)
			}
			if want := now.AddDate(0, 0, tt.wantDays); !got.RotateBy.Equal(want) {
				t.Errorf("rotate by %v, want now + %d days = %v", got.RotateBy, tt.wantDays, want)
			}
			if !got.LastRotatedAt.Equal(now) {
				t.Errorf("last rotated %v, want %v", got.LastRotatedAt, now)
			}
			if got.MaskedHint != keyledger.MaskedHint(value) || got.MaskedHint == k.MaskedHint {
				t.Errorf("masked hint %q (was %q), want %q", got.MaskedHint, k.MaskedHint, keyledger.MaskedHint(value))
			}
			if status := keyledger.RotationStatusAt(now, got.RotateBy); status != keyledger.RotationOK {
				t.Errorf("rotation status after rotating: %s", status)
			}
			r := f.revealValue(t, f.owner, k.ID)
			if r.Value != padded || r.Version != 2 {
				t.Errorf("reveal after rotation: version %d, value changed=%v", r.Version, r.Value != padded)
			}
			vs := f.versions(t, f.owner, k.ID)
			if len(vs) != 2 {
				t.Fatalf("%d versions, want 2", len(vs))
			}
			v1, v2 := vs[1], vs[2]
			if !v2.Current() || v2.InGrace(now) {
				t.Errorf("v2 = %+v, want current", v2)
			}
			if v1.Current() || v1.SupersededAt == nil || !v1.SupersededAt.Equal(now) {
				t.Errorf("v1 superseded at %v, want %v", v1.SupersededAt, now)
			}
			if v1.DestroyAfter == nil || !v1.DestroyAfter.Equal(now.AddDate(0, 0, tt.wantGrace)) {
				t.Errorf("v1 destroy after %v, want now + %d days", v1.DestroyAfter, tt.wantGrace)
			}
			if v1.DestroyedAt != nil {
				t.Errorf("v1 destroyed at %v right after rotating", v1.DestroyedAt)
			}
			if inGrace := v1.InGrace(now); inGrace != (tt.wantGrace > 0) {
				t.Errorf("v1 in grace = %v with %d grace days", inGrace, tt.wantGrace)
			}
			evs := f.events(t, keyledger.ActionKeyRotate, k.ID)
			if len(evs) != 1 {
				t.Fatalf("%d key.rotate events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Actor != f.owner.Email || ev.Version != 2 || ev.Env != tt.env {
				t.Errorf("key.rotate event %+v", ev)
			}
			if ev.Details["from_version"] != float64(1) || ev.Details["grace_days"] != float64(tt.wantGrace) {
				t.Errorf("key.rotate details %s, want from_version 1 and grace_days %d", ev.Raw, tt.wantGrace)
			}
			noSecretIn(t, value, ev.Raw, ev.Reason)
			noSecretIn(t, old, ev.Raw, ev.Reason)
		})
	}
}

func TestRotateKeyPermissions(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	tests := []struct {
		name string
		user *keyledger.User
		ok   bool
	}{
		{"owner", f.owner, true},
		{"lead", f.lead, true},
		{"admin", f.admin, true},
		{"other member", f.other, false},
		{"deactivated lead", f.gone, false},
	}
	for _, env := range []string{"development", "production"} {
		for _, tt := range tests {
			t.Run(env+"/"+tt.name, func(t *testing.T) {
				k, old := f.newKey(t, "Perm "+tt.name, env)
				before := f.tableCounts(t)
				value := secretValue(t, "sk-proj-")
				got, err := f.s.RotateKey(ctx, as(tt.user), k.ID, keyledger.RotateInput{Value: value})
				if !tt.ok {
					e := wantCodeError(t, err, keyledger.EFORBIDDEN)
					if got != nil {
						t.Errorf("refused rotation returned %+v", got)
					}
					if strings.Contains(e.Error(), value) {
						t.Error("error holds the new value")
					}
					if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
						t.Errorf("refused rotation changed rows: %v -> %v", before, after)
					}
					if r := f.revealValue(t, f.owner, k.ID); r.Value != old || r.Version != 1 {
						t.Errorf("refused rotation changed the value (version %d)", r.Version)
					}
					return
				}
				if err != nil {
					t.Fatalf("RotateKey as %s: %v", tt.name, err)
				}
				if got.CurrentVersion != 2 {
					t.Errorf("version %d", got.CurrentVersion)
				}
				if evs := f.events(t, keyledger.ActionKeyRotate, k.ID); len(evs) != 1 || evs[0].Actor != tt.user.Email {
					t.Errorf("key.rotate events %+v", evs)
				}
				if r := f.revealValue(t, f.owner, k.ID); r.Value != value {
					t.Error("reveal after rotation does not return the new value")
				}
			})
		}
	}
}

func TestRotateKeyValidation(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, old := f.newKey(t, "Validated", "development")
	fresh := secretValue(t, "sk-proj-")
	tests := []struct {
		name  string
		in    keyledger.RotateInput
		field string
	}{
		{"empty value", keyledger.RotateInput{Value: ""}, "value"},
		{"blank value", keyledger.RotateInput{Value: " \n\t "}, "value"},
		{"NUL in value", keyledger.RotateInput{Value: "sk-proj-abc\x00def0123456789"}, "value"},
		{"invalid UTF-8 value", keyledger.RotateInput{Value: "sk-proj-\xff\xfe0123456789"}, "value"},
		{"value over 8 KiB", keyledger.RotateInput{Value: strings.Repeat("v", 8<<10+1)}, "value"},
		{"grace -1", keyledger.RotateInput{Value: fresh, GraceDays: "-1"}, "grace_days"},
		{"grace 91", keyledger.RotateInput{Value: fresh, GraceDays: "91"}, "grace_days"},
		{"grace x", keyledger.RotateInput{Value: fresh, GraceDays: "x"}, "grace_days"},
		{"grace 1.5", keyledger.RotateInput{Value: fresh, GraceDays: "1.5"}, "grace_days"},
		{"expected version damaged", keyledger.RotateInput{Value: fresh, ExpectedVersion: "abc"}, "version"},
		{"expected version 0", keyledger.RotateInput{Value: fresh, ExpectedVersion: "0"}, "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.tableCounts(t)
			got, err := f.s.RotateKey(ctx, as(f.owner), k.ID, tt.in)
			wantField(t, err, keyledger.EINVALID, tt.field)
			if got != nil {
				t.Errorf("refused rotation returned %+v", got)
			}
			if tt.in.Value != "" && strings.Contains(err.Error(), tt.in.Value) {
				t.Error("error holds the value")
			}
			if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("refused rotation changed rows: %v -> %v", before, after)
			}
			cur, err := f.s.GetKey(ctx, as(f.owner), k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if cur.CurrentVersion != 1 || cur.MaskedHint != k.MaskedHint || !cur.RotateBy.Equal(k.RotateBy) {
				t.Errorf("refused rotation changed the key: %+v", cur)
			}
		})
	}
	if r := f.revealValue(t, f.owner, k.ID); r.Value != old || r.Version != 1 {
		t.Error("value changed by refused rotations")
	}
	t.Run("unknown key", func(t *testing.T) {
		_, err := f.s.RotateKey(ctx, as(f.owner), "7d444840-9dc0-11d1-b245-5ffdce74fad2", keyledger.RotateInput{Value: fresh})
		wantCode(t, err, keyledger.ENOTFOUND)
		_, err = f.s.RotateKey(ctx, as(f.owner), "not-a-uuid", keyledger.RotateInput{Value: fresh})
		wantCode(t, err, keyledger.ENOTFOUND)
	})
}

func TestRotateKeyConflicts(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, current := f.newKey(t, "Conflicted", "development")
	other, otherValue := f.newKey(t, "Other key", "production")
	archived, _ := f.newKey(t, "Archived", "development")
	if err := f.s.ArchiveKey(ctx, as(f.owner), archived.ID); err != nil {
		t.Fatal(err)
	}
	conflict := func(t *testing.T, id, value, wantName string) {
		t.Helper()
		before := f.tableCounts(t)
		// Confirmed whitespace does not make a value another key's.
		_, err := f.s.RotateKey(ctx, as(f.owner), id, keyledger.RotateInput{Value: value, KeepWhitespace: true})
		wantField(t, err, keyledger.ECONFLICT, "value")
		if wantName != "" && !strings.Contains(keyledger.FieldErrors(err)["value"], wantName) {
			t.Errorf("conflict does not name %q: %v", wantName, keyledger.FieldErrors(err))
		}
		if strings.Contains(err.Error(), value) || strings.Contains(fmt.Sprint(keyledger.FieldErrors(err)), value) {
			t.Error("conflict error holds the value")
		}
		// The refusal itself is audited (key.duplicate_value on the key
		// holding the value); nothing else changes.
		after := f.tableCounts(t)
		if after["audit_events"] != before["audit_events"]+1 {
			t.Errorf("refused rotation wrote %d audit events, want 1", after["audit_events"]-before["audit_events"])
		}
		after["audit_events"] = before["audit_events"]
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("refused rotation changed rows: %v -> %v", before, after)
		}
	}
	t.Run("value of another live key", func(t *testing.T) {
		conflict(t, k.ID, otherValue, other.Name)
	})
	t.Run("this key's current value", func(t *testing.T) {
		conflict(t, k.ID, current, k.Name)
		conflict(t, k.ID, "  "+current+"\n", k.Name)
	})
	t.Run("this key's superseded value in grace", func(t *testing.T) {
		next := secretValue(t, "sk-proj-")
		if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: next}); err != nil {
			t.Fatal(err)
		}
		conflict(t, k.ID, current, k.Name)
	})
	t.Run("archived key", func(t *testing.T) {
		before := f.tableCounts(t)
		_, err := f.s.RotateKey(ctx, as(f.owner), archived.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")})
		wantCode(t, err, keyledger.ECONFLICT)
		if !strings.Contains(err.Error(), "archived") {
			t.Errorf("archived conflict says %q", err)
		}
		if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("refused rotation changed rows: %v -> %v", before, after)
		}
	})
	t.Run("stale expected version", func(t *testing.T) {
		cur, err := f.s.GetKey(ctx, as(f.owner), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-"), ExpectedVersion: "1"})
		wantCode(t, err, keyledger.ECONFLICT)
		if !strings.Contains(err.Error(), fmt.Sprintf("version %d", cur.CurrentVersion)) {
			t.Errorf("stale rotation conflict %q does not name the current version %d", err, cur.CurrentVersion)
		}
	})
}

// TestRotateKeyConcurrentSameVersion: ten people press "rotate" on the
// page showing version 1 at the same moment. One wins; the others are
// told someone else rotated it.
func TestRotateKeyConcurrentSameVersion(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, _ := f.newKey(t, "Contended", "development")
	const n = 10
	values := make([]string, n)
	for i := range values {
		values[i] = secretValue(t, "sk-proj-")
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: values[i], ExpectedVersion: "1"})
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Errorf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
			continue
		}
		if keyledger.ErrorCode(err) != keyledger.ECONFLICT {
			t.Errorf("rotation %d: %v, want a conflict", i, err)
			continue
		}
		if !strings.Contains(err.Error(), "Someone rotated this key") || !strings.Contains(err.Error(), "version 2") {
			t.Errorf("rotation %d conflict message %q", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	got, err := f.s.GetKey(ctx, as(f.owner), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentVersion != 2 {
		t.Errorf("current version %d, want 2", got.CurrentVersion)
	}
	if n := f.actionCount(t, keyledger.ActionKeyRotate, k.ID); n != 1 {
		t.Errorf("%d key.rotate events, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1", k.ID); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	if r := f.revealValue(t, f.owner, k.ID); r.Value != values[winner] {
		t.Error("the current value is not the winner's")
	}
}

// TestRotateKeyConcurrentUnconditional: two rotations without an expected
// version, raced many times. Each round moves the key on by one or two
// versions, and the version history never repeats or skips a number.
func TestRotateKeyConcurrentUnconditional(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, _ := f.newKey(t, "Raced", "development")
	version, successes := 1, 0
	for round := range 20 {
		values := [2]string{secretValue(t, "sk-proj-"), secretValue(t, "sk-proj-")}
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				<-start
				_, errs[i] = f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: values[i], GraceDays: "1"})
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case keyledger.ErrorCode(err) == keyledger.ECONFLICT:
			default:
				t.Errorf("round %d rotation %d: %v (want success or conflict)", round, i, err)
			}
		}
		cur, err := f.s.GetKey(ctx, as(f.owner), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok == 0 || cur.CurrentVersion != version+ok {
			t.Errorf("round %d: %d succeeded, version %d -> %d", round, ok, version, cur.CurrentVersion)
		}
		version = cur.CurrentVersion
		successes += ok
	}
	if successes == 0 {
		t.Fatal("nothing succeeded")
	}
	// Versions are exactly 1..current, one of them current.
	if n := f.count(t, "SELECT count(DISTINCT version) FROM key_versions WHERE key_id = $1 AND version BETWEEN 1 AND $2", k.ID, version); n != version {
		t.Errorf("%d distinct versions 1..%d", n, version)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1", k.ID); n != version {
		t.Errorf("%d version rows, want %d", n, version)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND superseded_at IS NULL", k.ID); n != 1 {
		t.Errorf("%d unsuperseded versions, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND superseded_at IS NULL AND version = $2", k.ID, version); n != 1 {
		t.Error("the unsuperseded version is not the current one")
	}
	if n := f.actionCount(t, keyledger.ActionKeyRotate, k.ID); n != successes {
		t.Errorf("%d key.rotate events for %d rotations", n, successes)
	}
	if n := f.count(t, "SELECT count(DISTINCT key_version) FROM audit_events WHERE action = $1 AND key_id = $2", keyledger.ActionKeyRotate, k.ID); n != successes {
		t.Errorf("key.rotate events name %d distinct versions for %d rotations", n, successes)
	}
	verifyChained(t, f.s)
}

func TestRevealVersionAndDestroy(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, old := f.newKey(t, "Staged", "production")
	f.clock.Advance(time.Hour)
	value := secretValue(t, "sk-proj-")
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: value, GraceDays: "3"}); err != nil {
		t.Fatal(err)
	}
	destroyAfter := f.clock.Now().AddDate(0, 0, 3)

	// Within grace: the old value, audited as a reveal of version 1.
	r, err := f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "staged roll-out, old pods")
	if err != nil {
		t.Fatalf("RevealVersion 1 in grace: %v", err)
	}
	if r.Value != old || r.Version != 1 {
		t.Errorf("RevealVersion 1: version %d, old value = %v", r.Version, r.Value == old)
	}
	evs := f.events(t, keyledger.ActionKeyReveal, k.ID)
	if len(evs) != 1 || evs[0].Version != 1 || evs[0].Reason != "staged roll-out, old pods" || evs[0].Actor != f.owner.Email {
		t.Errorf("reveal events %+v", evs)
	}
	recs, err := f.s.KeyReveals(ctx, as(f.lead), k.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Version != 1 || recs[0].StillValid {
		t.Errorf("KeyReveals %+v, want one reveal of version 1, no longer current", recs)
	}
	if r, err := f.s.RevealVersion(ctx, as(f.owner), k.ID, 0, "current"); err != nil || r.Value != value || r.Version != 2 {
		t.Errorf("RevealVersion 0: version %d, err %v", r.Version, err)
	}

	// The policy applies to old versions as to current ones.
	_, err = f.s.RevealVersion(ctx, as(f.other), k.ID, 1, "curious")
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "")
	wantField(t, err, keyledger.EINVALID, "reason")
	_, err = f.s.RevealVersion(ctx, as(f.owner), k.ID, 7, "no such version")
	wantCode(t, err, keyledger.ENOTFOUND)

	// Just before the end of grace nothing is destroyed.
	f.clock.Advance(destroyAfter.Sub(f.clock.Now()) - time.Microsecond)
	if n, err := f.s.DestroyExpiredVersions(ctx); err != nil || n != 0 {
		t.Fatalf("DestroyExpiredVersions before the end of grace: %d, %v", n, err)
	}
	if _, err := f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "last minute"); err != nil {
		t.Errorf("RevealVersion 1 a microsecond before the end of grace: %v", err)
	}

	// At destroy_after the old version is refused, even though the
	// destroy job has not run yet.
	f.clock.Advance(time.Microsecond)
	reveals := f.actionCount(t, keyledger.ActionKeyReveal, k.ID)
	_, err = f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "too late")
	wantCode(t, err, keyledger.ECONFLICT)
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND version = 1 AND destroyed_at IS NULL AND ciphertext IS NOT NULL", k.ID); n != 1 {
		t.Fatal("version 1 already destroyed: this step tests the refusal before the destroy job")
	}
	if n := f.actionCount(t, keyledger.ActionKeyReveal, k.ID); n != reveals {
		t.Error("a refused reveal was audited as a reveal")
	}

	// The sweep shreds it: envelope gone, row kept, audited.
	now := f.clock.Now()
	n, err := f.s.DestroyExpiredVersions(ctx)
	if err != nil || n != 1 {
		t.Fatalf("DestroyExpiredVersions: %d, %v; want 1", n, err)
	}
	var wrappedNull, cipherNull, nonceKept bool
	var destroyedAt *time.Time
	if err := f.pool.QueryRow(ctx, `SELECT wrapped_dek IS NULL, ciphertext IS NULL, nonce IS NOT NULL, destroyed_at
		FROM key_versions WHERE key_id = $1 AND version = 1`, k.ID).Scan(&wrappedNull, &cipherNull, &nonceKept, &destroyedAt); err != nil {
		t.Fatal(err)
	}
	if !wrappedNull || !cipherNull || destroyedAt == nil || !destroyedAt.Equal(now) {
		t.Errorf("version 1 after destroy: wrapped_dek NULL %v, ciphertext NULL %v, destroyed_at %v", wrappedNull, cipherNull, destroyedAt)
	}
	vs := f.versions(t, f.owner, k.ID)
	if len(vs) != 2 || vs[1].DestroyedAt == nil || vs[1].InGrace(now) || !vs[2].Current() {
		t.Errorf("versions after destroy: %+v", vs)
	}
	devs := f.events(t, keyledger.ActionVersionDestroy, k.ID)
	if len(devs) != 1 || devs[0].Version != 1 || devs[0].Actor != "scheduler" || devs[0].Env != "production" {
		t.Errorf("key.version_destroyed events %+v", devs)
	}
	noSecretIn(t, old, devs[0].Raw)
	// The current version is untouched.
	var currentIntact bool
	if err := f.pool.QueryRow(ctx, `SELECT wrapped_dek IS NOT NULL AND ciphertext IS NOT NULL AND destroyed_at IS NULL AND destroy_after IS NULL
		FROM key_versions WHERE key_id = $1 AND version = 2`, k.ID).Scan(&currentIntact); err != nil || !currentIntact {
		t.Errorf("current version touched by the sweep (%v)", err)
	}
	if r := f.revealValue(t, f.owner, k.ID); r.Value != value || r.Version != 2 {
		t.Error("current version no longer reveals")
	}
	_, err = f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "after destroy")
	wantCode(t, err, keyledger.ECONFLICT)
	// A second sweep finds nothing.
	if n, err := f.s.DestroyExpiredVersions(ctx); err != nil || n != 0 {
		t.Errorf("second DestroyExpiredVersions: %d, %v", n, err)
	}
	if n := f.actionCount(t, keyledger.ActionVersionDestroy, k.ID); n != 1 {
		t.Errorf("%d key.version_destroyed events after two sweeps", n)
	}
	verifyChained(t, f.s)
}

func TestRotateGraceZero(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, _ := f.newKey(t, "Hard cut", "development")
	keep, _ := f.newKey(t, "Bystander", "development")
	value := secretValue(t, "sk-proj-")
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: value, GraceDays: "0"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "")
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.RollbackKey(ctx, as(f.owner), k.ID, 1, 0)
	wantCode(t, err, keyledger.ECONFLICT)
	n, err := f.s.DestroyExpiredVersions(ctx)
	if err != nil || n != 1 {
		t.Fatalf("DestroyExpiredVersions after grace 0: %d, %v; want 1", n, err)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND destroyed_at IS NOT NULL", keep.ID); n != 0 {
		t.Error("the sweep destroyed another key's version")
	}
	if r := f.revealValue(t, f.owner, k.ID); r.Value != value {
		t.Error("current value lost")
	}
}

func TestRollbackKey(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, v1 := f.newKey(t, "Rolled back", "staging")
	fingerprint := func(version int) []byte {
		t.Helper()
		var fp []byte
		if err := f.pool.QueryRow(ctx, "SELECT fingerprint FROM key_versions WHERE key_id = $1 AND version = $2", k.ID, version).Scan(&fp); err != nil {
			t.Fatal(err)
		}
		return fp
	}
	keyFingerprint := func() []byte {
		t.Helper()
		var fp []byte
		if err := f.pool.QueryRow(ctx, "SELECT fingerprint FROM keys WHERE id = $1", k.ID).Scan(&fp); err != nil {
			t.Fatal(err)
		}
		return fp
	}
	fp1 := fingerprint(1)
	if len(fp1) == 0 || !bytes.Equal(fp1, keyFingerprint()) {
		t.Fatal("version 1 has no fingerprint or not the key's")
	}
	f.clock.Advance(time.Hour)
	v2 := secretValue(t, "sk-proj-")
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: v2, GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	fp2 := fingerprint(2)
	if bytes.Equal(fp1, fp2) || !bytes.Equal(fp2, keyFingerprint()) {
		t.Fatal("fingerprints after rotation")
	}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			user    *keyledger.User
			version int
			code    string
		}{
			{"other member", f.other, 1, keyledger.EFORBIDDEN},
			{"deactivated lead", f.gone, 1, keyledger.EFORBIDDEN},
			{"to the current version", f.owner, 2, keyledger.ECONFLICT},
			{"to a version that never was", f.owner, 9, keyledger.ENOTFOUND},
		} {
			before := f.tableCounts(t)
			_, err := f.s.RollbackKey(ctx, as(tc.user), k.ID, tc.version, 0)
			if keyledger.ErrorCode(err) != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
			if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("%s: refused rollback changed rows", tc.name)
			}
		}
	})

	f.clock.Advance(24 * time.Hour)
	now := f.clock.Now()
	got, err := f.s.RollbackKey(ctx, as(f.lead), k.ID, 1, 2)
	if err != nil {
		t.Fatalf("RollbackKey within grace: %v", err)
	}
	if got.CurrentVersion != 1 || got.MaskedHint != k.MaskedHint {
		t.Errorf("after rollback: version %d, hint %q (v1's was %q)", got.CurrentVersion, got.MaskedHint, k.MaskedHint)
	}
	if !bytes.Equal(keyFingerprint(), fp1) {
		t.Error("key fingerprint is not v1's after rollback")
	}
	if r := f.revealValue(t, f.owner, k.ID); r.Value != v1 || r.Version != 1 {
		t.Errorf("reveal after rollback: version %d, v1 value %v", r.Version, r.Value == v1)
	}
	vs := f.versions(t, f.owner, k.ID)
	if !vs[1].Current() || vs[1].DestroyAfter != nil {
		t.Errorf("v1 after rollback: %+v", vs[1])
	}
	if vs[2].SupersededAt == nil || !vs[2].SupersededAt.Equal(now) || vs[2].DestroyAfter == nil || !vs[2].DestroyAfter.Equal(now.AddDate(0, 0, 2)) {
		t.Errorf("v2 after rollback: %+v, want superseded now with 2 days grace", vs[2])
	}
	if r, err := f.s.RevealVersion(ctx, as(f.owner), k.ID, 2, "the new key, for comparison"); err != nil || r.Value != v2 {
		t.Errorf("RevealVersion 2 in its grace: %v", err)
	}
	evs := f.events(t, keyledger.ActionKeyRollback, k.ID)
	if len(evs) != 1 || evs[0].Actor != f.lead.Email || evs[0].Version != 1 || evs[0].Details["from_version"] != float64(2) || evs[0].Details["grace_days"] != float64(2) {
		t.Errorf("key.rollback events %+v", evs)
	}
	noSecretIn(t, v1, evs[0].Raw)
	noSecretIn(t, v2, evs[0].Raw)

	_, err = f.s.RollbackKey(ctx, as(f.owner), k.ID, 1, 0)
	wantCode(t, err, keyledger.ECONFLICT)

	// A later rotation takes max+1, not current+1.
	v3 := secretValue(t, "sk-proj-")
	got, err = f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: v3, ExpectedVersion: "1"})
	if err != nil {
		t.Fatalf("rotate after rollback: %v", err)
	}
	if got.CurrentVersion != 3 {
		t.Errorf("rotation after rollback got version %d, want 3", got.CurrentVersion)
	}
	if r := f.revealValue(t, f.owner, k.ID); r.Value != v3 || r.Version != 3 {
		t.Error("reveal after rotating past a rollback")
	}

	// v2's grace (2 days from the rollback) ends: rolling back to it is
	// refused even before the sweep.
	f.clock.Advance(2 * 24 * time.Hour)
	before := f.tableCounts(t)
	_, err = f.s.RollbackKey(ctx, as(f.owner), k.ID, 2, 0)
	wantCode(t, err, keyledger.ECONFLICT)
	if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("refused rollback changed rows")
	}
	// v1 (superseded by v3 with the default grace) can still come back.
	if got, err := f.s.RollbackKey(ctx, as(f.owner), k.ID, 1, 0); err != nil || got.CurrentVersion != 1 {
		t.Errorf("rollback to v1 within its second grace: %v", err)
	}
	if n, err := f.s.DestroyExpiredVersions(ctx); err != nil || n != 1 {
		t.Errorf("DestroyExpiredVersions: %d, %v; want 1 (v2)", n, err)
	}
	_, err = f.s.RollbackKey(ctx, as(f.owner), k.ID, 2, 0)
	wantCode(t, err, keyledger.ECONFLICT)
}

func TestRollbackArchivedKey(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	k, _ := f.newKey(t, "Gone soon", "development")
	if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ArchiveKey(ctx, as(f.owner), k.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.RollbackKey(ctx, as(f.owner), k.ID, 1, 0)
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.RevealVersion(ctx, as(f.owner), k.ID, 1, "")
	wantCode(t, err, keyledger.ECONFLICT)
	if n, err := f.s.DestroyExpiredVersions(ctx); err != nil || n != 0 {
		t.Errorf("DestroyExpiredVersions after archive: %d, %v (archive already destroyed everything)", n, err)
	}
}

// TestSupersededValueStaysReserved: a value superseded but still in its
// grace period can come back by rollback, so no other key may take it
// meanwhile (by registration or rotation): otherwise the rollback would
// leave two live keys with one value. Once destroyed, the value is free.
func TestSupersededValueStaysReserved(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	a, v1 := f.newKey(t, "First", "development")
	b, _ := f.newKey(t, "Second", "development")
	if _, err := f.s.RotateKey(ctx, as(f.owner), a.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-"), GraceDays: "2"}); err != nil {
		t.Fatal(err)
	}
	before := f.tableCounts(t)
	_, err := f.s.CreateKey(ctx, as(f.other), keyledger.KeyInput{Name: "Copy", Project: "other", Environment: "development",
		OwnerEmail: f.other.Email, Value: v1})
	wantField(t, err, keyledger.ECONFLICT, "value")
	if !strings.Contains(keyledger.FieldErrors(err)["value"], a.Name) {
		t.Errorf("registration conflict does not name %q: %v", a.Name, keyledger.FieldErrors(err))
	}
	_, err = f.s.RotateKey(ctx, as(f.owner), b.ID, keyledger.RotateInput{Value: v1})
	wantField(t, err, keyledger.ECONFLICT, "value")
	if !strings.Contains(keyledger.FieldErrors(err)["value"], a.Name) {
		t.Errorf("rotation conflict does not name %q: %v", a.Name, keyledger.FieldErrors(err))
	}
	unchangedButAudit(t, before, f.tableCounts(t), 2)
	if _, err := f.s.RollbackKey(ctx, as(f.owner), a.ID, 1, 0); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	live := f.count(t, `SELECT count(*) FROM keys k JOIN keys k2 ON k2.fingerprint = k.fingerprint AND k2.id <> k.id
		WHERE k.archived_at IS NULL AND k2.archived_at IS NULL`)
	if live != 0 {
		t.Errorf("%d live keys share a value", live)
	}
	// Rotate away again with grace 0 and sweep: v1 is destroyed, the value
	// may now be registered elsewhere.
	if _, err := f.s.RotateKey(ctx, as(f.owner), a.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-"), GraceDays: "0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.DestroyExpiredVersions(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateKey(ctx, as(f.other), keyledger.KeyInput{Name: "Copy", Project: "other", Environment: "development",
		OwnerEmail: f.other.Email, Value: v1}); err != nil {
		t.Errorf("registering a destroyed version's value: %v", err)
	}
}

// TestDestroyExpiredVersionsConcurrent: two replicas sweep at once; each
// version is destroyed and audited once.
func TestDestroyExpiredVersionsConcurrent(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	const keys = 6
	for i := range keys {
		k, _ := f.newKey(t, fmt.Sprint("Swept ", i), "development")
		if _, err := f.s.RotateKey(ctx, as(f.owner), k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-"), GraceDays: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(24 * time.Hour)
	var wg sync.WaitGroup
	var counts [3]int
	var errs [3]error
	start := make(chan struct{})
	for i := range counts {
		wg.Go(func() {
			<-start
			counts[i], errs[i] = f.s.DestroyExpiredVersions(ctx)
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			t.Errorf("sweep %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != keys {
		t.Errorf("sweeps report %v destroyed, want %d in all", counts, keys)
	}
	if n := f.actionCount(t, keyledger.ActionVersionDestroy, ""); n != keys {
		t.Errorf("%d key.version_destroyed events, want %d", n, keys)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE destroyed_at IS NOT NULL AND ciphertext IS NULL AND wrapped_dek IS NULL"); n != keys {
		t.Errorf("%d versions shredded, want %d", n, keys)
	}
}
