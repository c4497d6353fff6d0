package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func TestAccountAttackText(t *testing.T) {
	n := keyledger.Notification{Kind: keyledger.AlertAccountAttack, Account: "alice@example.com\r\nBcc: evil@example.com",
		Failures: 10, Addresses: 4, Window: 24 * time.Hour, URL: "https://keys.example.com/audit?action=auth.sign_in_failed",
		Recipients: []string{"admin@example.com"}}
	text := Text(n)
	want := "🚨 Many failed sign-ins for alice@example.com Bcc: evil@example.com: 10 in the last 24 hours, from 4 addresses. " +
		"Sign-in for this account is slowed down, not locked. https://keys.example.com/audit?action=auth.sign_in_failed"
	if text != want {
		t.Errorf("Text =\n%q\nwant\n%q", text, want)
	}
	subject := Subject(n)
	if strings.ContainsAny(subject, "\r\n") || !strings.HasPrefix(subject, "[keyledger] Many failed sign-ins for alice@example.com") {
		t.Errorf("Subject = %q", subject)
	}
	if strings.Contains(text, "Key ") {
		t.Errorf("an account alert reads like a key reminder: %q", text)
	}
	n.Addresses, n.Window = 1, 15*time.Minute
	if got := Text(n); !strings.Contains(got, "in the last 15 minutes, from 1 address.") {
		t.Errorf("Text = %q", got)
	}
}
