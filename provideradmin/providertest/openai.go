package providertest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OpenAIAdminKey is the admin key a new OpenAI fake accepts. It has the
// documented prefix (the connection form checks it) but is short and
// plainly fake, so no secret scanner takes it for a real key.
const OpenAIAdminKey = "sk-admin-" + fakeKeyBody

// OpenAIProject is a project in the fake organization.
type OpenAIProject struct {
	ID        string // proj_…
	Name      string
	CreatedAt time.Time
	Archived  bool // listed only with include_archived=true
}

// OpenAIKey is a project API key in the fake organization.
type OpenAIKey struct {
	ID            string // key_…
	Project       string // the project id it lives in
	Name          string
	RedactedValue string    // e.g. "sk-proj-Ab...wxyz"; see OpenAIRedact
	CreatedAt     time.Time // zero: the fake's clock when added
	LastUsedAt    time.Time // zero: null (never used)
	// OwnerType is "user" or "service_account"; the owner fields fill
	// owner.user or owner.service_account accordingly.
	OwnerType  string
	OwnerID    string
	OwnerName  string
	OwnerEmail string // users only
	// OwnerInactive gives owner_project_access "inactive": the owner no
	// longer has access to the project.
	OwnerInactive bool
}

// OpenAIUsage is one key's completions usage on one UTC day.
type OpenAIUsage struct {
	KeyID        string
	Project      string
	Day          time.Time // any time that day (UTC)
	Requests     int64     // num_model_requests
	InputTokens  int64
	OutputTokens int64
	CachedTokens int64 // input_cached_tokens, part of InputTokens
}

// OpenAI is a fake OpenAI organization admin API.
type OpenAI struct {
	server
	projects []OpenAIProject
	keys     map[string][]OpenAIKey // by project id, in creation order
	usage    []OpenAIUsage
	seq      int
}

// NewOpenAI starts a fake OpenAI admin API with no projects, accepting
// OpenAIAdminKey. Close it when done.
func NewOpenAI() *OpenAI {
	f := &OpenAI{keys: map[string][]OpenAIKey{}}
	f.adminKey = OpenAIAdminKey
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/organization/projects", f.listProjects)
	mux.HandleFunc("GET /v1/organization/projects/{project}/api_keys", f.listKeys)
	mux.HandleFunc("GET /v1/organization/projects/{project}/api_keys/{key}", f.getKey)
	mux.HandleFunc("DELETE /v1/organization/projects/{project}/api_keys/{key}", f.deleteKey)
	mux.HandleFunc("POST /v1/organization/projects/{project}/service_accounts", f.createServiceAccount)
	mux.HandleFunc("GET /v1/organization/usage/completions", f.completionsUsage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.fail(w, http.StatusNotFound, "invalid_request_error", "Invalid URL ("+r.Method+" "+r.URL.Path+")")
	})
	f.start(f.auth(mux))
	return f
}

// AddProject adds a project (appended to the listing order).
func (f *OpenAI) AddProject(p OpenAIProject) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.CreatedAt.IsZero() {
		p.CreatedAt = f.now()
	}
	f.projects = append(f.projects, p)
}

// AddKey adds a key to its project, which must exist. An empty ID gets a
// fresh key_… id, which AddKey returns.
func (f *OpenAI) AddKey(k OpenAIKey) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.project(k.Project) == nil {
		panic("providertest: OpenAI key in unknown project " + k.Project)
	}
	if k.ID == "" {
		f.seq++
		k.ID = fmt.Sprintf("key_%06d", f.seq)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = f.now()
	}
	if k.OwnerType == "" {
		k.OwnerType = "user"
	}
	f.keys[k.Project] = append(f.keys[k.Project], k)
	return k.ID
}

// AddUsage records usage for a key on a day; records for the same key and
// day add up.
func (f *OpenAI) AddUsage(u OpenAIUsage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u.Day = dayStart(u.Day)
	f.usage = append(f.usage, u)
}

// Key returns the key with id, and whether it (still) exists.
func (f *OpenAI) Key(id string) (OpenAIKey, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ks := range f.keys {
		for _, k := range ks {
			if k.ID == id {
				return k, true
			}
		}
	}
	return OpenAIKey{}, false
}

// KeyCount is the number of keys in all projects.
func (f *OpenAI) KeyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ks := range f.keys {
		n += len(ks)
	}
	return n
}

