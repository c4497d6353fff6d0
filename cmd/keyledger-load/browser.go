package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// newHTTP is the load client: one keep-alive pool for every simulated
// client, redirects not followed (a 303 is an answer, not a success).
func newHTTP() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// browserSession is a signed-in browser: its cookies and the CSRF token
// bound to its session.
type browserSession struct {
	email  string
	cookie string // Cookie header value
	csrf   string
}

type sessions struct {
	members []browserSession
	leads   []browserSession
}

var csrfPattern = regexp.MustCompile(`name="_csrf"\s+value="([^"]+)"`)

type cookieJar map[string]string

func (j cookieJar) take(resp *http.Response) {
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(j, c.Name)
			continue
		}
		j[c.Name] = c.Value
	}
}

func (j cookieJar) header() string {
	var parts []string
	for k, v := range j {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func getPage(ctx context.Context, h *http.Client, u string, jar cookieJar) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	if len(jar) > 0 {
		req.Header.Set("Cookie", jar.header())
	}
	resp, err := h.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it loses nothing
	b, err := io.ReadAll(resp.Body)
	jar.take(resp)
	return resp.StatusCode, string(b), err
}

// signInBrowser does what a person's browser does: fetch the sign-in page
// (CSRF cookie and token), post the form, keep the session cookie, and
// read the session-bound CSRF token from the next page.
func signInBrowser(ctx context.Context, h *http.Client, base, email string) (browserSession, error) {
	jar := cookieJar{}
	code, body, err := getPage(ctx, h, base+"/login", jar)
	if err != nil || code != http.StatusOK {
		return browserSession{}, fmt.Errorf("GET /login: %d %v", code, err)
	}
	m := csrfPattern.FindStringSubmatch(body)
	if m == nil {
		return browserSession{}, errors.New("GET /login: no _csrf field in the form")
	}
	form := url.Values{"email": {email}, "password": {loadPassword}, "_csrf": {m[1]}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return browserSession{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", jar.header())
	resp, err := h.Do(req)
	if err != nil {
		return browserSession{}, fmt.Errorf("POST /login: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // a response body: closing it loses nothing
	if resp.StatusCode != http.StatusSeeOther {
		return browserSession{}, fmt.Errorf("POST /login as %s: status %d, want 303: %.300s", email, resp.StatusCode, b)
	}
	jar.take(resp)
	code, body, err = getPage(ctx, h, base+"/keys", jar)
	if err != nil || code != http.StatusOK {
		return browserSession{}, fmt.Errorf("GET /keys after sign-in as %s: %d %v", email, code, err)
	}
	if m = csrfPattern.FindStringSubmatch(body); m == nil {
		return browserSession{}, errors.New("GET /keys: no _csrf field on the page")
	}
	return browserSession{email: email, cookie: jar.header(), csrf: m[1]}, nil
}

// signIn opens one member session per browser client and one session per
// lead (dashboard clients share the leads' sessions, like tabs). Sign-ins
// run one at a time: each costs the server an argon2id hash.
func signIn(ctx context.Context, h *http.Client, base string, sd *seedData, clients int) (*sessions, error) {
	var s sessions
	for i := 0; i < clients; i++ {
		b, err := signInBrowser(ctx, h, base, sd.members[i%len(sd.members)])
		if err != nil {
			return nil, err
		}
		s.members = append(s.members, b)
	}
	for _, email := range sd.leads {
		b, err := signInBrowser(ctx, h, base, email)
		if err != nil {
			return nil, err
		}
		s.leads = append(s.leads, b)
	}
	return &s, nil
}
