package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"
)

// AnthropicAdminKey is the admin key a new Anthropic fake accepts. It has
// the documented prefix (the connection form checks it) but is short and
// plainly fake, so no secret scanner takes it for a real key.
const AnthropicAdminKey = "sk-ant-admin01-" + fakeKeyBody

// AnthropicKey is an API key in the fake organization.
type AnthropicKey struct {
	ID             string // apikey_…
	Name           string
	PartialKeyHint string // e.g. "sk-ant-api03-R2D...igAA"; see AnthropicHint
	WorkspaceID    string // "" = the default workspace (null in JSON)
	Status         string // active | inactive | archived | expired; "" = active
	CreatedAt      time.Time
	CreatedByID    string // user_… (or another actor's id)
	CreatedByType  string // "" = "user"
}

// AnthropicUser is a member of the fake organization.
type AnthropicUser struct {
	ID    string // user_…
	Email string
	Name  string
	Role  string // "" = "user"
}

// AnthropicWorkspace is a workspace of the fake organization.
type AnthropicWorkspace struct {
	ID       string // wrkspc_…
	Name     string
	Archived bool
}

// AnthropicUsage is one key's messages usage on one UTC day.
type AnthropicUsage struct {
	KeyID                string
	WorkspaceID          string
	Day                  time.Time // any time that day (UTC)
	UncachedInputTokens  int64
	CacheReadInputTokens int64
	CacheCreation5m      int64
	CacheCreation1h      int64
	OutputTokens         int64
	WebSearchRequests    int64
}

// Anthropic is a fake Anthropic organization admin API.
type Anthropic struct {
	server
	keys       []AnthropicKey
	users      []AnthropicUser
	workspaces []AnthropicWorkspace
	usage      []AnthropicUsage
	seq        int
}

// NewAnthropic starts a fake Anthropic admin API with no keys, accepting
// AnthropicAdminKey. Close it when done.
func NewAnthropic() *Anthropic {
	f := &Anthropic{}
	f.adminKey = AnthropicAdminKey
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/organizations/api_keys", f.listKeys)
	mux.HandleFunc("GET /v1/organizations/api_keys/{id}", f.getKey)
	mux.HandleFunc("POST /v1/organizations/api_keys/{id}", f.updateKey)
	mux.HandleFunc("GET /v1/organizations/users", f.listUsers)
	mux.HandleFunc("GET /v1/organizations/workspaces", f.listWorkspaces)
	mux.HandleFunc("GET /v1/organizations/usage_report/messages", f.messagesUsage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.fail(w, http.StatusNotFound, "not_found_error", "Not found")
	})
	f.start(f.auth(mux))
	return f
}

// AddUser adds an organization member.
func (f *Anthropic) AddUser(u AnthropicUser) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = append(f.users, u)
}

// RemoveUser removes a member, as when someone leaves the organization;
// the keys they created stay.
func (f *Anthropic) RemoveUser(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, u := range f.users {
		if u.ID == id {
			f.users = append(f.users[:i:i], f.users[i+1:]...)
			return
		}
	}
}

// AddWorkspace adds a workspace.
func (f *Anthropic) AddWorkspace(w AnthropicWorkspace) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.workspaces = append(f.workspaces, w)
}

// AddKey adds a key; an empty ID gets a fresh apikey_… id, returned.
func (f *Anthropic) AddKey(k AnthropicKey) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k.ID == "" {
		f.seq++
		k.ID = fmt.Sprintf("apikey_%06d", f.seq)
	}
	if k.Status == "" {
		k.Status = "active"
	}
	if k.CreatedByType == "" {
		k.CreatedByType = "user"
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = f.now()
	}
	f.keys = append(f.keys, k)
	return k.ID
}

// AddUsage records usage for a key on a day; records for the same key and
// day add up.
func (f *Anthropic) AddUsage(u AnthropicUsage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u.Day = dayStart(u.Day)
	f.usage = append(f.usage, u)
}

