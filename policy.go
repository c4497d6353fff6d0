package keyledger

import "time"

// The rules below are pure so they can be tested exhaustively without a
// database. The store calls them inside the transaction that acts, so a
// handler can never skip them.

// CanReveal decides whether u may reveal a value of a key owned by ownerID
// in env. It returns nil or an EFORBIDDEN error that names the policy.
func CanReveal(u *User, env Environment, ownerID int64) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	switch env.RevealPolicy {
	case RevealAnyUser:
		return nil
	case RevealOwnerLeadsAdmins:
		if u.ID == ownerID || u.Role.AtLeastLead() {
			return nil
		}
		return Errorf(EFORBIDDEN, "In %s only the key's owner, leads and admins may reveal keys.", env.Name)
	}
	// An unknown policy is a configuration error; refuse rather than guess.
	return Errorf(EFORBIDDEN, "The reveal policy of %s is not recognised, so nothing is revealed.", env.Name)
}

// StepUpWindow is how recently a person must have entered their password
// or a two-factor code to reveal or export in a sensitive environment.
const StepUpWindow = 10 * time.Minute

// CheckStepUp returns ESTEPUP when env is sensitive and the actor has not
// proved themselves within StepUpWindow of now.
func CheckStepUp(a Actor, env Environment, now time.Time) error {
	if !env.Sensitive {
		return nil
	}
	if a.Token != nil {
		// A token cannot step up; a sensitive environment must allow
		// token reveals outright (an admin switch).
		if env.AllowTokenReveal {
			return nil
		}
		return Errorf(EFORBIDDEN, "%s does not allow revealing keys with an access token (an admin can allow it per environment); use the browser.", env.Name)
	}
	if a.StepUpAt.IsZero() || now.Sub(a.StepUpAt) > StepUpWindow {
		return &Error{Code: ESTEPUP, Message: "Confirm it is you: " + env.Name + " is a sensitive environment, so revealing or exporting its keys needs your password (or two-factor code) from the last 10 minutes.",
			Fields: map[string]string{"step_up": "Enter your password or a two-factor code."}}
	}
	return nil
}

// CanLead decides whether u may use the lead tools: ownership dashboard,
// reassignment, offboarding.
func CanLead(u *User) error {
	if u.Active() && u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only leads and admins may do this.")
}

// CanOffboard decides whether u may offboard subject: start the checklist
// (and freeze the account), revoke access, waive or complete items. Leads
// may offboard members and leads; only admins may offboard an admin, or
// a lead could lock every admin out, one after the other.
func CanOffboard(u, subject *User) error {
	if err := CanLead(u); err != nil {
		return err
	}
	if subject != nil && subject.Role == RoleAdmin && u.Role != RoleAdmin {
		return Errorf(EFORBIDDEN, "Only admins may offboard an admin.")
	}
	return nil
}

// CanAdminister decides whether u may manage users, roles and environments.
func CanAdminister(u *User) error {
	if u.Active() && u.Role == RoleAdmin {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only admins may do this.")
}

// CanViewInventory decides whether u may see the provider inventory: every
// key that exists at the connected providers, registered or not. Leads and
// admins, like the ownership dashboard it feeds.
func CanViewInventory(u *User) error {
	if u.Active() && u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only leads and admins may see the provider inventory.")
}

// CanManageProviders decides whether u may add, remove and sync provider
// connections, or link a provider key by hand: an admin key can list and
// revoke every key of an organization, so only admins hold it.
func CanManageProviders(u *User) error {
	if u.Active() && u.Role == RoleAdmin {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only admins may manage provider connections.")
}

// CanRotateAtProvider decides whether u may turn automated rotation at
// the provider on or off for a key, or press "Rotate now at OpenAI":
// leads and admins. It creates a service account in the organization
// with the connection's admin key and, after the grace period, deletes
// the old key there: more than an owner may do with their own key.
func CanRotateAtProvider(u *User) error {
	if u.Active() && u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only leads and admins may rotate keys at the provider.")
}

// CheckScope refuses a token action its scopes do not cover. Browser
// sessions (no token) are not limited by scopes.
func CheckScope(a Actor, scope string) error {
	if a.Token == nil || a.Token.Has(scope) {
		return nil
	}
	return Errorf(EFORBIDDEN, "This access token lacks the %q scope; create one with it on your profile page.", scope)
}

// CanEditKey decides whether u may edit or archive a key owned by ownerID.
func CanEditKey(u *User, ownerID int64) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	if u.ID == ownerID || u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only the key's owner, leads and admins may change this key.")
}

// CanViewAudit decides whether u may read the audit log.
func CanViewAudit(u *User) error {
	if u.Active() && u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only leads and admins may read the audit log.")
}

// CanRegisterKey decides whether u may register keys.
func CanRegisterKey(u *User) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	return nil
}

// FreshProof reports whether the actor's session confirmed who it is
// (a password, or a second factor the session did not itself enroll)
// within StepUpWindow of now. Changes to what protects an account (its
// second factor, its access tokens) need this or the current password, so
// that a stolen session alone cannot take the account over. Tokens never
// carry a proof.
func FreshProof(a Actor, now time.Time) bool {
	return a.Token == nil && !a.StepUpAt.IsZero() && now.Sub(a.StepUpAt) <= StepUpWindow
}

