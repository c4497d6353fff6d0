package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// webhookToken stands for the secret part of an incoming-webhook URL.
const webhookToken = "T000/B000/XXXXsecretTOKENxxxx"

type received struct {
	method, contentType, path string
	body                      []byte
}

func webhookReceiver(t *testing.T, status int) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{r.Method, r.Header.Get("Content-Type"), r.URL.Path, body}
		w.WriteHeader(status)
		if _, err := io.WriteString(w, "invalid_token "+webhookToken); err != nil {
			t.Errorf("webhook receiver: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func TestWebhookPostsText(t *testing.T) {
	srv, ch := webhookReceiver(t, http.StatusOK)
	w, err := NewWebhook(srv.URL+"/services/"+webhookToken, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	n := sample(keyledger.RemindOverdue)
	n.KeyName = "checkout <!channel> & co\r\nfoo"
	if err := w.Notify(context.Background(), n); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := <-ch
	if got.method != http.MethodPost || got.contentType != "application/json" || got.path != "/services/"+webhookToken {
		t.Errorf("got %s %s %q", got.method, got.path, got.contentType)
	}
	// Exactly one field, "text": Text(n) with Slack's &, <, > escaped.
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	want := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(Text(n))
	if len(body) != 1 || body["text"] != want {
		t.Errorf("body = %s\nwant text %q", got.body, want)
	}
	text := body["text"].(string)
	if strings.Contains(text, "<!channel>") || strings.ContainsAny(text, "\r\n") {
		t.Errorf("text %q has a live mention or a line break", text)
	}
	unescaped := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(text)
	if unescaped != Text(n) {
		t.Errorf("unescaped %q, want Text(n) %q", unescaped, Text(n))
	}
}

func TestWebhookErrorsHideURL(t *testing.T) {
	srv, _ := webhookReceiver(t, http.StatusInternalServerError)
	w, err := NewWebhook(srv.URL+"/services/"+webhookToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Notify(context.Background(), sample(keyledger.RemindDueSoon))
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the status", err)
	}
	assertNoSecret(t, err.Error(), webhookToken, "secretTOKEN", srv.URL)

	// A dead receiver: the HTTP client's error quotes the URL, Notify's must not.
	srv.Close()
	err = w.Notify(context.Background(), sample(keyledger.RemindDueSoon))
	if err == nil {
		t.Fatal("no error from a closed receiver")
	}
	assertNoSecret(t, err.Error(), webhookToken, "secretTOKEN", srv.URL)

	for _, s := range []string{w.String(), w.GoString()} {
		assertNoSecret(t, s, webhookToken, "secretTOKEN")
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	w, err := NewWebhook(srv.URL+"/hook/"+webhookToken, srv.Client())
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = w.Notify(ctx, sample(keyledger.RemindOverdue))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
	assertNoSecret(t, err.Error(), webhookToken)

	// The built-in bound (10s in production) applies without a ctx deadline.
	w.timeout = 100 * time.Millisecond
	if err := w.Notify(context.Background(), sample(keyledger.RemindOverdue)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("built-in timeout: err = %v", err)
	}
}

func TestNewWebhook(t *testing.T) {
	valid := []string{
		"https://hooks.slack.com/services/" + webhookToken,
		"http://mattermost.internal:8065/hooks/" + webhookToken,
		"  HTTPS://hooks.example.com/x\n",
	}
	for _, raw := range valid {
		w, err := NewWebhook(raw, nil)
		if err != nil {
			t.Errorf("NewWebhook(%q): %v", raw, err)
			continue
		}
		if w.client == nil || w.timeout != 10*time.Second {
			t.Errorf("NewWebhook(%q) = %+v", raw, w)
		}
	}
	invalid := []struct{ raw, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"hooks.slack.com/services/" + webhookToken, "https://"},
		{"/services/" + webhookToken, "https://"},
		{"ftp://hooks.example.com/" + webhookToken, "https://"},
		{"https:///services/" + webhookToken, "host"},
		{"https:hooks.example.com/" + webhookToken, "host"},
		{"https://:443/services/" + webhookToken, "host"},
		{"https://hooks.example.com/%zz" + webhookToken, "valid URL"},
		{"https://hooks.example.com:port/" + webhookToken, "valid URL"},
		{"https://hooks.example.com/" + webhookToken + "\x7f", "valid URL"},
	}
	for _, tc := range invalid {
		_, err := NewWebhook(tc.raw, nil)
		if err == nil {
			t.Errorf("NewWebhook(%q) = nil error", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "webhook URL") {
			t.Errorf("NewWebhook(%q) = %q, want it to mention %q", tc.raw, err, tc.want)
		}
		assertNoSecret(t, err.Error(), webhookToken, "secretTOKEN")
	}
}