// Key returns the key with id and whether it exists.
func (f *Anthropic) Key(id string) (AnthropicKey, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if k.ID == id {
			return k, true
		}
	}
	return AnthropicKey{}, false
}

// Generate adds workspaces workspaces (plus the default one, which gets
// every workspaces+1-th key) and keys keys with deterministic ids
// (wrkspc_gen_NNN, apikey_gen_NNNNN), hints ending in the key number,
// creators among 50 users (user_gen_N, dev-N@example.com), every seventh
// key inactive. It returns the keys added. Call it once per fake: the ids
// would repeat.
func (f *Anthropic) Generate(workspaces, keys int) []AnthropicKey {
	base := f.clock().Add(-90 * 24 * time.Hour).Truncate(time.Second)
	for w := range workspaces {
		f.AddWorkspace(AnthropicWorkspace{ID: fmt.Sprintf("wrkspc_gen_%03d", w), Name: fmt.Sprintf("Workspace %d", w)})
	}
	for u := range min(keys, 50) {
		f.AddUser(AnthropicUser{ID: fmt.Sprintf("user_gen_%d", u), Email: fmt.Sprintf("dev-%d@example.com", u), Name: fmt.Sprintf("Dev %d", u)})
	}
	out := make([]AnthropicKey, 0, keys)
	for i := range keys {
		k := AnthropicKey{
			ID:             fmt.Sprintf("apikey_gen_%05d", i),
			Name:           fmt.Sprintf("generated key %d", i),
			PartialKeyHint: fmt.Sprintf("sk-ant-api03-Abc...%04d", i%10000),
			CreatedAt:      base.Add(time.Duration(i) * time.Minute),
			CreatedByID:    fmt.Sprintf("user_gen_%d", i%50),
			Status:         "active",
		}
		if w := i % (workspaces + 1); w < workspaces {
			k.WorkspaceID = fmt.Sprintf("wrkspc_gen_%03d", w)
		}
		if i%7 == 6 {
			k.Status = "inactive"
		}
		f.AddKey(k)
		out = append(out, k)
	}
	return out
}

// AnthropicHint is partial_key_hint for a full key value in the documented
// form ("sk-ant-api03-R2D...igAA"): the prefix up to and including
// "api03-" and 3 more characters, "...", the last 4.
func AnthropicHint(value string) string {
	const prefix = "sk-ant-api03-"
	if len(value) < len(prefix)+7 {
		return value[:min(7, len(value))] + "..."
	}
	return value[:len(prefix)+3] + "..." + value[len(value)-4:]
}

