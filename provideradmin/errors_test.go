package provideradmin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// fakeProvider is either fake, seen through what the error tests need.
type fakeProvider interface {
	AdminKey() string
	FailNext(n, status int, retryAfter string)
	SetDelay(d time.Duration)
	EchoKeyInErrors(on bool)
	Requests() []providertest.Request
	URL() string
}

type providerCase struct {
	name string
	fake fakeProvider
	c    *testClient
	cred func(key string) keyledger.ProviderCredential
	// someKey is a key the fake knows, for Revoke.
	someKey keyledger.ProviderKeyRef
}

func bothProviders(t *testing.T) []providerCase {
	t.Helper()
	fo, co := newOpenAI(t)
	fo.AddProject(providertest.OpenAIProject{ID: "proj_a", Name: "A"})
	ko := fo.AddKey(providertest.OpenAIKey{Project: "proj_a", Name: "k"})
	fa, ca := newAnthropic(t)
	ka := fa.AddKey(providertest.AnthropicKey{Name: "k"})
	return []providerCase{
		{"openai", fo, co, openAICred, keyledger.ProviderKeyRef{ID: ko, Project: "proj_a"}},
		{"anthropic", fa, ca, anthropicCred, keyledger.ProviderKeyRef{ID: ka}},
	}
}

// everyCall runs each ProviderAdmin method once and returns their errors.
func everyCall(c *Client, cred keyledger.ProviderCredential, ref keyledger.ProviderKeyRef) map[string]error {
	ctx := context.Background()
	_, kerr := c.Keys(ctx, cred)
	_, uerr := c.Usage(ctx, cred, time.Now().UTC().Truncate(24*time.Hour).Add(-48*time.Hour))
	return map[string]error{
		"Check":  c.Check(ctx, cred),
		"Keys":   kerr,
		"Usage":  uerr,
		"Revoke": c.Revoke(ctx, cred, ref),
	}
}

func TestBadAdminKeyIsUnauthorizedAndNeverShown(t *testing.T) {
	for _, pc := range bothProviders(t) {
		t.Run(pc.name, func(t *testing.T) {
			// A provider (or proxy) that repeats the key it was sent.
			pc.fake.EchoKeyInErrors(true)
			wrong := "sk-admin-WRONGkeyTHATmustNEVERbeSHOWN0123456789"
			for call, err := range everyCall(pc.c.Client, pc.cred(wrong), pc.someKey) {
				pe := adminErr(t, err, keyledger.ProviderUnauthorized)
				if pe.Status != http.StatusUnauthorized || pe.Message == "" {
					t.Errorf("%s: error = %+v, want HTTP 401 with the provider's message", call, pe)
				}
				mustNotContain(t, wrong, map[string]string{
					call + " Error()": err.Error(), call + " %v": fmt.Sprintf("%v", err), call + " %+v": fmt.Sprintf("%+v", pe),
					call + " %#v": fmt.Sprintf("%#v", pe),
				})
			}
			// The right key, through every call, in debug logs and errors.
			right := pc.fake.AdminKey()
			pc.fake.FailNext(1, http.StatusInternalServerError, "")
			errs := everyCall(pc.c.Client, pc.cred(right), pc.someKey)
			haystack := map[string]string{"logs": pc.c.logs.String()}
			for call, err := range errs {
				if err != nil {
					haystack[call] = err.Error()
				}
			}
			mustNotContain(t, wrong, haystack)
			mustNotContain(t, right, haystack)
			if !strings.Contains(pc.c.logs.String(), "provider admin API call") {
				t.Error("no request was logged: the log check above checked nothing")
			}
			for _, r := range pc.fake.Requests() {
				if strings.Contains(r.Path+r.Query.Encode()+r.Body, right) {
					t.Errorf("the admin key travelled outside the auth header: %+v", r)
				}
			}
		})
	}
}