// Generate adds projects projects and keys keys spread round-robin across
// them, with deterministic ids (proj_gen_NNN, key_gen_NNNNN), names,
// redacted values ending in the key number, and owners alternating
// between users (dev-N@example.com) and service accounts; every tenth
// owner has lost access. It returns the keys added. Call it once per fake:
// the ids would repeat.
func (f *OpenAI) Generate(projects, keys int) []OpenAIKey {
	base := f.clock().Add(-90 * 24 * time.Hour).Truncate(time.Second)
	for p := range projects {
		f.AddProject(OpenAIProject{ID: fmt.Sprintf("proj_gen_%03d", p), Name: fmt.Sprintf("Project %d", p), CreatedAt: base})
	}
	out := make([]OpenAIKey, 0, keys)
	for i := range keys {
		k := OpenAIKey{
			ID:            fmt.Sprintf("key_gen_%05d", i),
			Project:       fmt.Sprintf("proj_gen_%03d", i%projects),
			Name:          fmt.Sprintf("generated key %d", i),
			RedactedValue: fmt.Sprintf("sk-proj-Ab...%04d", i%10000),
			CreatedAt:     base.Add(time.Duration(i) * time.Minute),
			OwnerInactive: i%10 == 9,
		}
		if i%3 == 0 {
			k.LastUsedAt = base.Add(time.Duration(i) * time.Hour)
		}
		if i%2 == 0 {
			k.OwnerType, k.OwnerID, k.OwnerName, k.OwnerEmail = "user", fmt.Sprintf("user-gen-%d", i%50), fmt.Sprintf("Dev %d", i%50), fmt.Sprintf("dev-%d@example.com", i%50)
		} else {
			k.OwnerType, k.OwnerID, k.OwnerName = "service_account", fmt.Sprintf("svc_acct_gen_%d", i), fmt.Sprintf("bot-%d", i)
		}
		f.AddKey(k)
		out = append(out, k)
	}
	return out
}

// OpenAIRedact is the fake's redacted_value for a full key value: the
// first 10 characters, "...", the last 4. OpenAI documents the field
// ("the redacted value of the API key", example "sk-abc...def") but not
// how many characters it keeps; this convention is the fake's.
func OpenAIRedact(value string) string {
	if len(value) < 14 {
		return value[:min(3, len(value))] + "..."
	}
	return value[:10] + "..." + value[len(value)-4:]
}

func (f *OpenAI) project(id string) *OpenAIProject {
	for i := range f.projects {
		if f.projects[i].ID == id {
			return &f.projects[i]
		}
	}
	return nil
}

// fail writes OpenAI's error shape.
func (f *OpenAI) fail(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": nil,
	}})
}

// auth checks Authorization: Bearer, then serves injected failures.
func (f *OpenAI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		want := f.AdminKey()
		if !ok || got != want {
			f.mu.Lock()
			echo := f.echoKey
			f.mu.Unlock()
			shown := "sk-admin-****" + last4(got)
			if echo {
				shown = got
			}
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
				"message": "Incorrect API key provided: " + shown + ". You can find your API key at https://platform.openai.com/account/api-keys.",
				"type":    "invalid_request_error", "param": nil, "code": "invalid_api_key",
			}})
			return
		}
		if fl, ok := f.nextFailure(r.URL.Path); ok {
			if fl.retryAfter != "" {
				w.Header().Set("Retry-After", fl.retryAfter)
			}
			typ := "server_error"
			if fl.status == http.StatusTooManyRequests {
				typ = "rate_limit_exceeded"
			}
			f.fail(w, fl.status, typ, fl.message)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func last4(s string) string {
	if len(s) < 4 {
		return ""
	}
	return s[len(s)-4:]
}

func openAIList(data any, first, last string, more bool) map[string]any {
	var f, l any
	if first != "" {
		f, l = first, last
	}
	return map[string]any{"object": "list", "data": data, "first_id": f, "last_id": l, "has_more": more}
}

func (f *OpenAI) listProjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := f.pageSize(q, 20, 100)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit must be between 1 and 100")
		return
	}
	archived := q.Get("include_archived") == "true"
	f.mu.Lock()
	var ps []OpenAIProject
	for _, p := range f.projects {
		if archived || !p.Archived {
			ps = append(ps, p)
		}
	}
	f.mu.Unlock()
	items, more, ok := page(ps, func(p OpenAIProject) string { return p.ID }, q.Get("after"), n)
	if !ok {
		// Not documented: what OpenAI answers for an unknown cursor.
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "invalid 'after' cursor")
		return
	}
	data := make([]map[string]any, 0, len(items))
	for _, p := range items {
		status, archivedAt := "active", any(nil)
		if p.Archived {
			status, archivedAt = "archived", p.CreatedAt.Unix()
		}
		data = append(data, map[string]any{
			"id": p.ID, "object": "organization.project", "name": p.Name,
			"created_at": p.CreatedAt.Unix(), "archived_at": archivedAt, "status": status,
		})
	}
	first, last := "", ""
	if len(items) > 0 {
		first, last = items[0].ID, items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, openAIList(data, first, last, more))
}