// fail writes Anthropic's error shape.
func (f *Anthropic) fail(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// auth checks x-api-key and anthropic-version, then serves injected
// failures.
func (f *Anthropic) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("anthropic-version") == "" {
			f.fail(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
			return
		}
		got := r.Header.Get("x-api-key")
		if got != f.AdminKey() || got == "" {
			f.mu.Lock()
			echo := f.echoKey
			f.mu.Unlock()
			msg := "invalid x-api-key"
			if echo {
				msg += ": " + got
			}
			f.fail(w, http.StatusUnauthorized, "authentication_error", msg)
			return
		}
		if fl, ok := f.nextFailure(r.URL.Path); ok {
			if fl.retryAfter != "" {
				w.Header().Set("retry-after", fl.retryAfter)
			}
			typ := "api_error"
			switch fl.status {
			case http.StatusTooManyRequests:
				typ = "rate_limit_error"
			case 529:
				typ = "overloaded_error"
			}
			f.fail(w, fl.status, typ, fl.message)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func anthropicList(data any, first, last string, more bool) map[string]any {
	var fi, la any
	if first != "" {
		fi, la = first, last
	}
	return map[string]any{"data": data, "first_id": fi, "last_id": la, "has_more": more}
}

func keyJSON(k AnthropicKey) map[string]any {
	var ws any
	if k.WorkspaceID != "" {
		ws = k.WorkspaceID
	}
	return map[string]any{
		"id": k.ID, "type": "api_key", "name": k.Name, "partial_key_hint": k.PartialKeyHint,
		"status": k.Status, "workspace_id": ws, "created_at": k.CreatedAt.UTC().Format(time.RFC3339Nano),
		"created_by": map[string]any{"id": k.CreatedByID, "type": k.CreatedByType}, "expires_at": nil,
	}
}

// listKeys lists keys of every status unless status filters, with
// workspace_id and created_by_user_id filters, after_id/limit paging
// (default 20, max 1000).
func (f *Anthropic) listKeys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := f.pageSize(q, 20, 1000)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit: must be between 1 and 1000")
		return
	}
	f.mu.Lock()
	var ks []AnthropicKey
	for _, k := range f.keys {
		if s := q.Get("status"); s != "" && k.Status != s {
			continue
		}
		if ws := q.Get("workspace_id"); ws != "" && k.WorkspaceID != ws {
			continue
		}
		if u := q.Get("created_by_user_id"); u != "" && k.CreatedByID != u {
			continue
		}
		ks = append(ks, k)
	}
	f.mu.Unlock()
	items, more, ok := page(ks, func(k AnthropicKey) string { return k.ID }, q.Get("after_id"), n)
	if !ok {
		// Not documented: what Anthropic answers for an unknown cursor.
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "after_id: unknown id")
		return
	}
	data := make([]map[string]any, 0, len(items))
	for _, k := range items {
		data = append(data, keyJSON(k))
	}
	first, last := "", ""
	if len(items) > 0 {
		first, last = items[0].ID, items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, anthropicList(data, first, last, more))
}

func (f *Anthropic) getKey(w http.ResponseWriter, r *http.Request) {
	if k, ok := f.Key(r.PathValue("id")); ok {
		writeJSON(w, http.StatusOK, keyJSON(k))
		return
	}
	f.fail(w, http.StatusNotFound, "not_found_error", "API key not found")
}

