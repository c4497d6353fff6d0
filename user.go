package keyledger

import (
	"strings"
	"time"
)

// Role is what a user may do beyond revealing keys. See DESIGN.md section 4.
type Role string

// The roles, most powerful first; policy.go decides what each may do.
const (
	RoleAdmin  Role = "admin"
	RoleLead   Role = "lead"
	RoleMember Role = "member"
)

// ParseRole accepts a role name in any case.
func ParseRole(s string) (Role, bool) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleAdmin, RoleLead, RoleMember:
		return r, true
	}
	return "", false
}

// Roles lists roles from most to least privileged.
func Roles() []Role { return []Role{RoleAdmin, RoleLead, RoleMember} }

// AtLeastLead reports whether the role sees audit views and may manage
// ownership.
func (r Role) AtLeastLead() bool { return r == RoleAdmin || r == RoleLead }

// UserStatus is active or deactivated; a deactivated user can do nothing.
type UserStatus string

// The user statuses.
const (
	UserActive      UserStatus = "active"
	UserDeactivated UserStatus = "deactivated"
	// UserFrozen is a user under offboarding whose access was cut at once
	// (no sign-in, no reveals) while the checklist is worked through.
	UserFrozen UserStatus = "frozen"
)

// User is a person who signs in. The password hash never leaves the store.
type User struct {
	ID     int64
	Email  string
	Name   string
	Role   Role
	Status UserStatus
	// TOTPEnabled: the user signs in with a second factor.
	TOTPEnabled bool
	// Shell is the syntax of the line the quick copy puts on the
	// clipboard (the person's last choice; DefaultShell until then).
	Shell     ShellFormat
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Active reports whether the user may do anything at all.
func (u *User) Active() bool { return u != nil && u.Status == UserActive }

// DisplayName is the name, or the email when no name was given.
func (u *User) DisplayName() string {
	if u == nil {
		return ""
	}
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}

// NewUser is the input for creating a user.
type NewUser struct {
	Email    string
	Name     string
	Role     Role
	Password string
}

// MinPasswordLength follows NIST SP 800-63B: length over composition rules.
const MinPasswordLength = 12

// Validate normalizes the email and checks every field.
func (n *NewUser) Validate() error {
	var v Validation
	n.Email = NormalizeEmail(n.Email)
	if p := CheckEmail(n.Email); p != "" {
		v.Add("email", "Email "+p+".")
	}
	n.Name = strings.TrimSpace(n.Name)
	if p := CheckName(n.Name, 200); n.Name != "" && p != "" {
		v.Add("name", "Name "+p+".")
	}
	if _, ok := ParseRole(string(n.Role)); !ok {
		v.Add("role", "Role must be admin, lead or member.")
	}
	if p := CheckPassword(n.Password); p != "" {
		v.Add("password", p)
	}
	return v.Err()
}

// CheckPassword returns a problem with a new password, or "".
func CheckPassword(pw string) string {
	if len([]rune(pw)) < MinPasswordLength {
		return "Password must be at least " + itoa(MinPasswordLength) + " characters."
	}
	if len(pw) > 1024 {
		return "Password must be at most 1024 bytes."
	}
	if p := checkText(pw, 1024, false); p != "" {
		return "Password " + p + "."
	}
	return ""
}