// CheckCredentialGrant decides whether actor may hand out a way to sign
// in as someone (a new account, a set-password link, a two-factor reset):
// a person must have confirmed who they are within StepUpWindow, so that a
// stolen admin session cannot mint itself a new admin or take over another
// account. The command line (no person) needs no proof: it already holds
// the master key.
func CheckCredentialGrant(a Actor, now time.Time) error {
	if a.User == nil || FreshProof(a, now) {
		return nil
	}
	return &Error{Code: ESTEPUP, Message: "Confirm it is you first: creating accounts, set-password links and two-factor resets need your password or a code from the last 10 minutes."}
}

// CanResetTOTP decides whether actor may turn off target's two-factor
// sign-in without target's proof (the person lost their device, or a
// thief enrolled one). Admins only, and never their own: an admin's own
// second factor goes through the profile, with their password, so that a
// stolen admin session cannot strip it.
func CanResetTOTP(actor, target *User) error {
	if err := CanAdminister(actor); err != nil {
		return err
	}
	if target == nil || actor.ID == target.ID {
		return Errorf(EFORBIDDEN, "You cannot reset your own two-factor sign-in; turn it off on your profile, with your password.")
	}
	return nil
}

// CanUse decides whether u may use keyledger at all: read the pickers and
// menus every signed-in person sees. Only an active account may.
func CanUse(u *User) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	return nil
}

// CanProviderRevoke decides whether actor may revoke a key at its provider
// (OpenAI deletes it, Anthropic deactivates it). That stops every program
// using the key, and no one can undo it, so it asks more than archiving:
//   - who: the key's owner, leads and admins, as for editing a key; for a
//     key only the provider knows (env nil, ownerID 0), leads and admins;
//   - proof: in a sensitive environment a password or code from the last
//     StepUpWindow, as for a reveal; a key only the provider knows counts
//     as sensitive, since nothing says it is not production; an access
//     token cannot step up, so it is refused there.
//
// The reason is checked apart (CheckProviderRevokeReason) so a form can
// show it next to its field.
func CanProviderRevoke(a Actor, env *Environment, ownerID int64, now time.Time) error {
	if env == nil {
		if err := CanLead(a.User); err != nil {
			return Errorf(EFORBIDDEN, "Only leads and admins may revoke a key that is not registered in keyledger.")
		}
	} else if err := CanEditKey(a.User, ownerID); err != nil {
		return Errorf(EFORBIDDEN, "Only the key's owner, leads and admins may revoke it at the provider.")
	}
	sensitive, where := true, "it is not registered in keyledger, so it may be a production key"
	if env != nil {
		sensitive, where = env.Sensitive, env.Name+" is a sensitive environment"
	}
	if !sensitive {
		return nil
	}
	if a.Token != nil {
		return Errorf(EFORBIDDEN, "Revoking this key at the provider needs a fresh password or code, which an access token cannot give; use the browser.")
	}
	if !FreshProof(a, now) {
		return &Error{Code: ESTEPUP, Message: "Confirm it is you: " + where + ", so revoking it at the provider needs your password (or two-factor code) from the last 10 minutes.",
			Fields: map[string]string{"step_up": "Enter your password or a two-factor code."}}
	}
	return nil
}

// CheckProviderRevokeReason requires a reason for revoking at the provider,
// in every environment: it is the one record of why production traffic
// may have stopped.
func CheckProviderRevokeReason(reason string) (string, error) {
	r, err := CheckReason(reason, false)
	if err != nil {
		return r, err
	}
	if r == "" {
		return r, &Error{Code: EINVALID, Message: "Say why you revoke this key at the provider.",
			Fields: map[string]string{"reason": "Say why: revoking at the provider stops every program using the key (invisible characters do not count)."}}
	}
	return r, nil
}

// CanReportLeak decides whether u may report a leaked value: anyone
// active. The lookup is rate-limited (LeakReportLimit) because it is an
// oracle.
func CanReportLeak(u *User) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	return nil
}

// CanListLeaks decides whether u may see the leaks page: every incident,
// open and closed. Leads and admins, like the audit log it draws on.
func CanListLeaks(u *User) error {
	if u.Active() && u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only leads and admins may see every leak incident.")
}

// CanViewLeak decides whether u may see one incident: leads and admins,
// the key's owner (who must act on it), and whoever reported the value
// through the report form (reported: they know the key already). Someone
// whose duplicate registration opened it is not told which key it was.
func CanViewLeak(u *User, ownerID int64, reported bool) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	if u.Role.AtLeastLead() || u.ID == ownerID || reported {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only the key's owner, leads, admins and the person who reported it may see this incident.")
}

// CanSeeLeakExposures decides whether u may see who revealed or exported
// the leaked version: that is the audit log, so leads and admins.
func CanSeeLeakExposures(u *User) error { return CanViewAudit(u) }

// CanResolveLeak decides whether u may act on an incident (record the
// revocation, waive it): the key's owner, leads and admins, as for
// editing the key.
func CanResolveLeak(u *User, ownerID int64) error {
	if !u.Active() {
		return Errorf(EFORBIDDEN, "Your account is deactivated.")
	}
	if u.ID == ownerID || u.Role.AtLeastLead() {
		return nil
	}
	return Errorf(EFORBIDDEN, "Only the key's owner, leads and admins may act on this incident.")
}
