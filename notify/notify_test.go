package notify

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func sample(kind string) keyledger.Notification {
	n := keyledger.Notification{
		Kind:        kind,
		KeyID:       "0b6f1c2e",
		KeyName:     "checkout-api OpenAI",
		Project:     "checkout",
		Environment: "production",
		OwnerEmail:  "maria@example.com",
		OwnerName:   "Maria",
		RotateBy:    time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		URL:         "https://keys.example.com/keys/0b6f1c2e",
		Recipients:  []string{"maria@example.com", "lead@example.com"},
	}
	if kind == keyledger.RemindFailing {
		n.Verify = keyledger.VerifyInvalid
		n.VerifyMsg = "OpenAI rejected the key."
	}
	return n
}

func TestText(t *testing.T) {
	tests := []struct {
		name string
		n    func() keyledger.Notification
		text string
		subj string
	}{
		{
			"overdue",
			func() keyledger.Notification { return sample(keyledger.RemindOverdue) },
			`⏰ Key "checkout-api OpenAI" (checkout, production) is overdue for rotation: rotate by 2026-11-01 passed. Owner: Maria <maria@example.com>. https://keys.example.com/keys/0b6f1c2e`,
			`[keyledger] Key "checkout-api OpenAI" (checkout, production) is overdue for rotation`,
		},
		{
			"due soon",
			func() keyledger.Notification { return sample(keyledger.RemindDueSoon) },
			`⏰ Key "checkout-api OpenAI" (checkout, production) is due for rotation by 2026-11-01. Owner: Maria <maria@example.com>. https://keys.example.com/keys/0b6f1c2e`,
			`[keyledger] Key "checkout-api OpenAI" (checkout, production) is due for rotation by 2026-11-01`,
		},
		{
			"failing",
			func() keyledger.Notification { return sample(keyledger.RemindFailing) },
			`⚠️ Key "checkout-api OpenAI" (checkout, production) failed verification: invalid — OpenAI rejected the key. Owner: Maria <maria@example.com>. https://keys.example.com/keys/0b6f1c2e`,
			`[keyledger] Key "checkout-api OpenAI" (checkout, production) failed verification: invalid`,
		},
		{
			"sparse",
			func() keyledger.Notification {
				return keyledger.Notification{Kind: keyledger.RemindOverdue, KeyName: "k", OwnerEmail: "o@example.com"}
			},
			`⏰ Key "k" is overdue for rotation. Owner: o@example.com.`,
			`[keyledger] Key "k" is overdue for rotation`,
		},
		{
			"failing without message, unknown kind fields",
			func() keyledger.Notification {
				return keyledger.Notification{Kind: keyledger.RemindFailing, Project: "p", Verify: "quota"}
			},
			`⚠️ Key "(unnamed)" (p) failed verification: quota.`,
			`[keyledger] Key "(unnamed)" (p) failed verification: quota`,
		},
		{
			"unknown kind",
			func() keyledger.Notification {
				return keyledger.Notification{Kind: "other", KeyName: "k", Environment: "dev", OwnerName: "Ann"}
			},
			`🔔 Key "k" (dev) needs attention. Owner: Ann.`,
			`[keyledger] Key "k" (dev) needs attention`,
		},
		{
			"control characters",
			func() keyledger.Notification {
				n := sample(keyledger.RemindFailing)
				n.KeyName = "a\r\nBcc: evil@example.com\x00\u2028b\u202Ec"
				n.VerifyMsg = "line one\nline two\t"
				n.OwnerName = "Mal\rlory"
				n.URL = "https://keys.example.com/k\n/1"
				return n
			},
			`⚠️ Key "a Bcc: evil@example.com bc" (checkout, production) failed verification: invalid — line one line two. Owner: Mal lory <maria@example.com>. https://keys.example.com/k /1`,
			`[keyledger] Key "a Bcc: evil@example.com bc" (checkout, production) failed verification: invalid`,
		},
		{
			"invalid UTF-8",
			func() keyledger.Notification {
				return keyledger.Notification{Kind: keyledger.RemindDueSoon, KeyName: "k\xffey"}
			},
			"⏰ Key \"k\uFFFDey\" is due for rotation.",
			"[keyledger] Key \"k\uFFFDey\" is due for rotation",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n()
			if got := Text(n); got != tc.text {
				t.Errorf("Text:\n got %q\nwant %q", got, tc.text)
			}
			if got := Subject(n); got != tc.subj {
				t.Errorf("Subject:\n got %q\nwant %q", got, tc.subj)
			}
		})
	}
}