func (f *OpenAI) keyJSON(k OpenAIKey) map[string]any {
	owner := map[string]any{"type": k.OwnerType}
	if k.OwnerType == "service_account" {
		owner["service_account"] = map[string]any{
			"object": "organization.project.service_account", "id": k.OwnerID, "name": k.OwnerName,
			"role": "member", "created_at": k.CreatedAt.Unix(),
		}
	} else {
		owner["user"] = map[string]any{
			"object": "organization.project.user", "id": k.OwnerID, "name": k.OwnerName,
			"email": k.OwnerEmail, "role": "member", "added_at": k.CreatedAt.Unix(),
		}
	}
	var lastUsed any
	if !k.LastUsedAt.IsZero() {
		lastUsed = k.LastUsedAt.Unix()
	}
	access := "active"
	if k.OwnerInactive {
		access = "inactive"
	}
	return map[string]any{
		"object": "organization.project.api_key", "id": k.ID, "name": k.Name,
		"redacted_value": k.RedactedValue, "created_at": k.CreatedAt.Unix(), "last_used_at": lastUsed,
		"owner": owner, "owner_project_access": access,
	}
}

// listKeys honors owner_project_access: active, inactive or any. Omitted,
// OpenAI documents "membership-based visibility rules" that may exclude
// some enabled keys; the fake then leaves out keys whose owner lost
// access, the strictest reading, so a client that forgets "any" misses
// them in tests as it would in production.
func (f *OpenAI) listKeys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := f.pageSize(q, 20, 100)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit must be between 1 and 100")
		return
	}
	access := q.Get("owner_project_access")
	if access != "" && access != "active" && access != "inactive" && access != "any" {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "owner_project_access must be active, inactive or any")
		return
	}
	pid := r.PathValue("project")
	f.mu.Lock()
	if f.project(pid) == nil {
		f.mu.Unlock()
		// Not documented: the exact message for an unknown project.
		f.fail(w, http.StatusNotFound, "invalid_request_error", "No such project: "+pid)
		return
	}
	var ks []OpenAIKey
	for _, k := range f.keys[pid] {
		switch {
		case access == "any",
			access == "inactive" && k.OwnerInactive,
			(access == "active" || access == "") && !k.OwnerInactive:
			ks = append(ks, k)
		}
	}
	f.mu.Unlock()
	items, more, ok := page(ks, func(k OpenAIKey) string { return k.ID }, q.Get("after"), n)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "invalid 'after' cursor")
		return
	}
	data := make([]map[string]any, 0, len(items))
	for _, k := range items {
		data = append(data, f.keyJSON(k))
	}
	first, last := "", ""
	if len(items) > 0 {
		first, last = items[0].ID, items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, openAIList(data, first, last, more))
}

func (f *OpenAI) getKey(w http.ResponseWriter, r *http.Request) {
	pid, kid := r.PathValue("project"), r.PathValue("key")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys[pid] {
		if k.ID == kid {
			writeJSON(w, http.StatusOK, f.keyJSON(k))
			return
		}
	}
	f.fail(w, http.StatusNotFound, "invalid_request_error", "No such API key: "+kid)
}

func (f *OpenAI) deleteKey(w http.ResponseWriter, r *http.Request) {
	pid, kid := r.PathValue("project"), r.PathValue("key")
	f.mu.Lock()
	defer f.mu.Unlock()
	ks := f.keys[pid]
	for i, k := range ks {
		if k.ID == kid {
			f.keys[pid] = append(ks[:i:i], ks[i+1:]...)
			writeJSON(w, http.StatusOK, map[string]any{
				"object": "organization.project.api_key.deleted", "id": kid, "deleted": true,
			})
			return
		}
	}
	// Not documented: the exact message for an unknown key.
	f.fail(w, http.StatusNotFound, "invalid_request_error", "No such API key: "+kid)
}

