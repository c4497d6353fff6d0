package keyledger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"strconv"
	"time"
)

// Audit actions. The names are stored in the log, so they never change.
const (
	ActionSignIn          = "auth.sign_in"
	ActionSignInFailed    = "auth.sign_in_failed"
	ActionSignInThrottle  = "auth.sign_in_throttled"
	ActionSignOut         = "auth.sign_out"
	ActionKeyCreate       = "key.create"
	ActionKeyUpdate       = "key.update"
	ActionKeyReveal       = "key.reveal"
	ActionKeyArchive      = "key.archive"
	ActionUserCreate      = "user.create"
	ActionUserDeactivate  = "user.deactivate"
	ActionPasswordRehash  = "user.password_rehashed"
	ActionMasterKeyRotate = "masterkey.rotate"
	ActionKeyRotate       = "key.rotate"
	ActionKeyRollback     = "key.rollback"
	ActionVersionDestroy  = "key.version_destroyed"
	ActionKeyVerify       = "key.verify"
	ActionKeyExport       = "key.export"
	ActionKeyRemind       = "key.reminder_sent"
	ActionKeyReassign     = "key.reassign"
	// ActionKeyDuplicateValue is recorded on a live key when someone
	// registers or rotates to the value it holds. Details say who tried,
	// in which environment and whether they may reveal the key; never the
	// value or its fingerprint.
	ActionKeyDuplicateValue = "key.duplicate_value"
	// ActionKeyValueDamaged is recorded when a key's stored value no
	// longer decrypts (its envelope fails the integrity check) and the key
	// was left out of what was asked, e.g. an export.
	ActionKeyValueDamaged = "key.value_damaged"
	ActionTokenCreate     = "token.create"
	ActionTokenRevoke     = "token.revoke"
	ActionTokenUse        = "token.first_use"
	// ActionLeakCheck is one call of the leak check (keyledger scan):
	// details carry how many candidates were sent and how many matched,
	// never a candidate.
	ActionLeakCheck = "leak.check"
	// ActionLeakReport is one leak report (form or API), matched or not:
	// details say whether it matched and which incident, never the value.
	ActionLeakReport = "leak.report"
	// ActionLeakOpen opens an incident on a key version (by a report, or
	// by a duplicate registration from someone who may not reveal it).
	ActionLeakOpen = "leak.incident_open"
	// ActionLeakNotify: the owner and leads were told of an incident.
	ActionLeakNotify = "leak.notified"
	// ActionLeakRevoke records that the leaked version was revoked: its
	// value destroyed in keyledger, or revoked at the provider.
	ActionLeakRevoke = "leak.version_revoked"
	ActionLeakWaive  = "leak.waived"
	ActionLeakClose  = "leak.incident_closed"

	ActionUserRole       = "user.role_change"
	ActionUserReactivate = "user.reactivate"
	ActionUserFreeze     = "user.freeze"
	ActionPasswordChange = "user.password_change"
	ActionPasswordLink   = "user.password_link"
	ActionTOTPEnable     = "user.totp_enable"
	ActionTOTPDisable    = "user.totp_disable"
	ActionTOTPReset      = "user.totp_reset"
	ActionTOTPFailed     = "auth.totp_failed"
	ActionStepUp         = "auth.step_up"
	ActionReauthFailed   = "auth.password_check_failed"
	// ActionAccountAttack: an account's failed sign-ins crossed the alert
	// threshold; the admins are told (once per account per window).
	ActionAccountAttack = "auth.account_under_attack"
	ActionSessionRevoke = "session.revoke"
	// ActionSessionRevokeOthers: a person signed out all their sessions
	// but the one they asked from.
	ActionSessionRevokeOthers = "session.revoke_others"
	ActionEnvCreate           = "environment.create"
	ActionEnvUpdate           = "environment.update"
	ActionRolePolicy          = "role.policy_change"
	ActionOffboardStart       = "offboarding.start"
	ActionOffboardResolve     = "offboarding.item_resolved"
	ActionOffboardWaive       = "offboarding.item_waived"
	ActionOffboardAdd         = "offboarding.item_added"
	ActionOffboardComplete    = "offboarding.complete"

	// Provider connections. Details name the provider, the connection
	// and counts; never the admin key.
	ActionProviderConnect    = "provider.connect"
	ActionProviderDisconnect = "provider.disconnect"
	// ActionProviderCheckFail is an admin key the provider refused (or
	// could not be asked about) when adding a connection; nothing was
	// stored.
	ActionProviderCheckFail = "provider.check_failed"
	ActionProviderSync      = "provider.sync"
	ActionProviderSyncFail  = "provider.sync_failed"
	// ActionProviderLink: an admin linked a provider key to a registered
	// key by hand; the sync leaves that link alone. ActionProviderUnlink
	// undoes it and hands the key back to matching.
	ActionProviderLink   = "provider.key_linked"
	ActionProviderUnlink = "provider.key_unlinked"
)

