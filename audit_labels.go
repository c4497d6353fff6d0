package keyledger

import "slices"

// auditActionLabels is the one table from an audit action to what people
// read on the audit page. The actions themselves are stored in the log and
// never change; the labels may.
var auditActionLabels = map[string]string{
	ActionSignIn:              "Signed in",
	ActionProviderConnect:     "Provider connection added",
	ActionProviderDisconnect:  "Provider connection removed",
	ActionProviderCheckFail:   "Provider admin key refused",
	ActionProviderSync:        "Provider keys synced",
	ActionProviderSyncFail:    "Provider sync failed",
	ActionProviderLink:        "Provider key linked",
	ActionProviderUnlink:      "Provider key unlinked",
	ActionSignInFailed:        "Sign-in failed",
	ActionSignInThrottle:      "Sign-in throttled",
	ActionSignOut:             "Signed out",
	ActionKeyCreate:           "Key created",
	ActionKeyUpdate:           "Key edited",
	ActionKeyReveal:           "Key revealed",
	ActionKeyArchive:          "Key archived",
	ActionUserCreate:          "User created",
	ActionUserDeactivate:      "User deactivated",
	ActionPasswordRehash:      "Password hash upgraded",
	ActionMasterKeyRotate:     "Master key rotated",
	ActionKeyRotate:           "Key rotated",
	ActionKeyRollback:         "Key rolled back",
	ActionVersionDestroy:      "Key version destroyed",
	ActionKeyVerify:           "Key verified",
	ActionKeyExport:           "Key exported",
	ActionKeyRemind:           "Rotation reminder sent",
	ActionKeyReassign:         "Key reassigned",
	ActionKeyDuplicateValue:   "Duplicate value registered",
	ActionKeyValueDamaged:     "Key value damaged",
	ActionTokenCreate:         "Access token created",
	ActionTokenRevoke:         "Access token revoked",
	ActionTokenUse:            "Access token first used",
	ActionLeakCheck:           "Checked for leaked keys",
	ActionLeakReport:          "Reported a leaked value",
	ActionLeakOpen:            "Opened a leak incident",
	ActionLeakNotify:          "Told the owner and leads of a leak",
	ActionLeakRevoke:          "Revoked a leaked key version",
	ActionLeakWaive:           "Waived a leak incident",
	ActionLeakClose:           "Closed a leak incident",
	ActionUserRole:            "Role changed",
	ActionUserReactivate:      "User reactivated",
	ActionUserFreeze:          "User frozen",
	ActionPasswordChange:      "Password changed",
	ActionPasswordLink:        "Password link issued",
	ActionTOTPEnable:          "Two-factor enabled",
	ActionTOTPDisable:         "Two-factor disabled",
	ActionTOTPReset:           "Two-factor reset",
	ActionTOTPFailed:          "Two-factor code failed",
	ActionStepUp:              "Identity confirmed",
	ActionReauthFailed:        "Password check failed",
	ActionAccountAttack:       "Account under attack",
	ActionSessionRevoke:       "Session revoked",
	ActionSessionRevokeOthers: "Other sessions signed out",
	ActionEnvCreate:           "Environment created",
	ActionEnvUpdate:           "Environment edited",
	ActionRolePolicy:          "Role policy changed",
	ActionOffboardStart:       "Offboarding started",
	ActionOffboardResolve:     "Offboarding item resolved",
	ActionOffboardWaive:       "Offboarding item waived",
	ActionOffboardAdd:         "Offboarding item added",
	ActionOffboardComplete:    "Offboarding completed",

	ActionProviderRevoke:       "Key revoked at the provider",
	ActionProviderRevokeFailed: "Revoke at the provider failed",
	ActionSpendSpike:           "Usage spike at the provider",
	ActionAutoRotateOn:         "Automated rotation at the provider turned on",
	ActionAutoRotateOff:        "Automated rotation at the provider turned off",
	ActionProviderRotateFailed: "Rotation at the provider failed",
}

// AuditActionLabel is the human name of an audit action ("Signed in" for
// auth.sign_in). An action with no label (a row written by an older
// version) shows as itself rather than not at all.
func AuditActionLabel(action string) string {
	if l, ok := auditActionLabels[action]; ok {
		return l
	}
	return action
}

// AuditGroupRevealsExports is an action filter value standing for every
// event that handed a key's value out: reveals and exports. It is not an
// action, so it cannot collide with one (actions contain a dot).
const AuditGroupRevealsExports = "reveals-and-exports"

// AuditActionFilterKnown says whether an action filter value means
// something: an audit action or a group of them (the audit page, its CSV
// and GET /api/v1/audit take the same values).
func AuditActionFilterKnown(filter string) bool {
	return filter == AuditGroupRevealsExports || slices.Contains(AuditActions(), filter)
}

// AuditActionGroup lists the actions a filter value stands for: the group's
// members, or the action itself.
func AuditActionGroup(filter string) []string {
	if filter == AuditGroupRevealsExports {
		return []string{ActionKeyReveal, ActionKeyExport}
	}
	return []string{filter}
}
