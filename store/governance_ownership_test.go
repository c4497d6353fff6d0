package store_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestDashboardCounts checks each number of the ownership audit against
// keys built to land in it, and that the key list's status filters agree.
func TestDashboardCounts(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	leaver := f.user(t, "leaver@example.com", keyledger.RoleMember)

	// Two keys registered 200 days ago (rotation overdue by now); one of
	// them is revealed today, the other is stale.
	f.clock.Advance(-200 * 24 * time.Hour)
	old, _ := f.govKey(t, f.m, "old-unused", "development")
	oldUsed, _ := f.govKey(t, f.m, "old-used", "development")
	f.clock.Advance(200 * 24 * time.Hour)
	f.reveal(t, f.n, oldUsed.ID)

	f.govKey(t, f.m, "prod", "production")
	failing, _ := f.govKey(t, f.n, "failing", "development")
	f.govKey(t, leaver, "orphan", "staging")
	f.key(t, f.n, keyledger.KeyInput{Name: "due-soon", Project: "gov", Environment: "staging", OwnerEmail: f.n.Email,
		Value: secretValue(t, "sk-proj-"), RotationDays: "10"})
	archived, _ := f.govKey(t, f.m, "archived", "production")
	if err := f.s.ArchiveKey(ctx, as(f.m), archived.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, "UPDATE keys SET verify_result = 'invalid', last_verified_at = now() WHERE id = $1", failing.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), leaver.Email); err != nil {
		t.Fatal(err)
	}

	d, err := f.s.Dashboard(ctx, as(f.lead))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"development", "staging", "production"}; !reflect.DeepEqual(d.Environments, want) {
		t.Errorf("environments %v, want %v", d.Environments, want)
	}
	want := store.Dashboard{Environments: d.Environments, Total: 6, Orphaned: 1, NeverChecked: 5, Failing: 1, Overdue: 2, DueSoon: 1, Stale: 1,
		Inventory: noInventory(),
		Owners: []keyledger.OwnerKeys{
			{ID: leaver.ID, Email: leaver.Email, Name: "leaver", Active: false, Counts: map[string]int{"staging": 1}, Total: 1},
			{ID: f.m.ID, Email: f.m.Email, Name: "m", Active: true, Counts: map[string]int{"development": 2, "production": 1}, Total: 3},
			{ID: f.n.ID, Email: f.n.Email, Name: "n", Active: true, Counts: map[string]int{"development": 1, "staging": 1}, Total: 2},
		}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Dashboard =\n %+v\nwant\n %+v", d, want)
	}

	// The key list's filters give the same numbers (and the same keys).
	byStatus := func(status string) []string {
		t.Helper()
		page, err := f.s.ListKeys(ctx, as(f.lead), store.KeyFilter{Status: status, PerPage: 200})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range page.Keys {
			names = append(names, k.Name)
		}
		if page.Total != len(names) {
			t.Errorf("status %s: total %d, %d keys", status, page.Total, len(names))
		}
		return names
	}
	for status, want := range map[string][]string{
		"orphaned":       {"orphan"},
		"stale":          {"old-unused"},
		"failing":        {"failing"},
		"overdue":        {"old-unused", "old-used"},
		"due_soon":       {"due-soon"},
		"never_verified": {"due-soon", "old-unused", "old-used", "orphan", "prod"},
	} {
		if got := byStatus(status); !reflect.DeepEqual(got, want) {
			t.Errorf("ListKeys status=%s: %v, want %v", status, got, want)
		}
	}
	if got := byStatus(""); len(got) != d.Total {
		t.Errorf("ListKeys lists %d live keys, dashboard total %d", len(got), d.Total)
	}

	// A reveal within 180 days makes a key not stale.
	f.reveal(t, f.lead, old.ID)
	if d, err = f.s.Dashboard(ctx, as(f.admin)); err != nil || d.Stale != 0 {
		t.Errorf("stale after a reveal = %d, %v; want 0", d.Stale, err)
	}
	if got := byStatus("stale"); len(got) != 0 {
		t.Errorf("ListKeys status=stale after a reveal: %v", got)
	}
	// So does an export: nothing else is stale, and a key registered 200
	// days ago and only exported since is not either.
	f.clock.Advance(-200 * 24 * time.Hour)
	exported := f.key(t, f.o, keyledger.KeyInput{Name: "exported", Project: "export-only", Environment: "development", OwnerEmail: f.o.Email, Value: secretValue(t, "sk-proj-")})
	f.clock.Advance(200 * 24 * time.Hour)
	if d, _ := f.s.Dashboard(ctx, as(f.admin)); d.Stale != 1 {
		t.Errorf("stale with a new old key = %d, want 1", d.Stale)
	}
	if _, err := f.s.ExportKeys(ctx, as(f.o), "development", "export-only", "", keyledger.FormatDotenv); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Dashboard(ctx, as(f.admin)); d.Stale != 0 {
		t.Errorf("stale after exporting %s = %d, want 0", exported.Name, d.Stale)
	}
	// Once 180 days pass without a reveal, both are stale again.
	f.clock.Advance(181 * 24 * time.Hour)
	if d, _ := f.s.Dashboard(ctx, as(f.admin)); d.Stale != d.Total {
		t.Errorf("181 days later: stale %d of %d", d.Stale, d.Total)
	}

	_, err = f.s.Dashboard(ctx, as(f.m))
	wantCode(t, err, keyledger.EFORBIDDEN)
}