func TestAdminKeyThatCannotBeAHeaderIsNotSent(t *testing.T) {
	for _, pc := range bothProviders(t) {
		for _, key := range []string{"", "sk-admin-with space", "sk-admin-\nInjected: 1"} {
			err := pc.c.Check(context.Background(), pc.cred(key))
			requireKind(t, err, keyledger.ProviderUnauthorized)
		}
		if n := len(pc.fake.Requests()); n != 0 {
			t.Errorf("%s: %d requests sent with an impossible admin key", pc.name, n)
		}
	}
}

func TestRateLimitedWithShortRetryAfterIsRetried(t *testing.T) {
	for _, pc := range bothProviders(t) {
		t.Run(pc.name, func(t *testing.T) {
			pc.fake.FailNext(2, http.StatusTooManyRequests, "1")
			if err := pc.c.Check(context.Background(), pc.cred(pc.fake.AdminKey())); err != nil {
				t.Fatalf("after two short 429s: %v, want success on the third try", err)
			}
			if got := pc.c.slept(); len(got) != 2 || got[0] != time.Second || got[1] != time.Second {
				t.Errorf("waited %v, want [1s 1s] as Retry-After said", got)
			}
			if n := len(pc.fake.Requests()); n != 3 {
				t.Errorf("requests = %d, want 3", n)
			}
		})
	}
}

func TestRateLimitedBeyondRetriesOrLongWaitGoesBack(t *testing.T) {
	for _, pc := range bothProviders(t) {
		t.Run(pc.name, func(t *testing.T) {
			cred := pc.cred(pc.fake.AdminKey())
			// Three short 429s: two retries, then the caller hears it.
			pc.fake.FailNext(3, http.StatusTooManyRequests, "1")
			pe := adminErr(t, pc.c.Check(context.Background(), cred), keyledger.ProviderRateLimited)
			if pe.RetryAfter != time.Second || pe.Status != http.StatusTooManyRequests {
				t.Errorf("error = %+v, want RetryAfter 1s, HTTP 429", pe)
			}
			if n := len(pc.fake.Requests()); n != 3 {
				t.Errorf("requests = %d, want 3 (1 + maxRetries)", n)
			}
			// A long wait is not slept through: the caller gets it at once.
			before := len(pc.fake.Requests())
			pc.fake.FailNext(1, http.StatusTooManyRequests, "120")
			pe = adminErr(t, pc.c.Check(context.Background(), cred), keyledger.ProviderRateLimited)
			if pe.RetryAfter != 2*time.Minute {
				t.Errorf("RetryAfter = %v, want 2m", pe.RetryAfter)
			}
			if n := len(pc.fake.Requests()) - before; n != 1 {
				t.Errorf("requests for a long Retry-After = %d, want 1", n)
			}
			if !strings.Contains(pe.Error(), "retry after 2m0s") {
				t.Errorf("Error() = %q, want it to say when to come back", pe.Error())
			}
			// An HTTP date.
			pc.fake.FailNext(1, http.StatusTooManyRequests, time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
			pe = adminErr(t, pc.c.Check(context.Background(), cred), keyledger.ProviderRateLimited)
			if pe.RetryAfter < 80*time.Second || pe.RetryAfter > 91*time.Second {
				t.Errorf("RetryAfter from an HTTP date = %v, want about 90s", pe.RetryAfter)
			}
		})
	}
}

func TestRetryWaitEndsWithTheContext(t *testing.T) {
	f := providertest.NewOpenAI()
	t.Cleanup(f.Close)
	c := New(Config{OpenAIBaseURL: f.URL(), MaxRetryWait: time.Minute})
	f.FailNext(1, http.StatusTooManyRequests, "30")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx, openAICred(f.AdminKey()))
	if time.Since(start) > 5*time.Second {
		t.Errorf("waited %v for a 30s Retry-After past a 100ms deadline", time.Since(start))
	}
	requireKind(t, err, keyledger.ProviderTimeout)
}