// Acting on keys at their provider (admin API connections).
const (
	// ActionProviderRevoke: a key was revoked at its provider (OpenAI
	// deleted it, Anthropic set it inactive), or found already gone.
	ActionProviderRevoke = "key.provider_revoke"
	// ActionProviderRevokeFailed: the provider refused or did not answer;
	// nothing was marked revoked.
	ActionProviderRevokeFailed = "key.provider_revoke_failed"
	// ActionSpendSpike: a key's daily use at its provider broke the
	// spend rule; its owner and the leads are told.
	ActionSpendSpike = "key.spend_spike"
	// ActionAutoRotateOn and ActionAutoRotateOff: an admin or lead turned
	// automated rotation at the provider on or off for a key.
	ActionAutoRotateOn  = "key.auto_rotate_on"
	ActionAutoRotateOff = "key.auto_rotate_off"
	// ActionProviderRotateFailed: a rotation at the provider (automated
	// or "Rotate now at OpenAI") did not happen; the key is as it was.
	ActionProviderRotateFailed = "key.provider_rotate_failed"
)

// AuditActions lists the actions for filter menus.
func AuditActions() []string {
	return []string{
		ActionSignIn, ActionSignInFailed, ActionSignInThrottle, ActionSignOut,
		ActionKeyCreate, ActionKeyUpdate, ActionKeyReveal, ActionKeyArchive,
		ActionKeyRotate, ActionKeyRollback, ActionVersionDestroy, ActionKeyVerify, ActionKeyExport, ActionKeyRemind,
		ActionKeyReassign, ActionKeyDuplicateValue, ActionKeyValueDamaged, ActionTokenCreate, ActionTokenRevoke, ActionTokenUse, ActionLeakCheck, ActionLeakReport, ActionLeakOpen, ActionLeakNotify, ActionLeakRevoke, ActionLeakWaive, ActionLeakClose, ActionUserCreate, ActionUserDeactivate, ActionUserReactivate, ActionUserFreeze, ActionUserRole,
		ActionPasswordRehash, ActionPasswordChange, ActionPasswordLink, ActionTOTPEnable, ActionTOTPDisable, ActionTOTPReset, ActionTOTPFailed,
		ActionStepUp, ActionReauthFailed, ActionAccountAttack, ActionSessionRevoke, ActionSessionRevokeOthers, ActionEnvCreate, ActionEnvUpdate, ActionRolePolicy,
		ActionOffboardStart, ActionOffboardResolve, ActionOffboardWaive, ActionOffboardAdd, ActionOffboardComplete,
		ActionMasterKeyRotate,
		ActionProviderConnect, ActionProviderDisconnect, ActionProviderCheckFail, ActionProviderSync, ActionProviderSyncFail, ActionProviderLink, ActionProviderUnlink,
		ActionProviderRevoke, ActionProviderRevokeFailed, ActionSpendSpike,
		ActionAutoRotateOn, ActionAutoRotateOff, ActionProviderRotateFailed,
	}
}

// Actor is who acts and from where. User is nil for the system (the
// command line, scheduled jobs); Name then says which.
type Actor struct {
	User      *User
	Name      string
	IP        string
	UserAgent string
	// StepUpAt is when this session last proved itself with a password
	// or a two-factor code; zero when unknown.
	StepUpAt time.Time
	// Token is set when the actor came in with a personal access token
	// rather than a browser session.
	Token *Token
	// Epochs are the change epochs this request's session read saw
	// (migration 017); zero when unknown (tokens, jobs, the CLI), and then
	// nothing is answered from what the server kept.
	Epochs Epochs
}

