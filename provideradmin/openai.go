package provideradmin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/keyledger/keyledger"
)

// openAI is OpenAI's organization admin API for one admin key.
type openAI struct {
	c   *Client
	key string
}

// OpenAI page sizes: projects and project API keys allow limit 1..100
// (default 20); usage allows up to 31 daily buckets (default 7). Usage
// pages stay at 7 buckets because each bucket holds one result per key.
const (
	openAIListLimit  = 100
	openAIUsageLimit = 7
)

// openAIList is OpenAI's list envelope.
type openAIList[T any] struct {
	Object  string `json:"object"` // "list"
	Data    []T    `json:"data"`
	FirstID string `json:"first_id"`
	LastID  string `json:"last_id"`
	HasMore bool   `json:"has_more"`
}

// openAIProject is an organization.project.
type openAIProject struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"` // active | archived
}

// openAIKey is an organization.project.api_key.
type openAIKey struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	RedactedValue string `json:"redacted_value"`
	CreatedAt     int64  `json:"created_at"`
	LastUsedAt    *int64 `json:"last_used_at"`
	Owner         struct {
		Type string `json:"type"` // user | service_account
		User *struct {
			ID    string `json:"id"`
			Name  string `json:"name"`
			Email string `json:"email"`
		} `json:"user"`
		ServiceAccount *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"service_account"`
	} `json:"owner"`
	OwnerProjectAccess string `json:"owner_project_access"` // active | inactive
}

// openAIUsagePage is the completions usage answer: object "page".
type openAIUsagePage struct {
	Data []struct {
		StartTime int64 `json:"start_time"`
		EndTime   int64 `json:"end_time"`
		Results   []struct {
			APIKeyID         *string `json:"api_key_id"`
			NumModelRequests int64   `json:"num_model_requests"`
			InputTokens      int64   `json:"input_tokens"`
			OutputTokens     int64   `json:"output_tokens"`
		} `json:"results"`
	} `json:"data"`
	HasMore  bool    `json:"has_more"`
	NextPage *string `json:"next_page"`
}

func (o *openAI) call(method, path string, q url.Values, body any) call {
	return call{
		method: method, base: o.c.openAI, path: path, query: q, body: body, secret: o.key,
		auth:    func(h http.Header) { h.Set("Authorization", "Bearer "+o.key) },
		message: errorMessage,
	}
}

func (o *openAI) check(ctx context.Context) error {
	var page openAIList[openAIProject]
	return o.c.do(ctx, o.call(http.MethodGet, "/v1/organization/projects", url.Values{"limit": {"1"}}, nil), &page)
}

// projects lists the organization's projects, archived ones excluded (the
// API's default): an archived project's keys no longer work.
func (o *openAI) projects(ctx context.Context) ([]openAIProject, error) {
	var all []openAIProject
	after := ""
	err := paginate(ctx, func(ctx context.Context) (bool, error) {
		q := url.Values{"limit": {strconv.Itoa(openAIListLimit)}}
		if after != "" {
			q.Set("after", after)
		}
		var page openAIList[openAIProject]
		if err := o.c.do(ctx, o.call(http.MethodGet, "/v1/organization/projects", q, nil), &page); err != nil {
			return false, err
		}
		all = append(all, page.Data...)
		after = page.LastID
		return page.HasMore && after != "", nil
	})
	return all, err
}

// projectKeys lists one project's API keys. owner_project_access=any asks
// for every enabled key: without it the API applies membership-based
// visibility and may leave out keys whose owner lost access, which are
// exactly the keys keyledger must show.
func (o *openAI) projectKeys(ctx context.Context, p openAIProject) ([]keyledger.ProviderKey, error) {
	if !validID(p.ID) {
		return nil, &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable,
			Message: "the provider listed a project with a malformed id"}
	}
	var keys []keyledger.ProviderKey
	after := ""
	err := paginate(ctx, func(ctx context.Context) (bool, error) {
		q := url.Values{"limit": {strconv.Itoa(openAIListLimit)}, "owner_project_access": {"any"}}
		if after != "" {
			q.Set("after", after)
		}
		var page openAIList[openAIKey]
		path := "/v1/organization/projects/" + p.ID + "/api_keys"
		if err := o.c.do(ctx, o.call(http.MethodGet, path, q, nil), &page); err != nil {
			var pe *keyledger.ProviderAdminError
			if after == "" && errors.As(err, &pe) && pe.Status == http.StatusNotFound {
				// The project went away between the two listings: so
				// did its keys.
				return false, nil
			}
			return false, err
		}
		for _, k := range page.Data {
			keys = append(keys, mapOpenAIKey(p, k))
		}
		after = page.LastID
		return page.HasMore && after != "", nil
	})
	return keys, err
}

func mapOpenAIKey(p openAIProject, k openAIKey) keyledger.ProviderKey {
	pk := keyledger.ProviderKey{
		ID:          k.ID,
		Name:        k.Name,
		Hint:        k.RedactedValue,
		Project:     p.ID,
		ProjectName: p.Name,
		// The project key object has no status: a listed key is usable.
		Status:      "active",
		CreatedAt:   unixUTC(k.CreatedAt),
		OwnerType:   k.Owner.Type,
		OwnerActive: k.OwnerProjectAccess != "inactive",
	}
	if k.LastUsedAt != nil {
		pk.LastUsedAt = unixUTC(*k.LastUsedAt)
	}
	switch {
	case k.Owner.Type == "user" && k.Owner.User != nil:
		pk.CreatedBy = k.Owner.User.Email
	case k.Owner.Type == "service_account" && k.Owner.ServiceAccount != nil:
		pk.CreatedBy = k.Owner.ServiceAccount.Name
	}
	return pk
}

func unixUTC(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// keys lists the projects, then each project's keys with at most
// c.concurrency requests in flight; the first failure stops the rest.
func (o *openAI) keys(ctx context.Context) ([]keyledger.ProviderKey, error) {
	projects, err := o.projects(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	results := make([][]keyledger.ProviderKey, len(projects))
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	workers := min(o.c.concurrency, len(projects))
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				keys, err := o.projectKeys(ctx, projects[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				results[i] = keys
			}
		})
	}
feed:
	for i := range projects {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, contextFailure(ctx, err)
	}
	var all []keyledger.ProviderKey
	for _, r := range results {
		all = append(all, r...)
	}
	return all, nil
}

// usage reads completions usage grouped by API key in daily buckets and
// sums each key's results per day (a bucket can hold several results for
// one key when the provider splits them, and pages may repeat a day).
func (o *openAI) usage(ctx context.Context, since time.Time) ([]keyledger.ProviderUsage, error) {
	sum := newUsageSum()
	next := ""
	err := paginate(ctx, func(ctx context.Context) (bool, error) {
		q := url.Values{
			"start_time":   {strconv.FormatInt(since.Unix(), 10)},
			"bucket_width": {"1d"},
			"group_by":     {"api_key_id"},
			"limit":        {strconv.Itoa(openAIUsageLimit)},
		}
		if next != "" {
			q.Set("page", next)
		}
		var page openAIUsagePage
		if err := o.c.do(ctx, o.call(http.MethodGet, "/v1/organization/usage/completions", q, nil), &page); err != nil {
			return false, err
		}
		for _, b := range page.Data {
			day := unixUTC(b.StartTime).Truncate(24 * time.Hour)
			for _, r := range b.Results {
				if r.APIKeyID == nil || *r.APIKeyID == "" {
					continue // usage no key can be charged with
				}
				sum.add(*r.APIKeyID, day, r.NumModelRequests, r.InputTokens, r.OutputTokens)
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

// revoke deletes the key; a key OpenAI no longer knows is already gone.
func (o *openAI) revoke(ctx context.Context, key keyledger.ProviderKeyRef) error {
	if !validID(key.Project) {
		return &keyledger.ProviderAdminError{Kind: keyledger.ProviderRejected,
			Message: "an OpenAI key cannot be revoked without its project id; nothing was sent"}
	}
	path := "/v1/organization/projects/" + key.Project + "/api_keys/" + key.ID
	err := o.c.do(ctx, o.call(http.MethodDelete, path, nil, nil), nil)
	var pe *keyledger.ProviderAdminError
	if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// usageSum adds usage per key and day.
type usageSum struct {
	m map[usageKey]*keyledger.ProviderUsage
}

type usageKey struct {
	id  string
	day time.Time
}

func newUsageSum() *usageSum { return &usageSum{m: map[usageKey]*keyledger.ProviderUsage{}} }

func (s *usageSum) add(id string, day time.Time, requests, in, out int64) {
	k := usageKey{id, day}
	u := s.m[k]
	if u == nil {
		u = &keyledger.ProviderUsage{KeyID: id, Day: day}
		s.m[k] = u
	}
	u.Requests += requests
	u.InputTokens += in
	u.OutputTokens += out
}

// list returns the sums ordered by day, then key id.
func (s *usageSum) list() []keyledger.ProviderUsage {
	out := make([]keyledger.ProviderUsage, 0, len(s.m))
	for _, u := range s.m {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Day.Equal(out[j].Day) {
			return out[i].Day.Before(out[j].Day)
		}
		return out[i].KeyID < out[j].KeyID
	})
	return out
}
