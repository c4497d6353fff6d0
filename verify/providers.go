package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
)

// checker is one provider: how to ask it about a key, and how to read its
// answer. Implementations are stateless.
type checker interface {
	// request builds the authenticated GET against base (a validated
	// absolute URL, possibly with a path prefix).
	request(ctx context.Context, base *url.URL, secret string) (*http.Request, error)
	// classify turns the provider's answer into a result.
	classify(a answer) keyledger.VerifyResult
}

// answer is what came back: the status, headers and at most maxBody bytes
// of body. secret is there only so that error code tokens overlapping the
// key can be dropped.
type answer struct {
	label  string
	status int
	header http.Header
	body   []byte
	secret string
}

// get builds a GET for base joined with path (path.Join semantics, so a
// base path prefix is kept and a trailing slash on it does not double up)
// carrying headers, given as name, value pairs.
func get(ctx context.Context, base *url.URL, path string, headers ...string) (*http.Request, error) {
	u := base.JoinPath(path)
	u.RawQuery, u.Fragment = "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), http.NoBody)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req, nil
}

// errorTypeCode reads the {"error":{"type":…,"code":…}} shape that OpenAI
// and Stripe share.
func errorTypeCode(body []byte) (typ, code string) {
	var b struct {
		Error struct {
			Type json.RawMessage `json:"type"`
			Code json.RawMessage `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &b)
	return jsonString(b.Error.Type), jsonString(b.Error.Code)
}

// codeToken matches the only provider text a message may carry.
var codeToken = regexp.MustCompile(`^[a-z_]{1,40}$`)

// token returns raw if it is a short error code safe to show, else "". A
// token that overlaps the key is dropped: a provider echoing the key, or a
// piece of it, in its code field must not get it shown. Overlap means one
// holds the other, or they share any run of overlapRun bytes.
func (a answer) token(raw string) string {
	if !codeToken.MatchString(raw) {
		return ""
	}
	if a.secret == "" {
		return raw
	}
	if strings.Contains(a.secret, raw) || strings.Contains(raw, a.secret) {
		return ""
	}
	for i := 0; i+overlapRun <= len(raw); i++ {
		if strings.Contains(a.secret, raw[i:i+overlapRun]) {
			return ""
		}
	}
	return raw
}

// overlapRun is the shortest run shared with the key that makes a token
// unsafe to show. Shorter runs (a "_", "test") occur by chance and reveal
// no more than the masked hint keyledger shows anyway.
const overlapRun = 5

// httpStatus renders "HTTP 429" or "HTTP 429 insufficient_quota".
func (a answer) httpStatus(code string) string {
	s := "HTTP " + strconv.Itoa(a.status)
	if code != "" {
		s += " " + code
	}
	return s
}

// standard is the classification shared by all providers, after their own
// special cases. code is an already-vetted token (or ""); billing says the
// provider's answer names a quota or billing problem.
func (a answer) standard(code string, billing bool) keyledger.VerifyResult {
	l, s := a.label, a.httpStatus(code)
	switch st := a.status; {
	case st >= 200 && st <= 299:
		return result(keyledger.VerifyOK, "%s accepted the key (%s).", l, s)
	case st == http.StatusUnauthorized:
		return result(keyledger.VerifyInvalid, "%s rejected the key as invalid or revoked (%s).", l, s)
	case st == http.StatusPaymentRequired, billing && st >= 400 && st <= 499:
		return result(keyledger.VerifyQuota, "%s says the key has no quota left: check billing (%s).", l, s)
	case st == http.StatusForbidden:
		return result(keyledger.VerifyForbidden, "%s refused the key access: check its permissions (%s).", l, s)
	case st == http.StatusTooManyRequests:
		return result(keyledger.VerifyRateLimited, "%s is rate-limiting the key; try again later (%s).", l, s)
	case st >= 400 && st <= 499:
		return result(keyledger.VerifyInvalid, "%s refused the key (%s).", l, s)
	case st >= 500 && st <= 599:
		return result(keyledger.VerifyUnreachable, "%s had a server error; try again later (%s).", l, s)
	}
	return result(keyledger.VerifyUnreachable, "%s gave an unexpected answer (%s).", l, s)
}

// mentionsBilling reports whether an error code or type names a quota or
// billing problem (insufficient_quota, billing_hard_limit_reached,
// billing_error…). It only classifies; the text is not shown.
func mentionsBilling(code string) bool {
	code = strings.ToLower(code)
	return strings.Contains(code, "quota") || strings.Contains(code, "billing")
}

// jsonString returns raw as a string when it is a JSON string, else "".
// Providers sometimes send null or a number where a code usually is.
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// openAI: GET /v1/models with a bearer token. Errors look like
// {"error":{"message":"…","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}.
type openAI struct{}

func (openAI) request(ctx context.Context, base *url.URL, secret string) (*http.Request, error) {
	return get(ctx, base, "v1/models", "Authorization", "Bearer "+secret, "Accept", "application/json")
}

func (openAI) classify(a answer) keyledger.VerifyResult {
	rawType, rawCode := errorTypeCode(a.body)
	billing := mentionsBilling(rawCode) || mentionsBilling(rawType)
	code := a.token(rawCode)
	if code == "" {
		code = a.token(rawType)
	}
	return a.standard(code, billing)
}

// anthropic: GET /v1/models with x-api-key and a pinned API version. Errors
// look like {"type":"error","error":{"type":"billing_error","message":"…"}}.
// Running out of credit has been reported both as billing_error (400, 402 or
// 403) and as an invalid_request_error whose message talks of the credit
// balance; both are quota. 529 overloaded_error is Anthropic being busy.
type anthropic struct{}

func (anthropic) request(ctx context.Context, base *url.URL, secret string) (*http.Request, error) {
	return get(ctx, base, "v1/models", "x-api-key", secret, "anthropic-version", "2023-06-01", "Accept", "application/json")
}

func (anthropic) classify(a answer) keyledger.VerifyResult {
	var body struct {
		Error struct {
			Type    json.RawMessage `json:"type"`
			Message json.RawMessage `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &body)
	rawType := jsonString(body.Error.Type)
	code := a.token(rawType)
	// The message is only looked at, never shown.
	msg := strings.ToLower(jsonString(body.Error.Message))
	billing := mentionsBilling(rawType) || strings.Contains(msg, "credit balance")
	if a.status == 529 {
		return result(keyledger.VerifyUnreachable, "Anthropic is overloaded; try again later (%s).", a.httpStatus(code))
	}
	return a.standard(code, billing)
}

// gitHub: GET /user with a bearer token. GitHub's errors carry free text
// only ({"message":"Bad credentials",…}), so no token is shown. A 403 or 429
// is a rate limit when x-ratelimit-remaining is 0, retry-after is set
// (secondary limits) or the message says so. Note that GitHub App
// installation tokens (ghs_) cannot read /user and check as forbidden.
type gitHub struct{}

func (gitHub) request(ctx context.Context, base *url.URL, secret string) (*http.Request, error) {
	return get(ctx, base, "user", "Authorization", "Bearer "+secret, "Accept", "application/vnd.github+json", "X-GitHub-Api-Version", "2022-11-28")
}

func (gitHub) classify(a answer) keyledger.VerifyResult {
	if a.status == http.StatusForbidden || a.status == http.StatusTooManyRequests {
		var body struct {
			Message json.RawMessage `json:"message"`
		}
		_ = json.Unmarshal(a.body, &body)
		// The message is only looked at, never shown.
		msg := strings.ToLower(jsonString(body.Message))
		if strings.TrimSpace(a.header.Get("X-Ratelimit-Remaining")) == "0" ||
			a.header.Get("Retry-After") != "" ||
			strings.Contains(msg, "rate limit") {
			return result(keyledger.VerifyRateLimited, "GitHub is rate-limiting the key; try again later (%s).", a.httpStatus(""))
		}
	}
	return a.standard("", false)
}

// stripe: GET /v1/balance with a bearer token. Errors look like
// {"error":{"type":"invalid_request_error","code":"api_key_expired","message":"…"}}.
// A restricted key (rk_) without balance read permission checks as
// forbidden.
type stripe struct{}

func (stripe) request(ctx context.Context, base *url.URL, secret string) (*http.Request, error) {
	return get(ctx, base, "v1/balance", "Authorization", "Bearer "+secret, "Accept", "application/json")
}

func (stripe) classify(a answer) keyledger.VerifyResult {
	rawType, rawCode := errorTypeCode(a.body)
	code := a.token(rawCode)
	if code == "" {
		code = a.token(rawType)
	}
	return a.standard(code, false)
}
