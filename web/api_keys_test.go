package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// listAll follows next_cursor from the first page of query and returns
// every key, failing on a page larger than limit.
func (a *apiT) listAll(tok, query string, limit int) ([]wire.Key, int) {
	a.t.Helper()
	var all []wire.Key
	pages := 0
	cursor := ""
	for {
		q, _ := url.ParseQuery(query)
		q.Set("limit", fmt.Sprint(limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := a.get(tok, "/api/v1/keys?"+q.Encode())
		if r.Status != http.StatusOK {
			a.t.Fatalf("page %d: %d %s", pages+1, r.Status, r.Body)
		}
		var page wire.KeyList
		r.decode(a.t, &page)
		pages++
		if len(page.Keys) > limit {
			a.t.Fatalf("page of %d keys with limit %d", len(page.Keys), limit)
		}
		all = append(all, page.Keys...)
		if page.NextCursor == nil {
			return all, pages
		}
		if len(page.Keys) == 0 {
			a.t.Fatal("an empty page with a next_cursor")
		}
		cursor = *page.NextCursor
		if pages > 1000 {
			a.t.Fatal("no end to the pages")
		}
	}
}

// TestAPIKeyListPagination: 120 keys in pages of 50 (and other sizes)
// come back each exactly once, in name order (case-insensitive, ties by
// id); keys registered before the cursor meanwhile do not shift pages.
func TestAPIKeyListPagination(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withAPIRate(1000))
	a := newAPI(t, env)
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 120 {
		// Mixed case, and the same name in several projects and
		// environments, so that the order needs lower() and the id.
		name := fmt.Sprintf("Key %03d", i/3)
		if i%2 == 1 {
			name = strings.ToLower(name)
		}
		project := fmt.Sprintf("proj-%d", i%3)
		envName := authzEnvs[i%3]
		u := env.Users[[]string{"member", "member2", "lead"}[i%3]]
		res, err := env.Store.CreateKey(ctx, keyledger.Actor{User: u}, keyledger.KeyInput{
			Name: name, Project: project, Environment: envName, OwnerEmail: u.Email, Value: a.secret()})
		if err != nil {
			t.Fatal(err)
		}
		want[res.Key.ID] = true
	}
	tok := a.token("member2", "read")
	for _, limit := range []int{50, 7, 1, 200} {
		keys, pages := a.listAll(tok, "", limit)
		if wantPages := (120 + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k.ID] {
				t.Errorf("limit %d: key %s listed twice", limit, k.ID)
			}
			seen[k.ID] = true
			if !want[k.ID] {
				t.Errorf("limit %d: unknown key %s", limit, k.ID)
			}
		}
		if len(seen) != 120 {
			t.Errorf("limit %d: %d distinct keys, want 120", limit, len(seen))
		}
		if !sort.SliceIsSorted(keys, func(i, j int) bool {
			li, lj := strings.ToLower(keys[i].Name), strings.ToLower(keys[j].Name)
			return li < lj || (li == lj && keys[i].ID < keys[j].ID)
		}) {
			t.Errorf("limit %d: keys not in (lower(name), id) order", limit)
		}
	}

	// Default page size 50; a key registered before the cursor after the
	// first page is not listed later and does not repeat a key.
	r := a.get(tok, "/api/v1/keys")
	var first wire.KeyList
	r.decode(t, &first)
	if len(first.Keys) != 50 || first.NextCursor == nil {
		t.Fatalf("first page: %d keys, cursor %v", len(first.Keys), first.NextCursor)
	}
	early, _ := a.key("member", "development", "AAA registered meanwhile")
	seen := map[string]bool{}
	for _, k := range first.Keys {
		seen[k.ID] = true
	}
	cursor := *first.NextCursor
	for cursor != "" {
		r := a.get(tok, "/api/v1/keys?cursor="+url.QueryEscape(cursor))
		var p wire.KeyList
		r.decode(t, &p)
		for _, k := range p.Keys {
			if seen[k.ID] || k.ID == early.ID {
				t.Errorf("key %s (%s) listed after the cursor passed it", k.ID, k.Name)
			}
			seen[k.ID] = true
		}
		cursor = ""
		if p.NextCursor != nil {
			cursor = *p.NextCursor
		}
	}
	if len(seen) != 120 {
		t.Errorf("%d keys across the pages, want 120", len(seen))
	}

	// Filters combine with the cursor.
	keys, _ := a.listAll(tok, "environment=production&project=proj-2", 3)
	if len(keys) != 40 {
		t.Errorf("production/proj-2: %d keys, want 40", len(keys))
	}
	for _, k := range keys {
		if k.Environment != "production" || k.Project != "proj-2" || k.Owner.Email != "lead@example.com" {
			t.Errorf("filtered listing has %s/%s owned by %s", k.Environment, k.Project, k.Owner.Email)
		}
	}
	if keys, _ := a.listAll(tok, "owner=member2@example.com&q=KEY+007", 50); len(keys) != 1 {
		t.Errorf("owner + q: %d keys, want 1", len(keys))
	}
}