// updateKey applies {"status": …, "name": …}. Status may become active,
// inactive or archived.
func (f *Anthropic) updateKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name   *string `json:"name"`
		Status *string `json:"status"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "body: invalid JSON")
		return
	}
	if in.Status != nil && *in.Status != "active" && *in.Status != "inactive" && *in.Status != "archived" {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "status: must be active, inactive or archived")
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.keys {
		k := &f.keys[i]
		if k.ID != id {
			continue
		}
		if k.Status == "archived" || k.Status == "expired" {
			// Not documented: Anthropic says archived keys cannot be
			// reactivated; the fake refuses any change to them.
			f.fail(w, http.StatusBadRequest, "invalid_request_error", "API key is "+k.Status+" and cannot be modified")
			return
		}
		if in.Status != nil {
			k.Status = *in.Status
		}
		if in.Name != nil {
			k.Name = *in.Name
		}
		writeJSON(w, http.StatusOK, keyJSON(*k))
		return
	}
	f.fail(w, http.StatusNotFound, "not_found_error", "API key not found")
}

func (f *Anthropic) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := f.pageSize(q, 20, 1000)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit: must be between 1 and 1000")
		return
	}
	f.mu.Lock()
	users := append([]AnthropicUser(nil), f.users...)
	f.mu.Unlock()
	items, more, ok := page(users, func(u AnthropicUser) string { return u.ID }, q.Get("after_id"), n)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "after_id: unknown id")
		return
	}
	data := make([]map[string]any, 0, len(items))
	for _, u := range items {
		role := u.Role
		if role == "" {
			role = "user"
		}
		data = append(data, map[string]any{
			"id": u.ID, "type": "user", "email": u.Email, "name": u.Name, "role": role,
			"added_at": "2024-10-30T23:58:27.427722Z",
		})
	}
	first, last := "", ""
	if len(items) > 0 {
		first, last = items[0].ID, items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, anthropicList(data, first, last, more))
}

func (f *Anthropic) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := f.pageSize(q, 20, 1000)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit: must be between 1 and 1000")
		return
	}
	archived := q.Get("include_archived") == "true"
	f.mu.Lock()
	var ws []AnthropicWorkspace
	for _, w := range f.workspaces {
		if archived || !w.Archived {
			ws = append(ws, w)
		}
	}
	f.mu.Unlock()
	items, more, ok := page(ws, func(w AnthropicWorkspace) string { return w.ID }, q.Get("after_id"), n)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "after_id: unknown id")
		return
	}
	data := make([]map[string]any, 0, len(items))
	for _, w := range items {
		var archivedAt any
		if w.Archived {
			archivedAt = "2024-11-01T00:00:00Z"
		}
		data = append(data, map[string]any{
			"id": w.ID, "type": "workspace", "name": w.Name, "created_at": "2024-10-30T23:58:27.427722Z",
			"archived_at": archivedAt, "display_color": "#6C5BB9",
		})
	}
	first, last := "", ""
	if len(items) > 0 {
		first, last = items[0].ID, items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, anthropicList(data, first, last, more))
}

// messagesUsage serves daily buckets from starting_at (snapped to the
// day) to ending_at or the fake's now, limit buckets a page (default 7,
// max 31). group_by[]=api_key_id (or group_by=api_key_id) splits results
// by key; without it, one result per bucket with api_key_id null.
func (f *Anthropic) messagesUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, err := time.Parse(time.RFC3339Nano, q.Get("starting_at"))
	if err != nil {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "starting_at: must be an RFC 3339 timestamp")
		return
	}
	if bw := q.Get("bucket_width"); bw != "" && bw != "1d" {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "the fake serves bucket_width=1d only")
		return
	}
	n, ok := f.pageSize(q, 7, 31)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request_error", "limit: must be between 1 and 31 for 1d buckets")
		return
	}
	end := f.clock()
	if v := q.Get("ending_at"); v != "" {
		e, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			f.fail(w, http.StatusBadRequest, "invalid_request_error", "ending_at: must be an RFC 3339 timestamp")
			return
		}
		end = e.UTC()
	}
	from := dayStart(start)
	if p := q.Get("page"); p != "" {
		t, ok := decodeCursor(p)
		if !ok {
			f.fail(w, http.StatusBadRequest, "invalid_request_error", "page: invalid cursor")
			return
		}
		from = t
	}
	byKey := false
	for _, g := range append(q["group_by[]"], q["group_by"]...) {
		byKey = byKey || g == "api_key_id"
	}
	f.mu.Lock()
	usage := append([]AnthropicUsage(nil), f.usage...)
	f.mu.Unlock()

	var data []map[string]any
	day := from
	for ; day.Before(end) && len(data) < n; day = day.Add(24 * time.Hour) {
		sums := map[string]*AnthropicUsage{}
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
				s = &AnthropicUsage{KeyID: id}
				sums[id] = s
			}
			s.UncachedInputTokens += u.UncachedInputTokens
			s.CacheReadInputTokens += u.CacheReadInputTokens
			s.CacheCreation5m += u.CacheCreation5m
			s.CacheCreation1h += u.CacheCreation1h
			s.OutputTokens += u.OutputTokens
			s.WebSearchRequests += u.WebSearchRequests
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
				"api_key_id": keyID, "workspace_id": nil, "model": nil, "service_tier": nil,
				"context_window": nil, "inference_geo": nil,
				"uncached_input_tokens":   s.UncachedInputTokens,
				"cache_read_input_tokens": s.CacheReadInputTokens,
				"cache_creation": map[string]any{
					"ephemeral_1h_input_tokens": s.CacheCreation1h,
					"ephemeral_5m_input_tokens": s.CacheCreation5m,
				},
				"output_tokens":   s.OutputTokens,
				"server_tool_use": map[string]any{"web_search_requests": s.WebSearchRequests},
			})
		}
		data = append(data, map[string]any{
			"starting_at": day.Format(time.RFC3339), "ending_at": day.Add(24 * time.Hour).Format(time.RFC3339),
			"results": results,
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
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "has_more": more, "next_page": next})
}
