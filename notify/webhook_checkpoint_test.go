package notify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// A checkpoint posted to the chat carries the token that `audit verify
// --checkpoint` reads back, whole, and a failed post never quotes the URL.
func TestWebhookPublishesCheckpoint(t *testing.T) {
	srv, ch := webhookReceiver(t, http.StatusOK)
	w, err := NewWebhook(srv.URL+"/services/"+webhookToken, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := keyledger.SignAuditCheckpoint(keyledger.AuditCheckpoint{Seq: 42, Link: strings.Repeat("ab", 32), KeyedFrom: 1, Time: time.Now()}, priv)
	if err := w.PublishCheckpoint(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	got := <-ch
	var body map[string]string
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	tok := regexp.MustCompile(`klcp1\.[A-Za-z0-9_-]+`).FindString(body["text"])
	back, err := keyledger.ParseAuditCheckpoint([]byte(tok))
	if err != nil || back.JSON() != cp.JSON() {
		t.Fatalf("token in %q does not read back: %v", body["text"], err)
	}
	if err := back.VerifySignature(cp.PublicKey); err != nil {
		t.Errorf("posted checkpoint does not verify: %v", err)
	}

	bad, _ := webhookReceiver(t, http.StatusForbidden)
	w, err = NewWebhook(bad.URL+"/services/"+webhookToken, bad.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.PublishCheckpoint(context.Background(), cp); err == nil || strings.Contains(err.Error(), webhookToken) {
		t.Errorf("refused post: %v", err)
	}
}
