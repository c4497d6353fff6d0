package provideradmin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keyledger/keyledger"
)

// call is one admin request, before the admin key is attached.
type call struct {
	method string
	base   *url.URL
	path   string // below the base URL; ids in it are checked by validID
	query  url.Values
	body   any // sent as JSON when not nil
	// auth sets the provider's auth headers on a request.
	auth func(h http.Header)
	// secret is the admin key, cut out of anything a provider says back.
	secret string
	// message extracts the provider's error message from an error body.
	message func(body []byte) string
}

// do sends cl, retrying a 429 with a short Retry-After, and decodes a 2xx
// answer into out (when out is not nil). Any failure is a
// *keyledger.ProviderAdminError, except a cancellation by the caller,
// which comes back as the context's error.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	for attempt := 0; ; attempt++ {
		status, header, body, err := c.once(ctx, cl)
		if err != nil {
			return err
		}
		if status >= 200 && status < 300 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable, Status: status,
					Message: "the provider's answer could not be read as the documented JSON"}
			}
			return nil
		}
		pe := classify(status, header, body, cl)
		if pe.Kind == keyledger.ProviderRateLimited && attempt < maxRetries &&
			pe.RetryAfter > 0 && pe.RetryAfter <= c.maxRetryWait {
			c.log.WarnContext(ctx, "provider admin API rate limited; retrying",
				"method", cl.method, "path", cl.path, "retry_after", pe.RetryAfter, "attempt", attempt+1)
			if err := c.sleep(ctx, pe.RetryAfter); err != nil {
				return contextFailure(ctx, err)
			}
			continue
		}
		return pe
	}
}

// once sends cl one time and reads the answer, capped.
func (c *Client) once(parent context.Context, cl call) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()

	u := *cl.base
	u.Path = cl.base.Path + cl.path
	u.RawPath = ""
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	var rd io.Reader
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("provideradmin: encode request body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), rd)
	if err != nil {
		return 0, nil, nil, &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable,
			Message: "could not build the request"}
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cl.auth(req.Header)

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, networkFailure(parent, ctx, cl.base.Host, err)
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing loses nothing
	limit := int64(maxErrorBody)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		limit = maxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	c.log.DebugContext(parent, "provider admin API call", "method", cl.method, "path", cl.path,
		"status", resp.StatusCode, "duration", time.Since(start))
	if err != nil {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return 0, nil, nil, networkFailure(parent, ctx, cl.base.Host, err)
		}
		// An error status already says what happened; classify with the
		// part of the body that was read.
	}
	if int64(len(body)) > limit {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return 0, nil, nil, &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable, Status: resp.StatusCode,
				Message: fmt.Sprintf("the provider's answer is larger than %d MiB", maxBody>>20)}
		}
		body = body[:limit]
	}
	return resp.StatusCode, resp.Header, body, nil
}

// classify turns a non-2xx answer into an error an admin can act on.
func classify(status int, header http.Header, body []byte, cl call) *keyledger.ProviderAdminError {
	pe := &keyledger.ProviderAdminError{Status: status}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		pe.Kind = keyledger.ProviderUnauthorized
	case status == http.StatusTooManyRequests:
		pe.Kind = keyledger.ProviderRateLimited
		pe.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		pe.Kind = keyledger.ProviderTimeout
	case status >= 500 || status < 400:
		// 5xx (and Anthropic's 529 overloaded), and a 3xx we refused to
		// follow: the provider is not answering as documented.
		pe.Kind = keyledger.ProviderUnavailable
	default:
		pe.Kind = keyledger.ProviderRejected
	}
	if status >= 300 && status < 400 {
		pe.Message = "the provider answered with a redirect, which keyledger does not follow"
		return pe
	}
	if cl.message != nil {
		pe.Message = cleanMessage(cl.message(body), cl.secret)
	}
	return pe
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). Unreadable or past values give 0; absurd ones are
// capped at a day.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs != secs {
			return 0
		}
		d = time.Duration(secs * float64(time.Second))
		if secs > 86400 {
			d = 24 * time.Hour
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, 24*time.Hour)
}

// cleanMessage keeps a provider's error message safe to show and store:
// the admin key cut out wherever it appears, control characters turned to
// spaces, whitespace collapsed, at most maxMessage bytes.
func cleanMessage(msg, secret string) string {
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[admin key]")
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, msg)
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8Start(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// networkFailure classifies a request that got no answer. The Go error is
// not copied: it names the URL and says nothing an admin can act on.
func networkFailure(parent, ctx context.Context, host string, err error) error {
	if parent.Err() != nil {
		return contextFailure(parent, parent.Err())
	}
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &keyledger.ProviderAdminError{Kind: keyledger.ProviderTimeout,
			Message: "no answer from " + host + " in time"}
	}
	return &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable,
		Message: "could not reach " + host}
}

// contextFailure is the caller's own context ending: a deadline is a
// timeout the caller can show; a cancellation is returned as it is.
func contextFailure(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &keyledger.ProviderAdminError{Kind: keyledger.ProviderTimeout,
			Message: "the provider did not answer before the deadline"}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("provideradmin: %w", ctx.Err())
	}
	return fmt.Errorf("provideradmin: %w", err)
}

// paginate calls page until it reports no more, guarding against a
// provider that never stops.
func paginate(ctx context.Context, page func(ctx context.Context) (more bool, err error)) error {
	for i := 0; i < maxPages; i++ {
		more, err := page(ctx)
		if err != nil || !more {
			return err
		}
	}
	return &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable,
		Message: fmt.Sprintf("the provider kept answering has_more after %d pages", maxPages)}
}
