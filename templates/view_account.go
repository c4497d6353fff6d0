package templates

import (
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
)

// TOTPLoginView is the second step of signing in.
type TOTPLoginView struct {
	Next    string
	Errors  map[string]string
	Message string
}

// SetPasswordView is the page behind a set-password link.
type SetPasswordView struct {
	// Token is the link's secret: it appears only in this page's form
	// action, never in anything logged.
	Token   string
	Email   string
	Errors  map[string]string
	Message string
}

// ProfileView is the signed-in person's own page.
type ProfileView struct {
	User     *keyledger.User
	Sessions []SessionRow
	// MustEnrollTOTP: the role requires two-factor sign-in and it is off.
	MustEnrollTOTP bool
	// Password form state after a failed change.
	PasswordErrors  map[string]string
	PasswordMessage string
	// StepUpAt is when this session last entered a password or code.
	StepUpAt time.Time
	// StepUpErrors is the standalone "confirm it is you" form's state.
	StepUpErrors map[string]string
	// Tokens are the person's personal access tokens (never a secret:
	// only the hint), TokenForm the create form's state.
	Tokens    []TokenRow
	TokenForm TokenForm
	// NeedProof: this session last confirmed it is the person more than
	// the step-up window ago, so creating a token asks for the current
	// password; HasPassword: the person has one (single sign-on accounts
	// may not, and confirm by signing in again).
	NeedProof   bool
	HasPassword bool
	// ShellSaved: the quick-copy shell was just saved.
	ShellSaved bool
}

// TokenRow is one of the person's personal access tokens.
type TokenRow struct {
	ID         int64
	Name       string
	Hint       string
	Scopes     []string
	Created    time.Time
	Expires    time.Time
	LastUsed   *time.Time
	LastUsedIP string
	Expired    bool
}

// TokenForm is the create-token form's input and errors.
type TokenForm struct {
	Name    string
	Scopes  []string
	Expires string
	Errors  map[string]string
	Message string
}

// Checked reports whether scope is ticked on the form.
func (f TokenForm) Checked(scope string) bool {
	for _, s := range f.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// TokenScopes lists the scopes for the create form, with what each allows.
func TokenScopes() []TokenScope {
	return []TokenScope{
		{keyledger.ScopeRead, "read: list keys and their metadata, environments, and the audit log your role can see"},
		{keyledger.ScopeReveal, "reveal: reveal and export key values"},
		{keyledger.ScopeWrite, "write: register, rotate and verify keys"},
	}
}

// TokenScope is a scope checkbox.
type TokenScope struct {
	Name  string
	Label string
}

// TokenExpiry is an option of the expiry menu.
type TokenExpiry struct {
	Value string
	Label string
}

// DefaultTokenExpiry is the expiry menu's preselected value (90 days,
// keyledger.DefaultTokenTTL).
const DefaultTokenExpiry = "90d"

// TokenExpiries are the expiry menu's options.
func TokenExpiries() []TokenExpiry {
	return []TokenExpiry{{"7d", "7 days"}, {"30d", "30 days"}, {"90d", "90 days"}, {"180d", "180 days"}, {"365d", "1 year"}}
}

// NewTokenView shows a just-created token once.
type NewTokenView struct {
	Token   string
	Name    string
	Scopes  []string
	Expires time.Time
	// Command signs the command-line client in with the token.
	Command string
}

// SessionRow is one of the person's live sessions.
type SessionRow struct {
	ID     string
	Device string
	// UserAgent is the raw string, kept for the title.
	UserAgent string
	IP        string
	Created   time.Time
	LastSeen  time.Time
	Current   bool
}

// TOTPEnrollView is the two-factor page: enrollment, recovery codes, or
// the status with a form to turn it off.
type TOTPEnrollView struct {
	Enabled    bool
	MustEnroll bool
	// Secret (base32) and QR (a data: URL of a PNG) while enrolling.
	Secret string
	QR     string
	// Retry: a confirmation failed; the secret set up before still holds
	// but is not shown again.
	Retry         bool
	Errors        map[string]string
	Message       string
	RecoveryCodes []string
	// NeedProof: turning it on or off asks for the current password (the
	// session's last confirmation is stale); HasPassword as in
	// ProfileView.
	NeedProof   bool
	HasPassword bool
	// ShellSaved: the quick-copy shell was just saved.
	ShellSaved bool
}

// StepUpView is the standalone "confirm it is you" form.
type StepUpView struct {
	Next    string
	Errors  map[string]string
	Message string
}

// AdminUsersView is the user administration page.
type AdminUsersView struct {
	Users []keyledger.User
	Me    int64
	Roles []keyledger.Role
	// Policies: per role, whether two-factor sign-in is required.
	Policies map[keyledger.Role]bool
	// RowErrors holds a message for the row of one user after a failed
	// action on it.
	RowErrors map[int64]string
	Create    NewUserForm
	Message   string
}

// NewUserForm is the create-user form.
type NewUserForm struct {
	Email   string
	Name    string
	Role    string
	Mode    string // password | link
	Errors  map[string]string
	Message string
}

// PasswordLinkView shows a set-password link once.
type PasswordLinkView struct {
	Email   string
	Link    string
	Expires time.Time
	// Created: the user was just created with this link.
	Created bool
}

// AdminEnvironmentsView is the environment administration page.
type AdminEnvironmentsView struct {
	Rows   []EnvironmentRow
	Create EnvironmentForm
}

// EnvironmentRow is an environment with its edit form.
type EnvironmentRow struct {
	Env  keyledger.Environment
	Form EnvironmentForm
}

// EnvironmentForm is an environment form's input and errors.
type EnvironmentForm struct {
	Input   keyledger.EnvironmentInput
	Errors  map[string]string
	Message string
}

// RevealPolicies lists the reveal policies for select menus.
func RevealPolicies() []keyledger.RevealPolicy {
	return []keyledger.RevealPolicy{keyledger.RevealAnyUser, keyledger.RevealOwnerLeadsAdmins}
}

func joinScopes(scopes []string) string { return strings.Join(scopes, ", ") }

func tokenRevokeURL(id int64) string { return "/profile/tokens/" + i64s(id) + "/revoke" }

func i64s(n int64) string { return strconv.FormatInt(n, 10) }

func adminUserAction(u keyledger.User, action string) string {
	return "/admin/users/" + i64s(u.ID) + "/" + action
}

func adminEnvAction(e keyledger.Environment) string { return "/admin/environments/" + e.Name }

// adminDOM makes a form control id unique per row.
func adminDOM(prefix, name string) string { return prefix + "-" + name }

func userStatusBadge(s keyledger.UserStatus) string {
	switch s {
	case keyledger.UserActive:
		return "good"
	case keyledger.UserFrozen:
		return "warn"
	}
	return "bad"
}
