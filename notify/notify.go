// Package notify delivers keyledger reminders (keys due for rotation, overdue
// or failing verification) to people: a Slack-compatible chat webhook and
// email over SMTP.
//
// Both channels send the same human text, built by [Text] (and [Subject]
// for email). Every user-typed field of a [keyledger.Notification] is
// cleaned before it is used: control characters (CR and LF included) become
// spaces, so a key name cannot add lines to a chat message or headers to an
// email.
//
// Configuration URLs hold secrets (a webhook URL embeds a token, an SMTP URL
// a password), so neither the URLs nor the passwords ever appear in errors
// or in the String forms of [Webhook] and [SMTP].
package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyledger/keyledger"
)

var (
	_ keyledger.Notifier = (*Webhook)(nil)
	_ keyledger.Notifier = (*SMTP)(nil)
	_ keyledger.Notifier = Multi(nil)

	_ keyledger.CheckpointPublisher = (*Webhook)(nil)
)

// dateLayout formats rotation deadlines.
const dateLayout = "2006-01-02"

// Text renders the one-paragraph message shown in chat and at the top of the
// email, for example:
//
//	⏰ Key "checkout-api OpenAI" (checkout, production) is overdue for rotation: rotate by 2026-11-01 passed. Owner: Maria <maria@example.com>. https://keys.example.com/keys/42
//
// Parts whose fields are empty are left out. The result is a single line.
func Text(n keyledger.Notification) string {
	if n.Kind == keyledger.AlertAccountAttack {
		return attackText(n)
	}
	if n.Kind == keyledger.NoticeTOTPReset {
		return totpResetText(n)
	}
	if n.Kind == keyledger.AlertSpendSpike {
		return spendText(n)
	}
	var b strings.Builder
	b.WriteString(icon(n.Kind))
	b.WriteString(" ")
	b.WriteString(keyPhrase(n, 0))
	switch n.Kind {
	case keyledger.RemindOverdue:
		b.WriteString(" is overdue for rotation")
		if !n.RotateBy.IsZero() {
			b.WriteString(": rotate by " + n.RotateBy.Format(dateLayout) + " passed")
		}
	case keyledger.RemindDueSoon:
		b.WriteString(" is due for rotation")
		if !n.RotateBy.IsZero() {
			b.WriteString(" by " + n.RotateBy.Format(dateLayout))
		}
	case keyledger.RemindFailing:
		b.WriteString(" failed verification")
		result, msg := clean(n.Verify), strings.TrimRight(clean(n.VerifyMsg), ". ")
		switch {
		case result != "" && msg != "":
			b.WriteString(": " + result + " — " + msg)
		case result != "":
			b.WriteString(": " + result)
		case msg != "":
			b.WriteString(": " + msg)
		}
	case keyledger.AlertDuplicateValue:
		b.WriteString(": its value was offered again by " + clean(n.AttemptedBy))
		if env := clean(n.AttemptEnvironment); env != "" {
			b.WriteString(" (in " + env + ")")
		}
		if n.Attempts > 1 {
			b.WriteString(", " + strconv.Itoa(n.Attempts) + " times")
		}
		b.WriteString(", who may not reveal this key: the value is known outside its reveal policy. Find out how they have it, and rotate the key")
	case keyledger.AlertLeak:
		b.WriteString(" leaked")
		if n.LeakVersion > 0 {
			b.WriteString(" (version " + strconv.Itoa(n.LeakVersion) + ")")
		}
		if n.LeakSource == keyledger.LeakSourceDuplicate {
			b.WriteString(": its value was registered again by " + clean(n.AttemptedBy) + ", who may not reveal it")
		} else {
			b.WriteString(": reported by " + clean(n.AttemptedBy))
			if w := clean(n.LeakWhere); w != "" {
				b.WriteString(", seen at " + truncate(w, 200))
			}
		}
		b.WriteString(". Rotate it now, then revoke the leaked version; the incident closes when both are done")
	default:
		b.WriteString(" needs attention")
	}
	b.WriteString(".")
	if owner := ownerPhrase(n); owner != "" {
		b.WriteString(" Owner: " + owner + ".")
	}
	if u := clean(n.URL); u != "" {
		b.WriteString(" " + u)
	}
	return b.String()
}

