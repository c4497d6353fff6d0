// Package providertest runs fake provider admin APIs (OpenAI's
// /v1/organization/… and Anthropic's /v1/organizations/…) as httptest
// servers, for the tests of provideradmin, store, web and cmd. They serve
// the documented JSON shapes, list envelopes and pagination included, and
// keep state: revoking a key really deletes (OpenAI) or deactivates
// (Anthropic) it.
//
// Every fake also offers what tests need to provoke failures: a queue of
// injected error answers (429 with Retry-After, 5xx, …), a delay on every
// answer (for timeouts), a cap on page sizes (to force many pages) and a
// record of the requests it saw (to assert that a DELETE hit the right
// id). Where the providers' documentation does not say what they answer
// (an unknown pagination cursor, some error messages), the fake's choice
// is marked "not documented" in a comment.
package providertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Request is one request a fake received. It never holds the auth headers.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   string // the request body, for POSTs
}

// failure is one injected error answer.
type failure struct {
	path       string // "" = any path
	status     int
	retryAfter string
	message    string
}

// server is what both fakes share.
type server struct {
	srv *httptest.Server

	mu       sync.Mutex
	adminKey string
	requests []Request
	failures []failure
	delay    time.Duration
	pageCap  int
	now      func() time.Time
	echoKey  bool
	inFlight int
	maxInFl  int
}

func (s *server) start(h http.Handler) {
	s.now = time.Now
	s.srv = httptest.NewServer(s.wrap(h))
}

// URL is the fake's base URL: give it to provideradmin.Config as
// OpenAIBaseURL or AnthropicBaseURL (paths start with /v1).
func (s *server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *server) Close() { s.srv.Close() }

// Client returns an http.Client that talks to the fake.
func (s *server) Client() *http.Client { return s.srv.Client() }

// AdminKey is the one admin key the fake accepts.
func (s *server) AdminKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminKey
}

// SetAdminKey changes the admin key the fake accepts.
func (s *server) SetAdminKey(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adminKey = k
}

// FailNext makes the next n requests (after authentication) answer status
// with the provider's error shape and, when retryAfter is not empty, a
// Retry-After header (seconds or an HTTP date).
func (s *server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, retryAfter: retryAfter, message: http.StatusText(status)})
	}
}

// FailPath is FailNext for requests to path only.
func (s *server) FailPath(path string, n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{path: path, status: status, retryAfter: retryAfter, message: http.StatusText(status)})
	}
}

// SetDelay makes every answer wait d first (or until the client gives up).
func (s *server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetPageCap caps every page at n items (list pages) or buckets (usage
// pages), whatever limit the client asks for, to force pagination; 0
// removes the cap.
func (s *server) SetPageCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageCap = n
}

// SetNow sets the fake's clock, which ends usage reports; default
// time.Now.
func (s *server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// EchoKeyInErrors makes the 401 message repeat the whole key it was sent,
// as a careless proxy might, to test that clients cut it out.
func (s *server) EchoKeyInErrors(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echoKey = on
}

// Requests returns the requests received so far, oldest first.
func (s *server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests had this method and path.
func (s *server) Count(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// MaxInFlight is the most requests the fake was serving at once, to check
// a client's concurrency bound.
func (s *server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFl
}

// ResetRequests forgets the requests received so far.
func (s *server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.maxInFl = 0
}

// wrap records the request, then applies the delay and injected failures.
// Authentication is the provider handler's job: it knows its header.
func (s *server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: string(body)})
		delay := s.delay
		s.inFlight++
		s.maxInFl = max(s.maxInFl, s.inFlight)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		}()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// nextFailure pops the first injected failure for path, if any.
func (s *server) nextFailure(path string) (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.failures {
		if f.path == "" || f.path == path {
			s.failures = append(s.failures[:i:i], s.failures[i+1:]...)
			return f, true
		}
	}
	return failure{}, false
}

func (s *server) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().UTC()
}

// pageSize reads limit (default def, 1..max) and applies the page cap. ok
// is false when limit is present but out of range.
func (s *server) pageSize(q url.Values, def, maxLimit int) (int, bool) {
	n := def
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > maxLimit {
			return 0, false
		}
		n = l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pageCap > 0 && n > s.pageCap {
		n = s.pageCap
	}
	return n, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client going away is not the fake's problem
}

// page cuts items after the item whose id is after, n at most. ok is false
// when after names no item.
func page[T any](items []T, id func(T) string, after string, n int) (out []T, more, ok bool) {
	start := 0
	if after != "" {
		start = -1
		for i, it := range items {
			if id(it) == after {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, false, false
		}
	}
	end := min(start+n, len(items))
	return items[start:end], end < len(items), true
}

// dayStart is the UTC midnight at or before t.
func dayStart(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