// TestAPIKeyListFilters: each filter of the page, and bad parameters as
// 422 naming the parameter.
func TestAPIKeyListFilters(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	ctx := context.Background()
	dev, _ := a.key("member", "development", "Payments OpenAI")
	prod, _ := a.key("member2", "production", "Search OpenAI")
	aws, _ := a.key("member", "staging", "Backups")
	if _, err := env.Pool.Exec(ctx, "UPDATE keys SET provider = 'aws', rotate_by = now() - interval '1 day' WHERE id = $1", aws.ID); err != nil {
		t.Fatal(err)
	}
	archived, _ := a.key("member", "development", "Old one")
	if err := env.Store.ArchiveKey(ctx, keyledger.Actor{User: env.Users["member"]}, archived.ID); err != nil {
		t.Fatal(err)
	}
	tok := a.token("member", "read")
	ids := func(query string) string {
		t.Helper()
		keys, _ := a.listAll(tok, query, 50)
		var out []string
		for _, k := range keys {
			out = append(out, k.Name)
		}
		return strings.Join(out, ",")
	}
	for query, want := range map[string]string{
		"":                                "Backups,Payments OpenAI,Search OpenAI",
		"environment=production":          "Search OpenAI",
		"environment=Production":          "Search OpenAI",
		"owner=member@example.com":        "Backups,Payments OpenAI",
		"provider=aws":                    "Backups",
		"provider=openai":                 "Payments OpenAI,Search OpenAI",
		"project=checkout":                "Backups,Payments OpenAI,Search OpenAI",
		"project=nope":                    "",
		"q=openai":                        "Payments OpenAI,Search OpenAI",
		"q=%25":                           "",
		"status=overdue":                  "Backups",
		"status=archived":                 "Old one",
		"status=never_verified":           "Backups,Payments OpenAI,Search OpenAI",
		"environment=staging&status=ok":   "",
		"environment=nope&status=failing": "",
	} {
		if got := ids(query); got != want {
			t.Errorf("?%s: %q, want %q", query, got, want)
		}
	}
	// The key JSON.
	r := a.get(tok, "/api/v1/keys?q=Search")
	var page wire.KeyList
	r.decode(t, &page)
	if len(page.Keys) != 1 {
		t.Fatalf("%d keys", len(page.Keys))
	}
	k := page.Keys[0]
	if k.ID != prod.ID || k.Provider != "openai" || k.Owner.Email != "member2@example.com" || k.Owner.Name != "Member2" || !k.Owner.Active ||
		k.RotationDays != nil || k.EffectiveRotationDays != 90 || k.RotationStatus != "ok" || k.CurrentVersion != 1 ||
		k.LastVerifiedAt != nil || k.VerifyResult != nil || k.ArchivedAt != nil || !strings.HasPrefix(k.MaskedHint, "sk-proj") {
		t.Errorf("key JSON %+v", k)
	}
	_ = dev

	for query, field := range map[string]string{
		"limit=0":                           "limit",
		"limit=201":                         "limit",
		"limit=ten":                         "limit",
		"status=expired":                    "status",
		"cursor=not-a-cursor":               "cursor",
		"cursor=eyJrIjoia2V5cyJ9":           "cursor", // {"k":"keys"}: no position
		"cursor=eyJrIjoiYXVkaXQiLCJiIjo1fQ": "cursor", // an audit cursor
		"cursor=eyJrIjoia2V5cyIsIm4iOiJhIiwiaSI6IngnOy0tIn0": "cursor", // an id that is not a uuid
	} {
		r := a.get(tok, "/api/v1/keys?"+query)
		a.want(r, http.StatusUnprocessableEntity, "invalid")
		if r.field(field) == "" {
			t.Errorf("?%s: no message for %s: %s", query, field, r.Body)
		}
	}
}