// Subject is the email subject for n, a single line such as
//
//	[keyledger] Key "checkout-api OpenAI" (checkout, production) is overdue for rotation
func Subject(n keyledger.Notification) string {
	if n.Kind == keyledger.AlertAccountAttack {
		return "[keyledger] Many failed sign-ins for " + truncate(clean(n.Account), subjectFieldRunes)
	}
	if n.Kind == keyledger.NoticeTOTPReset {
		return "[keyledger] Two-factor sign-in was reset for " + truncate(clean(n.OwnerEmail), subjectFieldRunes)
	}
	s := "[keyledger] " + keyPhrase(n, subjectFieldRunes)
	switch n.Kind {
	case keyledger.RemindOverdue:
		s += " is overdue for rotation"
	case keyledger.RemindDueSoon:
		s += " is due for rotation"
		if !n.RotateBy.IsZero() {
			s += " by " + n.RotateBy.Format(dateLayout)
		}
	case keyledger.RemindFailing:
		s += " failed verification"
		if r := clean(n.Verify); r != "" {
			s += ": " + r
		}
	case keyledger.AlertDuplicateValue:
		s += ": value held outside its reveal policy"
	case keyledger.AlertSpendSpike:
		s += ": usage spike at " + truncate(clean(n.Provider), subjectFieldRunes)
	case keyledger.AlertLeak:
		s += " leaked: rotate and revoke it"
	default:
		s += " needs attention"
	}
	return s
}

// attackText warns the admins that someone is guessing an account's
// password, for example:
//
//	🚨 Many failed sign-ins for alice@example.com: 10 in the last 24 hours, from 4 addresses. Sign-in for this account is slowed down, not locked. https://keys.example.com/audit?action=auth.sign_in_failed
func attackText(n keyledger.Notification) string {
	var b strings.Builder
	b.WriteString("🚨 Many failed sign-ins for " + clean(n.Account))
	fmt.Fprintf(&b, ": %d in the last %s, from %d address", n.Failures, windowPhrase(n.Window), n.Addresses)
	if n.Addresses != 1 {
		b.WriteString("es")
	}
	b.WriteString(". Sign-in for this account is slowed down, not locked.")
	if u := clean(n.URL); u != "" {
		b.WriteString(" " + u)
	}
	return b.String()
}

func windowPhrase(d time.Duration) string {
	switch {
	case d <= 0:
		return "while"
	case d%time.Hour == 0 && d > time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d == time.Hour:
		return "hour"
	default:
		return fmt.Sprintf("%d minutes", max(1, d/time.Minute))
	}
}

// totpResetText tells a person an admin (n.VerifyMsg) turned their
// two-factor sign-in off, for example:
//
//	🔐 An admin (admin@example.com) reset two-factor sign-in for maria@example.com and signed out its sessions. Sign in with your password and set up your authenticator again: https://keys.example.com/profile/2fa If you did not ask for this, tell your admins now.
func totpResetText(n keyledger.Notification) string {
	var b strings.Builder
	b.WriteString("🔐 An admin")
	if by := clean(n.VerifyMsg); by != "" {
		b.WriteString(" (" + by + ")")
	}
	b.WriteString(" reset two-factor sign-in for ")
	if who := ownerPhrase(n); who != "" {
		b.WriteString(who)
	} else {
		b.WriteString("your account")
	}
	b.WriteString(" and signed out its sessions. Sign in with your password and set up your authenticator again")
	if u := clean(n.URL); u != "" {
		b.WriteString(": " + u)
	}
	b.WriteString(" If you did not ask for this, tell your admins now.")
	return b.String()
}

func icon(kind string) string {
	switch kind {
	case keyledger.RemindDueSoon, keyledger.RemindOverdue:
		return "⏰"
	case keyledger.RemindFailing:
		return "⚠️"
	case keyledger.AlertDuplicateValue, keyledger.AlertLeak:
		return "🚨"
	case keyledger.AlertSpendSpike:
		return "📈"
	}
	return "🔔"
}