// Epochs count committed changes (migration 017). A request may be
// answered from something built at epochs at least as high as its own:
// that holds every write committed before the request asked.
type Epochs struct {
	// List moves with what the key list shows: keys, environments, users,
	// leak incidents.
	List int64
	// All is List plus the activity epoch (audit events, the provider
	// inventory): what the dashboard shows. Every read sees both at one
	// moment, and they only grow, so one sum orders reads as the pair
	// would.
	All int64
}

// SystemActor is an actor with no user, e.g. "cli".
func SystemActor(name string) Actor { return Actor{Name: name} }

// Label names the actor for the audit log.
func (a Actor) Label() string {
	if a.User != nil {
		return a.User.Email
	}
	if a.Name != "" {
		return a.Name
	}
	return "system"
}

// AuditEvent is one row of the append-only audit log. Details never holds
// a secret or anything derived from one that could be brute-forced.
type AuditEvent struct {
	ID           int64
	Time         time.Time
	ActorID      int64 // 0: system or anonymous
	ActorEmail   string
	Action       string
	KeyID        string
	KeyName      string
	KeyVersion   int
	SubjectID    int64
	SubjectEmail string
	Environment  string
	IP           string
	UserAgent    string
	Reason       string
	// Details is the JSON text exactly as Postgres stores it (jsonb output
	// is normalized, so the same details always read back the same).
	Details string
}

// ChainHash is the event's link in the unkeyed hash chain (format 1):
// SHA-256 over the previous link and the event's canonical form. Editing
// any field, or deleting or reordering events, changes every later link.
// Anyone can recompute it; links made since the keyed chain began use
// ChainHMAC instead (docs/audit.md).
func ChainHash(prev []byte, e *AuditEvent) []byte {
	h := sha256.New()
	h.Write([]byte("keyledger audit v1\x00"))
	writeEvent(h, prev, e)
	return h.Sum(nil)
}

// ChainHMAC is the event's link in the keyed chain (format 2):
// HMAC-SHA256 under the chain key over the previous link and the event's
// canonical form (the same fields as ChainHash, under another label).
// Without the key, which is sealed under the master key, nobody can
// recompute a link after editing an event.
func ChainHMAC(key, prev []byte, e *AuditEvent) []byte {
	return NewChainKeyed(key).Link(prev, e)
}

// ChainKeyed computes ChainHMAC links under one key, keeping the HMAC's
// keyed state between links (the chainer and verify compute thousands in
// a row). Not safe for concurrent use.
type ChainKeyed struct{ h hash.Hash }

// NewChainKeyed returns a ChainKeyed for key.
func NewChainKeyed(key []byte) *ChainKeyed { return &ChainKeyed{h: hmac.New(sha256.New, key)} }

// Link is ChainHMAC(key, prev, e).
func (c *ChainKeyed) Link(prev []byte, e *AuditEvent) []byte {
	c.h.Reset()
	c.h.Write([]byte("keyledger audit v2\x00"))
	writeEvent(c.h, prev, e)
	return c.h.Sum(nil)
}

// writeEvent writes the previous link and the event's fields, each
// length-prefixed, in a fixed order.
func writeEvent(h hash.Hash, prev []byte, e *AuditEvent) {
	writeField(h, prev)
	for _, f := range [...]string{
		strconv.FormatInt(e.ID, 10),
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		strconv.FormatInt(e.ActorID, 10),
		e.ActorEmail,
		e.Action,
		e.KeyID,
		e.KeyName,
		strconv.Itoa(e.KeyVersion),
		strconv.FormatInt(e.SubjectID, 10),
		e.SubjectEmail,
		e.Environment,
		e.IP,
		e.UserAgent,
		e.Reason,
		e.Details,
	} {
		writeField(h, []byte(f))
	}
}

// writeField length-prefixes each field so that moving bytes from one
// field to the next changes the hash.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}
