package provideradmin

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// logBuffer collects every log line a Client writes, at debug level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testClient is a Client pointed at the fakes, logging into logs, whose
// retry sleeps are recorded instead of slept.
type testClient struct {
	*Client
	logs   *logBuffer
	mu     sync.Mutex
	sleeps []time.Duration
}

func (tc *testClient) slept() []time.Duration {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]time.Duration(nil), tc.sleeps...)
}

func newTestClient(t testing.TB, cfg Config) *testClient {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	tc := &testClient{Client: New(cfg), logs: logs}
	tc.sleep = func(ctx context.Context, d time.Duration) error {
		tc.mu.Lock()
		tc.sleeps = append(tc.sleeps, d)
		tc.mu.Unlock()
		return ctx.Err()
	}
	return tc
}

func newOpenAI(t testing.TB) (*providertest.OpenAI, *testClient) {
	t.Helper()
	f := providertest.NewOpenAI()
	t.Cleanup(f.Close)
	return f, newTestClient(t, Config{OpenAIBaseURL: f.URL(), AnthropicBaseURL: "http://127.0.0.1:1"})
}

func newAnthropic(t testing.TB) (*providertest.Anthropic, *testClient) {
	t.Helper()
	f := providertest.NewAnthropic()
	t.Cleanup(f.Close)
	return f, newTestClient(t, Config{AnthropicBaseURL: f.URL(), OpenAIBaseURL: "http://127.0.0.1:1"})
}

func openAICred(key string) keyledger.ProviderCredential {
	return keyledger.ProviderCredential{Provider: keyledger.ProviderOpenAI, AdminKey: key}
}

func anthropicCred(key string) keyledger.ProviderCredential {
	return keyledger.ProviderCredential{Provider: keyledger.ProviderAnthropic, AdminKey: key}
}

// adminErr asserts err is a *keyledger.ProviderAdminError of kind.
func adminErr(t *testing.T, err error, kind keyledger.ProviderAdminErrorKind) *keyledger.ProviderAdminError {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a %s ProviderAdminError", kind)
	}
	pe, ok := err.(*keyledger.ProviderAdminError)
	if !ok {
		t.Fatalf("err = %T %v, want *keyledger.ProviderAdminError", err, err)
	}
	if pe.Kind != kind {
		t.Fatalf("kind = %q (%v), want %q", pe.Kind, err, kind)
	}
	return pe
}

// requireKind is adminErr for callers that need only the check.
func requireKind(t *testing.T, err error, kind keyledger.ProviderAdminErrorKind) {
	t.Helper()
	_ = adminErr(t, err, kind) // the check is the point; the error itself is not needed
}

// mustNotContain fails when any of haystacks contains needle.
func mustNotContain(t *testing.T, needle string, haystacks map[string]string) {
	t.Helper()
	for name, h := range haystacks {
		if strings.Contains(h, needle) {
			t.Errorf("%s contains the admin key: %q", name, h)
		}
	}
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}