// spendText tells a key's owner and the leads that its use spiked, e.g.
//
//	📈 Key "checkout" (core, production) used 12,000 requests on 2026-12-03 (UTC), 8.0× its 14-day median of 1,500. If that is not your own traffic, the key may have leaked: revoke it at OpenAI from its page. Owner: maria@example.com. https://keys.example.com/keys/42
func spendText(n keyledger.Notification) string {
	var b strings.Builder
	b.WriteString(icon(n.Kind) + " " + keyPhrase(n, 0))
	provider := clean(n.Provider)
	if n.KeyID == "" && n.ProviderKeyID != "" {
		b.WriteString(" (" + clean(n.ProviderKeyID) + " at " + provider + ", not registered in keyledger)")
	}
	sp := n.Spend
	value, median := sp.Requests, sp.MedianRequests
	if sp.Measure == keyledger.SpikeTokens {
		value, median = sp.Tokens, sp.MedianTokens
	}
	b.WriteString(" used " + groupDigits(value) + " " + sp.Measure + " on " + sp.Day.UTC().Format(dateLayout) + " (UTC), ")
	if median == 0 {
		b.WriteString("after 14 days without use.")
	} else {
		b.WriteString(strconv.FormatFloat(sp.Ratio(), 'f', 1, 64) + "× its 14-day median of " + groupDigits(int64(median+0.5)) + ".")
	}
	b.WriteString(" If that is not your own traffic, the key may have leaked: revoke it at " + provider + ".")
	if owner := ownerPhrase(n); owner != "" {
		b.WriteString(" Owner: " + owner + ".")
	}
	if u := clean(n.URL); u != "" {
		b.WriteString(" " + u)
	}
	return b.String()
}

// groupDigits writes n with thousands separators: 12000 → "12,000".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r != '-' && s[i-1] != '-' && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// subjectFieldRunes caps the key name, project and environment in a
// subject, which keeps subjects readable and header lines short.
const subjectFieldRunes = 80

// keyPhrase is `Key "name" (project, environment)`, each field cut to
// maxRunes runes when maxRunes > 0.
func keyPhrase(n keyledger.Notification, maxRunes int) string {
	name := truncate(clean(n.KeyName), maxRunes)
	if name == "" {
		name = "(unnamed)"
	}
	s := `Key "` + name + `"`
	var where []string
	for _, w := range []string{truncate(clean(n.Project), maxRunes), truncate(clean(n.Environment), maxRunes)} {
		if w != "" {
			where = append(where, w)
		}
	}
	if len(where) > 0 {
		s += " (" + strings.Join(where, ", ") + ")"
	}
	return s
}

// truncate cuts s to maxRunes runes, the last being "…", when maxRunes > 0.
func truncate(s string, maxRunes int) string {
	if maxRunes <= 0 || utf8.RuneCountInString(s) <= maxRunes {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:maxRunes-1]), " ") + "…"
}

func ownerPhrase(n keyledger.Notification) string {
	name, email := clean(n.OwnerName), clean(n.OwnerEmail)
	switch {
	case name != "" && email != "" && !strings.EqualFold(name, email):
		return name + " <" + email + ">"
	case email != "":
		return email
	}
	return name
}

// clean makes user-typed text safe for a single line of chat or a mail
// header: invalid UTF-8 becomes U+FFFD, control characters (CR, LF, tab,
// DEL, C1) and line/paragraph separators become spaces, bidirectional
// overrides are dropped, and runs of spaces collapse to one.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Bidi_Control, r):
			continue
		case unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029':
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// Multi fans a notification out to several notifiers at once. Nil entries
// are skipped.
type Multi []keyledger.Notifier

// Notify calls every notifier concurrently, waits for all of them, and
// returns their errors joined (nil when all succeeded). One failing channel
// does not stop the others.
func (m Multi) Notify(ctx context.Context, n keyledger.Notification) error {
	errs := make([]error, len(m))
	var wg sync.WaitGroup
	for i, nt := range m {
		if nt == nil {
			continue
		}
		wg.Go(func() { errs[i] = nt.Notify(ctx, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
