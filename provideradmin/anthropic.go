package provideradmin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/keyledger/keyledger"
)

// anthropicVersion is the API version header every admin call carries.
const anthropicVersion = "2023-06-01"

// Anthropic page sizes: api_keys, users and workspaces allow limit
// 1..1000 (default 20); the usage report up to 31 daily buckets (default
// 7), kept at 7 because each bucket holds one result per key.
const (
	anthropicListLimit  = 1000
	anthropicUsageLimit = 7
	// DefaultWorkspaceName names the workspace of keys whose workspace_id
	// is null; the API has no object for it.
	DefaultWorkspaceName = "Default"
)

// anthropic is Anthropic's organization admin API for one admin key.
type anthropic struct {
	c   *Client
	key string
}

// anthropicList is Anthropic's list envelope.
type anthropicList[T any] struct {
	Data    []T    `json:"data"`
	FirstID string `json:"first_id"`
	LastID  string `json:"last_id"`
	HasMore bool   `json:"has_more"`
}

// anthropicKey is an object of type "api_key".
type anthropicKey struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	PartialKeyHint string  `json:"partial_key_hint"`
	Status         string  `json:"status"` // active | inactive | archived | expired
	WorkspaceID    *string `json:"workspace_id"`
	CreatedAt      string  `json:"created_at"` // RFC 3339
	CreatedBy      struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"created_by"`
}

// anthropicUser is an object of type "user". Only id and email are read;
// the rest of the users list's shape is not confirmed here.
type anthropicUser struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// anthropicWorkspace is an object of type "workspace". Only id and name
// are read.
type anthropicWorkspace struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// anthropicUsagePage is the messages usage report.
type anthropicUsagePage struct {
	Data []struct {
		StartingAt string `json:"starting_at"`
		EndingAt   string `json:"ending_at"`
		Results    []struct {
			APIKeyID             *string `json:"api_key_id"`
			UncachedInputTokens  int64   `json:"uncached_input_tokens"`
			CacheReadInputTokens int64   `json:"cache_read_input_tokens"`
			CacheCreation        struct {
				Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
				Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
			} `json:"cache_creation"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"results"`
	} `json:"data"`
	HasMore  bool    `json:"has_more"`
	NextPage *string `json:"next_page"`
}

func (a *anthropic) call(method, path string, q url.Values, body any) call {
	return call{
		method: method, base: a.c.anthropic, path: path, query: q, body: body, secret: a.key,
		auth: func(h http.Header) {
			h.Set("x-api-key", a.key)
			h.Set("anthropic-version", anthropicVersion)
		},
		message: errorMessage,
	}
}

func (a *anthropic) check(ctx context.Context) error {
	var page anthropicList[anthropicKey]
	return a.c.do(ctx, a.call(http.MethodGet, "/v1/organizations/api_keys", url.Values{"limit": {"1"}}, nil), &page)
}

// list pages through an after_id/has_more listing.
func anthropicListAll[T any](ctx context.Context, a *anthropic, path string, extra url.Values) ([]T, error) {
	var all []T
	after := ""
	err := paginate(ctx, func(ctx context.Context) (bool, error) {
		q := url.Values{"limit": {strconv.Itoa(anthropicListLimit)}}
		for k, v := range extra {
			q[k] = v
		}
		if after != "" {
			q.Set("after_id", after)
		}
		var page anthropicList[T]
		if err := a.c.do(ctx, a.call(http.MethodGet, path, q, nil), &page); err != nil {
			return false, err
		}
		all = append(all, page.Data...)
		after = page.LastID
		return page.HasMore && after != "", nil
	})
	return all, err
}

// keys lists every key in every status (no status filter), then the
// organization's users and workspaces to name creators and workspaces:
// the key object carries only their ids.
func (a *anthropic) keys(ctx context.Context) ([]keyledger.ProviderKey, error) {
	keys, err := anthropicListAll[anthropicKey](ctx, a, "/v1/organizations/api_keys", nil)
	if err != nil {
		return nil, err
	}
	users, err := anthropicListAll[anthropicUser](ctx, a, "/v1/organizations/users", nil)
	if err != nil {
		return nil, err
	}
	// Archived workspaces too: their keys are listed (archived) and
	// deserve a name.
	workspaces, err := anthropicListAll[anthropicWorkspace](ctx, a, "/v1/organizations/workspaces",
		url.Values{"include_archived": {"true"}})
	if err != nil {
		return nil, err
	}
	emails := make(map[string]string, len(users))
	for _, u := range users {
		emails[u.ID] = u.Email
	}
	names := make(map[string]string, len(workspaces))
	for _, w := range workspaces {
		names[w.ID] = w.Name
	}
	out := make([]keyledger.ProviderKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, mapAnthropicKey(k, emails, names))
	}
	return out, nil
}

func mapAnthropicKey(k anthropicKey, emails, workspaces map[string]string) keyledger.ProviderKey {
	pk := keyledger.ProviderKey{
		ID:          k.ID,
		Name:        k.Name,
		Hint:        k.PartialKeyHint,
		Status:      k.Status,
		ProjectName: DefaultWorkspaceName,
		// The key object has no last-used time; LastUsedAt stays zero and
		// usage comes from the usage report.
		OwnerType:   k.CreatedBy.Type,
		OwnerActive: true,
		CreatedBy:   k.CreatedBy.ID,
	}
	if k.WorkspaceID != nil && *k.WorkspaceID != "" {
		pk.Project = *k.WorkspaceID
		pk.ProjectName = workspaces[pk.Project]
	}
	if t, err := time.Parse(time.RFC3339Nano, k.CreatedAt); err == nil {
		pk.CreatedAt = t.UTC()
	}
	if k.CreatedBy.Type == "user" {
		// Anthropic says nothing like OpenAI's owner_project_access; a
		// creator who is no longer among the organization's users has
		// left it, which is the same fact.
		if email, ok := emails[k.CreatedBy.ID]; ok {
			pk.CreatedBy = email
		} else {
			pk.OwnerActive = false
		}
	}
	return pk
}

// usage reads the messages usage report grouped by API key in daily
// buckets. Input tokens are uncached input plus cache reads plus cache
// writes (5m and 1h); the report has no request count, so Requests is 0.
func (a *anthropic) usage(ctx context.Context, since time.Time) ([]keyledger.ProviderUsage, error) {
	sum := newUsageSum()
	next := ""
	err := paginate(ctx, func(ctx context.Context) (bool, error) {
		q := url.Values{
			"starting_at":  {since.Format(time.RFC3339)},
			"bucket_width": {"1d"},
			// The reference names an array parameter group_by; group_by[]
			// is how Anthropic's SDKs and examples send it.
			"group_by[]": {"api_key_id"},
			"limit":      {strconv.Itoa(anthropicUsageLimit)},
		}
		if next != "" {
			q.Set("page", next)
		}
		var page anthropicUsagePage
		if err := a.c.do(ctx, a.call(http.MethodGet, "/v1/organizations/usage_report/messages", q, nil), &page); err != nil {
			return false, err
		}
		for _, b := range page.Data {
			start, err := time.Parse(time.RFC3339Nano, b.StartingAt)
			if err != nil {
				return false, &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable,
					Message: "the usage report has a bucket without a readable starting_at"}
			}
			day := start.UTC().Truncate(24 * time.Hour)
			for _, r := range b.Results {
				if r.APIKeyID == nil || *r.APIKeyID == "" {
					continue // Console/Workbench usage, charged to no key
				}
				in := r.UncachedInputTokens + r.CacheReadInputTokens + r.CacheCreation.Ephemeral1h + r.CacheCreation.Ephemeral5m
				sum.add(*r.APIKeyID, day, 0, in, r.OutputTokens)
			}
		}
		next = ""
		if page.NextPage != nil {
			next = *page.NextPage
		}
		return page.HasMore && next != "", nil
	})
	if err != nil {
		return nil, err
	}
	return sum.list(), nil
}

// revoke sets the key inactive; a key Anthropic no longer knows is done.
// An archived or expired key cannot be set inactive (the update is
// rejected) but cannot be used either, so a rejection is checked against
// the key's status before it is reported.
func (a *anthropic) revoke(ctx context.Context, key keyledger.ProviderKeyRef) error {
	path := "/v1/organizations/api_keys/" + key.ID
	body := map[string]string{"status": "inactive"}
	err := a.c.do(ctx, a.call(http.MethodPost, path, nil, body), nil)
	var pe *keyledger.ProviderAdminError
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Status == http.StatusNotFound:
		return nil
	case pe.Kind == keyledger.ProviderRejected:
		var k anthropicKey
		if gerr := a.c.do(ctx, a.call(http.MethodGet, path, nil, nil), &k); gerr == nil && k.Status != "" && k.Status != "active" {
			return nil
		}
	}
	return err
}
