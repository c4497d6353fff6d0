package keyledger

import (
	"context"
	"time"
)

// Verification results, as stored and shown.
const (
	VerifyOK          = "ok"
	VerifyInvalid     = "invalid"
	VerifyForbidden   = "forbidden"
	VerifyQuota       = "quota"
	VerifyRateLimited = "rate_limited"
	VerifyUnreachable = "unreachable"
	// VerifyManual marks a key a person checked by hand (providers
	// keyledger cannot call).
	VerifyManual = "manual"
)

// VerifyResults lists the results for filters and badges.
func VerifyResults() []string {
	return []string{VerifyOK, VerifyInvalid, VerifyForbidden, VerifyQuota, VerifyRateLimited, VerifyUnreachable, VerifyManual}
}

// VerifyFailing reports whether a result means the key does not work.
func VerifyFailing(result string) bool {
	switch result {
	case VerifyInvalid, VerifyForbidden, VerifyQuota:
		return true
	}
	return false
}

// VerifyResult is the outcome of using a key against its provider. Message
// is short, human, and never contains the key or anything derived from it.
type VerifyResult struct {
	Result  string
	Message string
}

// Verifier uses a key against its provider without revealing it to anyone.
type Verifier interface {
	// Supports reports whether keyledger can check this provider's keys.
	Supports(p Provider) bool
	// Verify calls the provider with secret and classifies the answer.
	// It never returns an error: failure to reach the provider is the
	// result VerifyUnreachable.
	Verify(ctx context.Context, p Provider, secret string) VerifyResult
}

// Notification is a reminder for one key, sent to its owner and the leads,
// or (Kind AlertAccountAttack) a warning to the admins that someone is
// guessing an account's password.
type Notification struct {
	Kind        string // due_soon | overdue | failing | account_under_attack
	KeyID       string
	KeyName     string
	Project     string
	Environment string
	OwnerEmail  string
	OwnerName   string
	RotateBy    time.Time
	Verify      string // last verification result, for failing
	VerifyMsg   string
	URL         string // the key's page
	// Recipients are the email addresses to tell: the owner and the leads.
	Recipients []string
	// Account, Failures and Addresses describe an attack on an account
	// (AlertAccountAttack): its email, the failed attempts within Window
	// and from how many client addresses they came.
	Account   string
	Failures  int
	Addresses int
	Window    time.Duration
	// For AlertDuplicateValue: who registered or rotated to this key's
	// value (an email), in which environment, and how many times since
	// the last alert.
	AttemptedBy        string
	AttemptEnvironment string
	Attempts           int
	// For AlertSpendSpike: the day that broke the spend rule and its
	// numbers, and the key as the provider names it (ProviderKeyID, at
	// Provider); KeyID is empty when the key is not in keyledger.
	Spend         SpendSpike
	ProviderKeyID string
	Provider      string
	// For AlertLeak: the leaked version, how the incident was opened
	// (LeakSourceReport or LeakSourceDuplicate) and where the value was
	// seen. AttemptedBy is who reported it; URL is the incident's page.
	LeakVersion int
	LeakSource  string
	LeakWhere   string
}

// Reminder kinds.
const (
	RemindDueSoon = "due_soon"
	RemindOverdue = "overdue"
	RemindFailing = "failing"
	// AlertDuplicateValue: someone who may not reveal the key tried to
	// store its value, so the value is known outside the reveal policy.
	AlertDuplicateValue = "duplicate_value"
	// AlertLeak: a leak incident was opened on one of the key's versions.
	AlertLeak = "leak"
	// AlertAccountAttack warns the admins of many failed sign-ins for
	// one account.
	AlertAccountAttack = "account_under_attack"
	// AlertSpendSpike: a key's daily use at its provider is far above its
	// usual (SpendRule), which is what a leaked key looks like.
	AlertSpendSpike = "spend_spike"
)

// Notices to one person about their own account (not about a key). They
// travel the same channels as reminders; the key fields stay empty.
const (
	// NoticeTOTPReset: an admin turned the person's two-factor sign-in
	// off. OwnerEmail/OwnerName name the person, VerifyMsg says who reset
	// it, URL is where to set it up again.
	NoticeTOTPReset = "totp_reset"
)

// Links builds the addresses that reminders and alerts point to. The web
// package owns the routes and implements it; the store's jobs, which send
// the notifications, only ask, so no route is spelled twice.
type Links interface {
	// Key is the page of the key with id.
	Key(id string) string
	// FailedSignIns is the audit log showing failed sign-ins.
	FailedSignIns() string
	// Leak is the page of the leak incident with id.
	Leak(id int64) string
}

// Notifier delivers reminders (chat webhook, email). Implementations must
// not put secrets in messages; a Notification holds none.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}