func TestUserSeen(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	c, _ := f.govKey(t, f.o, "charlie", "development")
	d, _ := f.govKey(t, f.o, "delta", "staging")
	if _, err := f.s.Reveal(ctx, as(f.m), c.ID, "debugging the webhook"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.ExportKeys(ctx, as(f.m), "staging", "", "deploying", keyledger.FormatBash); err != nil {
		t.Fatal(err)
	}
	f.reveal(t, f.n, c.ID) // not m's

	seen, err := f.s.UserSeen(ctx, as(f.lead), f.m.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Fatalf("UserSeen = %+v, want 2 records", seen)
	}
	if r := seen[0]; r.Action != keyledger.ActionKeyExport || r.KeyID != d.ID || r.KeyName != "delta" || r.Environment != "staging" ||
		r.Version != 1 || r.Reason != "deploying" || !r.Current || r.Archived || r.Time.IsZero() {
		t.Errorf("newest record = %+v, want the export of delta", r)
	}
	if r := seen[1]; r.Action != keyledger.ActionKeyReveal || r.KeyID != c.ID || r.Version != 1 || r.Reason != "debugging the webhook" || !r.Current {
		t.Errorf("older record = %+v, want the reveal of charlie", r)
	}

	// Rotation makes the record not current; so does archiving.
	f.rotate(t, f.o, c.ID)
	if err := f.s.ArchiveKey(ctx, as(f.o), d.ID); err != nil {
		t.Fatal(err)
	}
	seen, err = f.s.UserSeen(ctx, as(f.admin), f.m.ID, 0)
	if err != nil || len(seen) != 2 {
		t.Fatalf("UserSeen = %+v, %v", seen, err)
	}
	if seen[0].Current || !seen[0].Archived || seen[1].Current || seen[1].Archived {
		t.Errorf("after rotate and archive: %+v", seen)
	}
	// Seeing the new version is current again.
	f.reveal(t, f.m, c.ID)
	// The person sees their own; limit applies.
	seen, err = f.s.UserSeen(ctx, as(f.m), f.m.ID, 1)
	if err != nil || len(seen) != 1 || seen[0].Version != 2 || !seen[0].Current || seen[0].KeyID != c.ID {
		t.Errorf("own UserSeen limit 1 = %+v, %v", seen, err)
	}
	// Someone else's is not found to a member.
	_, err = f.s.UserSeen(ctx, as(f.n), f.m.ID, 0)
	wantCode(t, err, keyledger.ENOTFOUND)
	_, err = f.s.UserSeen(ctx, keyledger.Actor{}, f.m.ID, 0)
	wantCode(t, err, keyledger.ENOTFOUND)
	if seen, err := f.s.UserSeen(ctx, as(f.lead), f.lead.ID, 0); err != nil || len(seen) != 0 {
		t.Errorf("UserSeen of someone who saw nothing = %+v, %v", seen, err)
	}
}

func TestReassignKeys(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	k1, _ := f.govKey(t, f.m, "one", "development")
	k2, _ := f.govKey(t, f.m, "two", "production")
	k3, _ := f.govKey(t, f.m, "three", "staging")
	gone := f.user(t, "gone@example.com", keyledger.RoleMember)
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), gone.Email); err != nil {
		t.Fatal(err)
	}
	owner := func(k *keyledger.Key) int64 {
		t.Helper()
		got, err := f.s.GetKey(ctx, as(f.lead), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.OwnerID
	}

	// A subset.
	n, err := f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, " N@example.com ", []string{k1.ID})
	if err != nil || n != 1 {
		t.Fatalf("ReassignKeys subset = %d, %v", n, err)
	}
	if owner(k1) != f.n.ID || owner(k2) != f.m.ID || owner(k3) != f.m.ID {
		t.Error("subset reassignment moved the wrong keys")
	}
	ev := f.events(t, keyledger.ActionKeyReassign, k1.ID)
	if len(ev) != 1 || ev[0].Details["from"] != f.m.Email || ev[0].Details["to"] != f.n.Email || ev[0].Env != "development" {
		t.Errorf("key.reassign events = %+v", ev)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2", keyledger.ActionKeyReassign, f.n.ID); n != 1 {
		t.Errorf("%d reassign events name n as subject, want 1", n)
	}

	before := f.tableCounts(t)
	// To an inactive user, the same owner, nobody.
	_, err = f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, gone.Email, nil)
	wantField(t, err, keyledger.EINVALID, "owner")
	_, err = f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, f.m.Email, nil)
	wantField(t, err, keyledger.EINVALID, "owner")
	_, err = f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, "nobody@example.com", nil)
	wantField(t, err, keyledger.EINVALID, "owner")
	_, err = f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, "", nil)
	wantField(t, err, keyledger.EINVALID, "owner")
	// A key not (or no longer) owned by m: nothing moves, not even k2.
	_, err = f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, f.o.Email, []string{k2.ID, k1.ID})
	wantCode(t, err, keyledger.ECONFLICT)
	// Members may not; malformed ids are not found; an unknown source user.
	_, err = f.s.ReassignKeys(ctx, as(f.m), f.m.ID, f.n.Email, nil)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, f.n.Email, []string{"not-a-uuid"})
	wantCode(t, err, keyledger.ENOTFOUND)
	_, err = f.s.ReassignKeys(ctx, as(f.lead), 999999, f.n.Email, nil)
	wantCode(t, err, keyledger.ENOTFOUND)
	if owner(k2) != f.m.ID || owner(k3) != f.m.ID {
		t.Error("a refused reassignment moved keys")
	}
	if after := f.tableCounts(t); !reflect.DeepEqual(before, after) {
		t.Errorf("refused reassignments changed rows: %v -> %v", before, after)
	}

	// The rest, all at once; archived keys stay where they are.
	if err := f.s.ArchiveKey(ctx, as(f.m), k3.ID); err != nil {
		t.Fatal(err)
	}
	n, err = f.s.ReassignKeys(ctx, as(f.admin), f.m.ID, f.o.Email, nil)
	if err != nil || n != 1 {
		t.Fatalf("ReassignKeys all = %d, %v; want 1 (k2)", n, err)
	}
	if owner(k2) != f.o.ID || owner(k3) != f.m.ID {
		t.Error("reassign all moved the wrong keys")
	}
	if n, err := f.s.ReassignKeys(ctx, as(f.admin), f.m.ID, f.o.Email, nil); err != nil || n != 0 {
		t.Errorf("reassigning nothing = %d, %v", n, err)
	}
}