// TestAPIKeyGet: a key with its versions; unknown ids are 404.
func TestAPIKeyGet(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	k, _ := a.key("member", "production", "detail")
	v2 := a.secret()
	if _, err := env.Store.RotateKey(context.Background(), keyledger.Actor{User: env.Users["member"]}, k.ID, keyledger.RotateInput{Value: v2, GraceDays: "3"}); err != nil {
		t.Fatal(err)
	}
	tok := a.token("member2", "read") // not the owner: metadata is for everyone
	r := a.get(tok, "/api/v1/keys/"+k.ID)
	a.want(r, http.StatusOK, "")
	var got wire.KeyDetail
	r.decode(t, &got)
	if got.ID != k.ID || got.CurrentVersion != 2 || len(got.Versions) != 2 {
		t.Fatalf("detail %+v", got)
	}
	v := got.Versions
	if v[0].Version != 2 || !v[0].Current || v[0].SupersededAt != nil || v[1].Version != 1 || v[1].Current || v[1].SupersededAt == nil ||
		v[1].DestroyAfter == nil || v[1].DestroyAfter.Sub(*v[1].SupersededAt) != 72*time.Hour || v[0].CreatedBy == nil || *v[0].CreatedBy != "member@example.com" {
		t.Errorf("versions %+v", v)
	}
	if got.MaskedHint != v[0].MaskedHint {
		t.Errorf("masked hints: key %q, current version %q", got.MaskedHint, v[0].MaskedHint)
	}
	for _, id := range []string{"6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f", "not-a-uuid", k.ID + "0", "%27%20OR%201%3D1"} {
		r := a.get(tok, "/api/v1/keys/"+id)
		a.want(r, http.StatusNotFound, "not_found")
		if r.errMessage() != "Key not found." {
			t.Errorf("GET %s: message %q", id, r.errMessage())
		}
	}
}