func TestSubjectTruncatesLongNames(t *testing.T) {
	n := sample(keyledger.RemindOverdue)
	n.KeyName = strings.Repeat("ä", 200)
	s := Subject(n)
	if !strings.Contains(s, `"`+strings.Repeat("ä", 79)+`…"`) {
		t.Errorf("Subject = %q", s)
	}
	if !strings.Contains(Text(n), strings.Repeat("ä", 200)) {
		t.Error("Text must keep the full name")
	}
}

type notifierFunc func(context.Context, keyledger.Notification) error

func (f notifierFunc) Notify(ctx context.Context, n keyledger.Notification) error { return f(ctx, n) }

func TestMulti(t *testing.T) {
	var calls atomic.Int32
	ok := notifierFunc(func(_ context.Context, n keyledger.Notification) error {
		calls.Add(1)
		if n.KeyID != "0b6f1c2e" {
			t.Errorf("got notification %+v", n)
		}
		return nil
	})
	errA, errB := errors.New("webhook: down"), errors.New("smtp: down")
	fail := func(err error) keyledger.Notifier {
		return notifierFunc(func(context.Context, keyledger.Notification) error { calls.Add(1); return err })
	}

	if err := (Multi{ok, nil, ok}).Notify(context.Background(), sample(keyledger.RemindOverdue)); err != nil {
		t.Fatalf("all ok: %v", err)
	}
	if calls.Load() != 2 {
		t.Errorf("calls = %d", calls.Load())
	}
	calls.Store(0)
	err := Multi{fail(errA), ok, fail(errB)}.Notify(context.Background(), sample(keyledger.RemindOverdue))
	if !errors.Is(err, errA) || !errors.Is(err, errB) || err.Error() != "webhook: down\nsmtp: down" {
		t.Errorf("err = %q", err)
	}
	if calls.Load() != 3 {
		t.Errorf("a failure stopped the others: calls = %d", calls.Load())
	}
	if err := (Multi{}).Notify(context.Background(), sample(keyledger.RemindOverdue)); err != nil {
		t.Errorf("empty: %v", err)
	}

	// Notifiers run concurrently: two that each wait for the other finish.
	var wg chanPair
	wg.a, wg.b = make(chan struct{}), make(chan struct{})
	waiter := func(mine, theirs chan struct{}) keyledger.Notifier {
		return notifierFunc(func(ctx context.Context, _ keyledger.Notification) error {
			close(mine)
			select {
			case <-theirs:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := (Multi{waiter(wg.a, wg.b), waiter(wg.b, wg.a)}).Notify(ctx, sample(keyledger.RemindOverdue)); err != nil {
		t.Errorf("concurrent: %v", err)
	}
}

type chanPair struct{ a, b chan struct{} }

func TestTOTPResetNotice(t *testing.T) {
	n := keyledger.Notification{Kind: keyledger.NoticeTOTPReset, OwnerEmail: "maria@example.com", OwnerName: "Maria\r\nBcc: evil@example.com",
		VerifyMsg: "admin@example.com", URL: "https://keys.example.com/profile/2fa", Recipients: []string{"maria@example.com"}}
	text := Text(n)
	for _, want := range []string{"admin@example.com", "maria@example.com", "reset two-factor sign-in", "https://keys.example.com/profile/2fa", "did not ask for this"} {
		if !strings.Contains(text, want) {
			t.Errorf("Text = %q, missing %q", text, want)
		}
	}
	if strings.Contains(text, "Key \"") || strings.ContainsAny(text, "\r\n") {
		t.Errorf("Text = %q: a key phrase or a line break", text)
	}
	if s := Subject(n); s != "[keyledger] Two-factor sign-in was reset for maria@example.com" {
		t.Errorf("Subject = %q", s)
	}
}

func TestTextDuplicateValueAlert(t *testing.T) {
	n := keyledger.Notification{Kind: keyledger.AlertDuplicateValue, KeyName: "admin-prod-openai", Project: "core", Environment: "production",
		OwnerEmail: "admin@example.com", AttemptedBy: "member@example.com", AttemptEnvironment: "development", Attempts: 2, URL: "https://k.example/keys/1"}
	got := Text(n)
	for _, want := range []string{`Key "admin-prod-openai" (core, production)`, "offered again by member@example.com (in development), 2 times", "outside its reveal policy", "rotate the key"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text = %q, want it to contain %q", got, want)
		}
	}
	if s := Subject(n); !strings.Contains(s, "value held outside its reveal policy") {
		t.Errorf("Subject = %q", s)
	}
}

func TestTextSpendSpikeAlert(t *testing.T) {
	day := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	n := keyledger.Notification{Kind: keyledger.AlertSpendSpike, KeyName: "checkout", Project: "core", Environment: "production",
		OwnerEmail: "maria@example.com", Provider: "OpenAI", ProviderKeyID: "key_abc", URL: "https://k.example/keys/1",
		Spend: keyledger.SpendSpike{Day: day, Measure: keyledger.SpikeRequests, Requests: 12000, Tokens: 5, MedianRequests: 1500}}
	got := Text(n)
	for _, want := range []string{`Key "checkout" (core, production)`, "12,000 requests on 2026-12-03 (UTC)", "8.0× its 14-day median of 1,500", "revoke it at OpenAI", "Owner: maria@example.com", "https://k.example/keys/1"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text = %q, want it to contain %q", got, want)
		}
	}
	if s := Subject(n); s != `[keyledger] Key "checkout" (core, production): usage spike at OpenAI` {
		t.Errorf("Subject = %q", s)
	}
	// A key the provider knows but keyledger does not: named by its
	// provider id, from nothing (median zero), in tokens.
	n = keyledger.Notification{Kind: keyledger.AlertSpendSpike, KeyName: "ci bot", Project: "proj_1", Provider: "Anthropic", ProviderKeyID: "apikey_9",
		Spend: keyledger.SpendSpike{Day: day, Measure: keyledger.SpikeTokens, Requests: 10, Tokens: 2_500_000}}
	got = Text(n)
	for _, want := range []string{`Key "ci bot" (proj_1)`, "apikey_9 at Anthropic, not registered in keyledger", "2,500,000 tokens on 2026-12-03 (UTC)", "after 14 days without use"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text = %q, want it to contain %q", got, want)
		}
	}
}

func TestTextLeakAlert(t *testing.T) {
	n := keyledger.Notification{Kind: keyledger.AlertLeak, KeyName: "prod-openai", Project: "core", Environment: "production",
		OwnerEmail: "owner@example.com", AttemptedBy: "member@example.com", LeakVersion: 2, LeakSource: keyledger.LeakSourceReport,
		LeakWhere: "https://gist.example.com/x\nBcc: evil@example.com", URL: "https://k.example/leaks/7"}
	got := Text(n)
	for _, want := range []string{"🚨", `Key "prod-openai" (core, production) leaked (version 2)`, "reported by member@example.com",
		"seen at https://gist.example.com/x Bcc", "Rotate it now", "https://k.example/leaks/7"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text = %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("Text has a line break: %q", got)
	}
	if s := Subject(n); !strings.Contains(s, "prod-openai") || !strings.Contains(s, "leaked") {
		t.Errorf("Subject = %q", s)
	}
	n.LeakSource = keyledger.LeakSourceDuplicate
	if got := Text(n); !strings.Contains(got, "registered again by member@example.com, who may not reveal it") || strings.Contains(got, "gist.example") {
		t.Errorf("duplicate Text = %q", got)
	}
}