func TestCreateEnvironment(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	good := keyledger.EnvironmentInput{Name: " QA ", RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true, Sensitive: true, RotationDays: "30"}

	before := f.tableCounts(t)
	for _, name := range []string{"", "qa env", "qa/1", "qa.1", "ünï", strings.Repeat("a", 51)} {
		in := good
		in.Name = name
		_, err := f.s.CreateEnvironment(ctx, as(f.admin), in)
		wantField(t, err, keyledger.EINVALID, "name")
	}
	for _, policy := range []string{"", "everyone", "ANY_USER"} {
		in := good
		in.RevealPolicy = policy
		_, err := f.s.CreateEnvironment(ctx, as(f.admin), in)
		wantField(t, err, keyledger.EINVALID, "reveal_policy")
	}
	for _, days := range []string{"", "0", "-5", "abc", "3651", "1.5"} {
		in := good
		in.RotationDays = days
		_, err := f.s.CreateEnvironment(ctx, as(f.admin), in)
		wantField(t, err, keyledger.EINVALID, "rotation_days")
	}
	for _, u := range []*keyledger.User{f.lead, f.m} {
		_, err := f.s.CreateEnvironment(ctx, as(u), good)
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	_, err := f.s.CreateEnvironment(ctx, as(f.admin), keyledger.EnvironmentInput{Name: "Staging", RevealPolicy: "any_user", RotationDays: "90"})
	wantField(t, err, keyledger.ECONFLICT, "name")
	if after := f.tableCounts(t); !reflect.DeepEqual(before, after) {
		t.Errorf("refused creations changed rows: %v -> %v", before, after)
	}

	env, err := f.s.CreateEnvironment(ctx, as(f.admin), good)
	if err != nil {
		t.Fatal(err)
	}
	if env.ID == 0 || env.Name != "qa" || env.RevealPolicy != keyledger.RevealOwnerLeadsAdmins || !env.ReasonRequired || !env.Sensitive || env.RotationDays != 30 {
		t.Errorf("created %+v", env)
	}
	got, err := f.s.Environment(ctx, "qa")
	if err != nil || got != env {
		t.Errorf("Environment(qa) = %+v, %v; want %+v", got, err, env)
	}
	envs, _ := f.s.Environments(ctx, keyledger.SystemActor("test"))
	if len(envs) != 4 || envs[3].Name != "qa" {
		t.Errorf("environments %+v, want qa last", envs)
	}
	_, err = f.s.CreateEnvironment(ctx, as(f.admin), good)
	wantField(t, err, keyledger.ECONFLICT, "name")
	var details string
	if err := f.pool.QueryRow(ctx, "SELECT details::text FROM audit_events WHERE action = $1 AND environment = 'qa' AND actor_id = $2",
		keyledger.ActionEnvCreate, f.admin.ID).Scan(&details); err != nil {
		t.Fatalf("environment.create event: %v", err)
	}
	for _, want := range []string{`"reveal_policy": "owner_leads_admins"`, `"rotation_days": 30`, `"sensitive": true`} {
		if !strings.Contains(details, want) {
			t.Errorf("environment.create details %s lack %s", details, want)
		}
	}
	// Keys can live there, with its rotation default.
	k := f.key(t, f.m, keyledger.KeyInput{Name: "qa-key", Project: "gov", Environment: "qa", OwnerEmail: f.m.Email, Value: secretValue(t, "sk-proj-")})
	if k.EffectiveDays != 30 || !k.EnvironmentInfo.Sensitive {
		t.Errorf("key in qa: %+v", k)
	}
}

func TestUpdateEnvironment(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	dflt, _ := f.govKey(t, f.o, "default-interval", "development")
	own := f.key(t, f.o, keyledger.KeyInput{Name: "own-interval", Project: "gov", Environment: "development", OwnerEmail: f.o.Email,
		Value: secretValue(t, "sk-proj-"), RotationDays: "30"})
	prod, _ := f.govKey(t, f.o, "prod", "production")
	f.reveal(t, f.n, dflt.ID) // any user, for now

	in := keyledger.EnvironmentInput{RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), RotationDays: "60"}
	for _, u := range []*keyledger.User{f.lead, f.m} {
		_, err := f.s.UpdateEnvironment(ctx, as(u), "development", in)
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	_, err := f.s.UpdateEnvironment(ctx, as(f.admin), "nowhere", in)
	wantCode(t, err, keyledger.ENOTFOUND)
	_, err = f.s.UpdateEnvironment(ctx, as(f.admin), "development", keyledger.EnvironmentInput{RevealPolicy: "any_user", RotationDays: "0"})
	wantField(t, err, keyledger.EINVALID, "rotation_days")

	env, err := f.s.UpdateEnvironment(ctx, as(f.admin), "development", in)
	if err != nil {
		t.Fatal(err)
	}
	if env.Name != "development" || env.RevealPolicy != keyledger.RevealOwnerLeadsAdmins || env.RotationDays != 60 {
		t.Errorf("updated %+v", env)
	}
	// The very next reveal follows the new policy.
	_, err = f.s.Reveal(ctx, as(f.n), dflt.ID, "")
	wantCode(t, err, keyledger.EFORBIDDEN)
	f.reveal(t, f.o, dflt.ID)
	f.reveal(t, f.lead, dflt.ID)
	// Rotation due dates: keys on the default move, their own do not.
	got, err := f.s.GetKey(ctx, as(f.o), dflt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := keyledger.RotateBy(got.LastRotatedAt.UTC(), 60); !got.RotateBy.Equal(want) || got.EffectiveDays != 60 {
		t.Errorf("default-interval key: rotate by %v (every %d days), want %v (60)", got.RotateBy, got.EffectiveDays, want)
	}
	gotOwn, err := f.s.GetKey(ctx, as(f.o), own.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !gotOwn.RotateBy.Equal(own.RotateBy) || gotOwn.EffectiveDays != 30 {
		t.Errorf("own-interval key: rotate by %v (every %d), want %v (30)", gotOwn.RotateBy, gotOwn.EffectiveDays, own.RotateBy)
	}
	gotProd, _ := f.s.GetKey(ctx, as(f.o), prod.ID)
	if !gotProd.RotateBy.Equal(prod.RotateBy) {
		t.Errorf("a production key moved: %v -> %v", prod.RotateBy, gotProd.RotateBy)
	}
	ev := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND environment = 'development' AND details->'before'->>'reveal_policy' = 'any_user' AND details->'after'->>'reveal_policy' = 'owner_leads_admins' AND (details->'after'->>'rotation_days')::int = 60",
		keyledger.ActionEnvUpdate)
	if ev != 1 {
		t.Errorf("%d environment.update events with before and after, want 1", ev)
	}

	// And back: any user again at once.
	if _, err := f.s.UpdateEnvironment(ctx, as(f.admin), "development", keyledger.EnvironmentInput{RevealPolicy: "any_user", RotationDays: "60"}); err != nil {
		t.Fatal(err)
	}
	f.reveal(t, f.n, dflt.ID)
}

// noInventory is the inventory counts with no provider connected: every
// state, none counted.
func noInventory() map[keyledger.InventoryState]int {
	m := map[keyledger.InventoryState]int{}
	for _, st := range keyledger.InventoryStates() {
		m[st] = 0
	}
	return m
}