func TestSlowProviderTimesOut(t *testing.T) {
	for _, pc := range bothProviders(t) {
		t.Run(pc.name, func(t *testing.T) {
			pc.fake.SetDelay(2 * time.Second)
			c := New(Config{OpenAIBaseURL: pc.fake.URL(), AnthropicBaseURL: pc.fake.URL(), Timeout: 100 * time.Millisecond})
			start := time.Now()
			pe := adminErr(t, c.Check(context.Background(), pc.cred(pc.fake.AdminKey())), keyledger.ProviderTimeout)
			if time.Since(start) > time.Second {
				t.Errorf("took %v, want about the 100ms timeout", time.Since(start))
			}
			if pe.Status != 0 {
				t.Errorf("status = %d, want 0 (no answer)", pe.Status)
			}
			// The caller's own deadline is a timeout too.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := pc.c.Keys(ctx, pc.cred(pc.fake.AdminKey()))
			requireKind(t, err, keyledger.ProviderTimeout)
			// A cancellation is the caller's, not the provider's.
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			err = pc.c.Check(ctx, pc.cred(pc.fake.AdminKey()))
			if !errors.Is(err, context.Canceled) || keyledger.ProviderAdminErrorKindOf(err) != "" {
				t.Errorf("cancelled: err = %v, want context.Canceled and no ProviderAdminError", err)
			}
		})
	}
}

func TestServerErrorsAndOther4xx(t *testing.T) {
	for _, pc := range bothProviders(t) {
		t.Run(pc.name, func(t *testing.T) {
			cred := pc.cred(pc.fake.AdminKey())
			for _, tc := range []struct {
				status int
				kind   keyledger.ProviderAdminErrorKind
			}{
				{500, keyledger.ProviderUnavailable}, {502, keyledger.ProviderUnavailable},
				{529, keyledger.ProviderUnavailable}, {504, keyledger.ProviderTimeout},
				{403, keyledger.ProviderUnauthorized}, {400, keyledger.ProviderRejected},
				{409, keyledger.ProviderRejected}, {422, keyledger.ProviderRejected},
			} {
				pc.fake.FailNext(1, tc.status, "")
				pe := adminErr(t, pc.c.Check(context.Background(), cred), tc.kind)
				if pe.Status != tc.status || pe.Message != http.StatusText(tc.status) {
					t.Errorf("HTTP %d: error = %+v, want the status and the provider's message", tc.status, pe)
				}
			}
		})
	}
}

func TestUnreachableAndUnreadableAreUnavailable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	c := New(Config{OpenAIBaseURL: url, AnthropicBaseURL: url})
	for _, cred := range []keyledger.ProviderCredential{openAICred("sk-admin-x"), anthropicCred("sk-ant-admin-x")} {
		pe := adminErr(t, c.Check(context.Background(), cred), keyledger.ProviderUnavailable)
		if strings.Contains(pe.Message, "dial") || strings.Contains(pe.Message, "http://") {
			t.Errorf("message %q copies the Go error", pe.Message)
		}
	}

	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>proxy login</html>"))
	}))
	defer garbage.Close()
	c = New(Config{OpenAIBaseURL: garbage.URL})
	requireKind(t, c.Check(context.Background(), openAICred("sk-admin-x")), keyledger.ProviderUnavailable)
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var leaked []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("x-api-key")+r.Header.Get("Authorization"))
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	c := New(Config{OpenAIBaseURL: redirector.URL, AnthropicBaseURL: redirector.URL})
	for _, cred := range []keyledger.ProviderCredential{openAICred("sk-admin-secret"), anthropicCred("sk-ant-admin-secret")} {
		pe := adminErr(t, c.Check(context.Background(), cred), keyledger.ProviderUnavailable)
		if pe.Status != http.StatusTemporaryRedirect {
			t.Errorf("status = %d, want 307", pe.Status)
		}
	}
	if len(leaked) != 0 {
		t.Errorf("the redirect was followed and the admin key sent elsewhere %d times", len(leaked))
	}
}

