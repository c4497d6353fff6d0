package keyledger

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