// createServiceAccount creates a service account and its API key, and
// returns the key's value once, as OpenAI does.
func (f *OpenAI) createServiceAccount(w http.ResponseWriter, r *http.Request) {
	pid := r.PathValue("project")
	var in struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || strings.TrimSpace(in.Name) == "" {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "name is required")
		return
	}
	f.mu.Lock()
	if f.project(pid) == nil {
		f.mu.Unlock()
		f.fail(w, http.StatusNotFound, "invalid_request_error", "No such project: "+pid)
		return
	}
	f.seq++
	n := f.seq
	now := f.now().UTC()
	f.mu.Unlock()
	value := fmt.Sprintf("sk-svcacct-fake%020d%s", n, strconv.FormatInt(now.UnixNano(), 36))
	k := OpenAIKey{
		ID: fmt.Sprintf("key_sa_%06d", n), Project: pid, Name: "Secret Key",
		RedactedValue: OpenAIRedact(value), CreatedAt: now,
		OwnerType: "service_account", OwnerID: fmt.Sprintf("svc_acct_%06d", n), OwnerName: in.Name,
	}
	f.AddKey(k)
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "organization.project.service_account", "id": k.OwnerID, "name": in.Name,
		"role": "member", "created_at": now.Unix(),
		"api_key": map[string]any{
			"object": "organization.project.service_account.api_key", "value": value,
			"name": k.Name, "created_at": now.Unix(), "id": k.ID,
		},
	})
}

// completionsUsage serves daily buckets from start_time (snapped to the
// day) to end_time or the fake's now, limit buckets a page (default 7,
// max 31), next_page an opaque cursor. Only bucket_width=1d is served.
func (f *OpenAI) completionsUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, err := strconv.ParseInt(q.Get("start_time"), 10, 64)
	if err != nil {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "start_time is required")
		return
	}
	if bw := q.Get("bucket_width"); bw != "" && bw != "1d" {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "the fake serves bucket_width=1d only")
		return
	}
	n, ok := f.pageSize(q, 7, 31)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit must be between 1 and 31 for bucket_width=1d")
		return
	}
	end := f.clock()
	if v := q.Get("end_time"); v != "" {
		e, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			f.fail(w, http.StatusBadRequest, "invalid_request_error", "end_time must be a Unix time")
			return
		}
		end = time.Unix(e, 0).UTC()
	}
	from := dayStart(time.Unix(start, 0))
	if p := q.Get("page"); p != "" {
		t, ok := decodeCursor(p)
		if !ok {
			f.fail(w, http.StatusBadRequest, "invalid_request_error", "invalid page cursor")
			return
		}
		from = t
	}
	byKey := false
	for _, g := range append(q["group_by"], q["group_by[]"]...) {
		for _, part := range strings.Split(g, ",") {
			byKey = byKey || part == "api_key_id"
		}
	}
	f.mu.Lock()
	usage := append([]OpenAIUsage(nil), f.usage...)
	f.mu.Unlock()

	var data []map[string]any
	day := from
	for ; day.Before(end) && len(data) < n; day = day.Add(24 * time.Hour) {
		sums := map[string]*OpenAIUsage{}
		for _, u := range usage {
			if !u.Day.Equal(day) {
				continue
			}
			id := ""
			if byKey {
				id = u.KeyID
			}
			s := sums[id]
			if s == nil {
				s = &OpenAIUsage{KeyID: id}
				sums[id] = s
			}
			s.Requests += u.Requests
			s.InputTokens += u.InputTokens
			s.OutputTokens += u.OutputTokens
			s.CachedTokens += u.CachedTokens
		}
		ids := make([]string, 0, len(sums))
		for id := range sums {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		results := make([]map[string]any, 0, len(ids))
		for _, id := range ids {
			s := sums[id]
			var keyID any
			if byKey {
				keyID = id
			}
			results = append(results, map[string]any{
				"object": "organization.usage.completions.result", "input_tokens": s.InputTokens,
				"output_tokens": s.OutputTokens, "input_cached_tokens": s.CachedTokens,
				"input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": s.Requests,
				"project_id": nil, "user_id": nil, "api_key_id": keyID, "model": nil, "batch": nil, "service_tier": nil,
			})
		}
		data = append(data, map[string]any{
			"object": "bucket", "start_time": day.Unix(), "end_time": day.Add(24 * time.Hour).Unix(), "results": results,
		})
	}
	more := day.Before(end)
	var next any
	if more {
		next = encodeCursor(day)
	}
	if data == nil {
		data = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "page", "data": data, "has_more": more, "next_page": next})
}

// encodeCursor makes an opaque page token for the bucket starting at t.
func encodeCursor(t time.Time) string {
	return "page_" + base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(t.Unix(), 10)))
}

func decodeCursor(s string) (time.Time, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "page_"))
	if err != nil {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// fakeKeyBody follows the documented prefix in the fakes' admin keys:
// plainly not a key, and long enough for tests that look for a piece of
// the admin key in a database dump.
const fakeKeyBody = "fake-for-tests-only"