func TestAnswerLargerThanTheCapIsRefused(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[],"pad":"`))
		chunk := strings.Repeat("x", 1<<20)
		for range maxBody>>20 + 1 {
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
		_, _ = w.Write([]byte(`"}`))
	}))
	defer big.Close()
	c := New(Config{OpenAIBaseURL: big.URL})
	pe := adminErr(t, c.Check(context.Background(), openAICred("sk-admin-x")), keyledger.ProviderUnavailable)
	if !strings.Contains(pe.Message, "larger than") {
		t.Errorf("message = %q", pe.Message)
	}
}

func TestProviderMessagesAreCleanedAndCapped(t *testing.T) {
	secret := "sk-admin-SECRET"
	long := strings.Repeat("é", 400)
	for _, tc := range []struct{ in, want string }{
		{"  bad\nrequest\t\x00 here ", "bad request here"},
		{"you sent " + secret + " which is wrong", "you sent [admin key] which is wrong"},
		{long, strings.Repeat("é", maxMessage/2) + "…"},
	} {
		if got := cleanMessage(tc.in, secret); got != tc.want {
			t.Errorf("cleanMessage(%.30q) = %.40q, want %.40q", tc.in, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"soon", 0}, {"NaN", 0},
		{"1", time.Second}, {" 30 ", 30 * time.Second}, {"1.5", 1500 * time.Millisecond},
		{"999999", 24 * time.Hour},
		{now.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestConfigValidateNamesTheFieldNotTheValue(t *testing.T) {
	for _, raw := range []string{"ftp://proxy", "http://user:hunter2@proxy", "http://proxy?x=hunter2", " http://proxy", "proxy"} {
		err := Config{OpenAIBaseURL: raw}.Validate()
		if err == nil || !strings.Contains(err.Error(), "OpenAIBaseURL") || strings.Contains(err.Error(), raw) {
			t.Errorf("Validate(%q) = %v, want an error naming the field, not the value", raw, err)
		}
		c := New(Config{OpenAIBaseURL: raw})
		if err := c.Check(context.Background(), openAICred("sk-admin-x")); err == nil {
			t.Errorf("Check with base URL %q: err = nil", raw)
		}
	}
	if err := (Config{OpenAIBaseURL: "http://proxy/openai/", AnthropicBaseURL: "https://api.anthropic.com"}).Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestBaseURLPathPrefixIsKept(t *testing.T) {
	f := providertest.NewOpenAI()
	defer f.Close()
	prefix := httptest.NewServer(http.StripPrefix("/openai", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2, _ := http.NewRequestWithContext(r.Context(), r.Method, f.URL()+r.URL.RequestURI(), r.Body)
		r2.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		w.WriteHeader(resp.StatusCode)
		_, _ = fmt.Fprint(w, readAll(resp))
	})))
	defer prefix.Close()
	c := New(Config{OpenAIBaseURL: prefix.URL + "/openai"})
	if err := c.Check(context.Background(), openAICred(f.AdminKey())); err != nil {
		t.Fatal(err)
	}
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestSupports(t *testing.T) {
	c := New(Config{})
	for p, want := range map[keyledger.Provider]bool{
		keyledger.ProviderOpenAI: true, keyledger.ProviderAnthropic: true,
		keyledger.ProviderGitHub: false, keyledger.ProviderStripe: false, "acme": false,
	} {
		if got := c.Supports(p); got != want {
			t.Errorf("Supports(%s) = %v", p, got)
		}
	}
	if err := c.Check(context.Background(), keyledger.ProviderCredential{Provider: keyledger.ProviderGitHub, AdminKey: "x"}); err == nil {
		t.Error("Check for github: err = nil")
	}
}