// TestAPIKeyCreate: registration with the form's rules and field names;
// the value is never echoed; the audit event names the token.
func TestAPIKeyCreate(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	tok, tokID := a.tokenWithID("member")
	value := a.secret()
	r := a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{
		"name": "Checkout OpenAI", "project": "checkout", "environment": "Development", "owner": "Member2@Example.com",
		"value": "  " + value + "\n", "scope": "models:read", "rotation_days": 30, "description": "Line one\nline two"})
	a.want(r, http.StatusCreated, "")
	var created wire.KeyCreated
	r.decode(t, &created)
	k := created.Key
	if k.Name != "Checkout OpenAI" || k.Provider != "openai" || k.Environment != "development" || k.Owner.Email != "member2@example.com" ||
		k.RotationDays == nil || *k.RotationDays != 30 || k.EffectiveRotationDays != 30 || k.Scope != "models:read" || len(created.Warnings) != 0 {
		t.Errorf("created %+v, warnings %q", k, created.Warnings)
	}
	if until := time.Until(k.RotateBy); until < 29*24*time.Hour || until > 31*24*time.Hour {
		t.Errorf("rotate_by %v", k.RotateBy)
	}
	// Stored exactly as sent, surrounding whitespace included (issue 12,
	// item 5), readable by reveal.
	rev, err := env.Store.Reveal(context.Background(), keyledger.Actor{User: env.Users["member2"]}, k.ID, "")
	if err != nil || rev.Value != "  "+value+"\n" {
		t.Errorf("stored value differs (%v)", err)
	}
	ev := a.events(k.ID, keyledger.ActionKeyCreate)
	if len(ev) != 1 || viaToken(t, ev[0]) != tokID || ev[0].ActorEmail != "member@example.com" {
		t.Errorf("create events %+v, want one via token %d", ev, tokID)
	}

	// rotation_days null: the environment's default; a live-looking key
	// outside production: a warning.
	live := "sk_live_" + authzRand(12)
	a.secrets.add(live)
	r = a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{"name": "Stripe", "project": "checkout", "environment": "staging",
		"owner": "member@example.com", "value": live, "rotation_days": nil})
	a.want(r, http.StatusCreated, "")
	r.decode(t, &created)
	if created.Key.RotationDays != nil || created.Key.EffectiveRotationDays != 90 || created.Key.Provider != "stripe" ||
		len(created.Warnings) != 1 || !strings.Contains(created.Warnings[0], "live production key") {
		t.Errorf("stripe key %+v, warnings %q", created.Key, created.Warnings)
	}

	// Validation: 422 with the form's field names.
	r = a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	for _, f := range []string{"name", "project", "environment", "owner", "value"} {
		if r.field(f) == "" {
			t.Errorf("empty registration: no message for %s: %s", f, r.Body)
		}
	}
	for _, tc := range []struct {
		change map[string]any
		field  string
	}{
		{map[string]any{"environment": "prod"}, "environment"},
		{map[string]any{"owner": "nobody@example.com"}, "owner"},
		{map[string]any{"owner": "gone@example.com"}, "owner"},
		{map[string]any{"owner": "not an email"}, "owner"},
		{map[string]any{"rotation_days": 0}, "rotation_days"},
		{map[string]any{"rotation_days": 4000}, "rotation_days"},
		{map[string]any{"name": strings.Repeat("n", 201)}, "name"},
		{map[string]any{"value": "   "}, "value"},
		{map[string]any{"value": strings.Repeat("v", 9000)}, "value"},
	} {
		body := map[string]any{"name": "valid " + authzRand(3), "project": "checkout", "environment": "development", "owner": "member@example.com", "value": a.secret()}
		for k, v := range tc.change {
			body[k] = v
		}
		r := a.do(tok, http.MethodPost, "/api/v1/keys", body)
		a.want(r, http.StatusUnprocessableEntity, "invalid")
		if r.field(tc.field) == "" {
			t.Errorf("%v: no message for %s: %s", tc.change, tc.field, r.Body)
		}
	}

	// Conflicts: 409 with the field.
	r = a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{"name": "Another", "project": "other", "environment": "production", "owner": "member@example.com", "value": value})
	a.want(r, http.StatusConflict, "conflict")
	if !strings.Contains(r.field("value"), "Checkout OpenAI") {
		t.Errorf("duplicate value: fields.value %q should name the existing key", r.field("value"))
	}
	r = a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{"name": "checkout openai", "project": "checkout", "environment": "development", "owner": "member@example.com", "value": a.secret()})
	a.want(r, http.StatusConflict, "conflict")
	if r.field("name") == "" {
		t.Errorf("duplicate name: no message for name: %s", r.Body)
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM keys").Scan(&n); err != nil || n != 2 {
		t.Errorf("%d keys after the refusals, want 2 (%v)", n, err)
	}
}

// TestAPIKeyRotate: a new current version; the form's rules as 422 and 409.
func TestAPIKeyRotate(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	k, old := a.key("member", "production", "rotate me")
	other, _ := a.key("member2", "development", "someone else's")
	tok, tokID := a.tokenWithID("member")
	path := "/api/v1/keys/" + k.ID + "/rotate"
	v2 := a.secret()
	r := a.do(tok, http.MethodPost, path, map[string]any{"value": v2, "grace_days": 2, "expected_version": 1})
	a.want(r, http.StatusOK, "")
	var got wire.KeyDetail
	r.decode(t, &got)
	if got.ID != k.ID || got.CurrentVersion != 2 || len(got.Versions) != 0 {
		t.Errorf("rotated %+v", got)
	}
	ev := a.events(k.ID, keyledger.ActionKeyRotate)
	if len(ev) != 1 || viaToken(t, ev[0]) != tokID {
		t.Errorf("rotate events %+v", ev)
	}
	for _, tc := range []struct {
		body   map[string]any
		status int
		field  string
	}{
		{map[string]any{"value": ""}, 422, "value"},
		{map[string]any{}, 422, "value"},
		{map[string]any{"value": a.secret(), "grace_days": 91}, 422, "grace_days"},
		{map[string]any{"value": a.secret(), "grace_days": -1}, 422, "grace_days"},
		{map[string]any{"value": a.secret(), "expected_version": 0}, 422, "expected_version"},
		{map[string]any{"value": a.secret(), "expected_version": 1}, 409, ""},
		{map[string]any{"value": old}, 409, "value"},
		{map[string]any{"value": v2}, 409, "value"},
	} {
		r := a.do(tok, http.MethodPost, path, tc.body)
		a.want(r, tc.status, "")
		if tc.field != "" && r.field(tc.field) == "" {
			t.Errorf("%v: no message for %s: %s", tc.body, tc.field, r.Body)
		}
	}
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/"+other.ID+"/rotate", map[string]any{"value": a.secret()}), http.StatusForbidden, "forbidden")
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f/rotate", map[string]any{"value": a.secret()}), http.StatusNotFound, "not_found")
	if err := env.Store.ArchiveKey(context.Background(), keyledger.Actor{User: env.Users["member"]}, k.ID); err != nil {
		t.Fatal(err)
	}
	a.want(a.do(tok, http.MethodPost, path, map[string]any{"value": a.secret()}), http.StatusConflict, "conflict")
	if after := authzGetKey(env, t, k.ID); after.CurrentVersion != 2 {
		t.Errorf("current version %d after the refusals, want 2", after.CurrentVersion)
	}
}

