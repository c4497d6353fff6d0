package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
)

// webhookTimeout bounds one delivery, whatever the caller's context allows.
const webhookTimeout = 10 * time.Second

// maxWebhookResponse is how much of a receiver's answer is read (and
// discarded, so the connection can be reused).
const maxWebhookResponse = 64 << 10

// Webhook posts reminders to a Slack-compatible incoming webhook: a POST of
// JSON {"text": "..."} with Content-Type application/json.
//
// The webhook URL is a secret (it embeds the token that lets anyone post to
// the channel), so it never appears in errors or in String.
type Webhook struct {
	url     *url.URL
	client  *http.Client
	timeout time.Duration
}

// NewWebhook validates rawURL, which must be an absolute http or https URL
// with a host. client may be nil for a default client; the per-delivery
// timeout comes from the context, not the client.
func NewWebhook(rawURL string, client *http.Client) (*Webhook, error) {
	rawURL = strings.TrimSpace(rawURL)
	if rawURL == "" {
		return nil, errors.New("webhook URL is empty")
	}
	// url.Parse errors quote the whole URL: never pass them on.
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("webhook URL is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("webhook URL must start with https:// or http://")
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("webhook URL must be absolute, with a host (https://host/path)")
	}
	if client == nil {
		client = &http.Client{}
	}
	return &Webhook{url: u, client: client, timeout: webhookTimeout}, nil
}

// String describes the webhook without its URL, for logs.
func (w *Webhook) String() string { return "webhook" }

// GoString keeps %#v from printing the URL.
func (w *Webhook) GoString() string { return "notify.Webhook{}" }

// Notify posts Text(n) to the webhook. Slack's three control characters
// (&, <, >) are escaped as Slack's message format requires, so user-typed
// names cannot form links or mentions such as <!channel>. A delivery takes
// at most 10 seconds (less if ctx says so). A non-2xx answer is an error
// naming the status only.
func (w *Webhook) Notify(ctx context.Context, n keyledger.Notification) error {
	return w.post(ctx, slackEscape(Text(n)))
}

// PublishCheckpoint posts an audit checkpoint, so that a copy of the
// chain's signed head sits in the chat channel, out of the database
// admin's reach. The message carries the checkpoint as one token that
// `keyledger audit verify --checkpoint FILE` reads from FILE.
func (w *Webhook) PublishCheckpoint(ctx context.Context, c keyledger.AuditCheckpoint) error {
	text := fmt.Sprintf("🔏 keyledger audit checkpoint: link %d at %s, signed by %s. To prove the log was not rewritten since, save this token to a file and run keyledger audit verify --checkpoint FILE: %s",
		c.Seq, c.Time.UTC().Format(time.RFC3339), c.PublicKey, c.Token())
	return w.post(ctx, slackEscape(text))
}

// post sends {"text": text}; text is already escaped for Slack.
func (w *Webhook) post(ctx context.Context, text string) error {
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return fmt.Errorf("webhook: encoding message: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
	if err != nil {
		// Not expected after NewWebhook's checks; the error would quote the URL.
		return errors.New("webhook: cannot build a request for the webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyledger")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: posting to the webhook URL: %w", stripURL(err))
	}
	defer func() { _ = resp.Body.Close() }() // read-only: closing it loses nothing
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The status text is ours, not the receiver's: a receiver could
		// echo anything in its reason phrase.
		return fmt.Errorf("webhook: receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

// stripURL drops the *url.Error wrapper the HTTP client adds, whose message
// quotes the request URL (and so the webhook token). What it wraps names at
// most the host.
func stripURL(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackEscape escapes the characters Slack treats as markup in text.
func slackEscape(s string) string { return slackEscaper.Replace(s) }