// TestAPIKeyVerify: the result and the updated key; 503 without a
// verifier; the policy of the page.
func TestAPIKeyVerify(t *testing.T) {
	t.Parallel()
	good := authzSecret()
	fake := newFakeOpenAI(t, func(s string) bool { return s == good })
	env := newEnv(t, withVerifier(fake.verifier(t)))
	a := newAPI(t, env)
	a.secrets.add(good)
	ctx := context.Background()
	res, err := env.Store.CreateKey(ctx, keyledger.Actor{User: env.Users["member"]}, keyledger.KeyInput{Name: "works", Project: "checkout",
		Environment: "production", OwnerEmail: "member@example.com", Value: good})
	if err != nil {
		t.Fatal(err)
	}
	kGood := res.Key
	kBad, _ := a.key("member", "development", "revoked")
	tok, tokID := a.tokenWithID("member")
	for _, tc := range []struct {
		k      *keyledger.Key
		result string
	}{{kGood, "ok"}, {kBad, "invalid"}} {
		r := a.do(tok, http.MethodPost, "/api/v1/keys/"+tc.k.ID+"/verify", nil)
		a.want(r, http.StatusOK, "")
		var v wire.VerifyResult
		r.decode(t, &v)
		if v.Result != tc.result || v.Message == "" || v.Key.ID != tc.k.ID || v.Key.VerifyResult == nil || *v.Key.VerifyResult != tc.result || v.Key.LastVerifiedAt == nil {
			t.Errorf("verify %s: %+v", tc.k.Name, v)
		}
		ev := a.events(tc.k.ID, keyledger.ActionKeyVerify)
		if len(ev) != 1 || viaToken(t, ev[0]) != tokID {
			t.Errorf("verify events %+v", ev)
		}
	}
	// {} is a body too.
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/"+kBad.ID+"/verify", map[string]any{}), http.StatusOK, "")
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/"+kBad.ID+"/verify", map[string]any{"note": "by hand"}), http.StatusBadRequest, "invalid")
	// Not the owner of a production key: neither reveal nor edit.
	a.want(a.do(a.token("member2"), http.MethodPost, "/api/v1/keys/"+kGood.ID+"/verify", nil), http.StatusForbidden, "forbidden")
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f/verify", nil), http.StatusNotFound, "not_found")
	aws, _ := a.key("member", "staging", "AWS backups")
	if _, err := env.Pool.Exec(ctx, "UPDATE keys SET provider = 'aws' WHERE id = $1", aws.ID); err != nil {
		t.Fatal(err)
	}
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/"+aws.ID+"/verify", nil), http.StatusUnprocessableEntity, "invalid")
	if err := env.Store.ArchiveKey(ctx, keyledger.Actor{User: env.Users["member"]}, kBad.ID); err != nil {
		t.Fatal(err)
	}
	a.want(a.do(tok, http.MethodPost, "/api/v1/keys/"+kBad.ID+"/verify", nil), http.StatusConflict, "conflict")

	// A server without a verifier: 503 with Retry-After.
	env2 := newEnv(t)
	b := newAPI(t, env2)
	k2, _ := b.key("member", "development", "unchecked")
	r := b.do(b.token("member"), http.MethodPost, "/api/v1/keys/"+k2.ID+"/verify", nil)
	b.want(r, http.StatusServiceUnavailable, "unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
