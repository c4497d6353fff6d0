package web_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// Authorization matrix cases of the account pages (second factor at
// sign-in, set-password links, profile, two-factor enrollment, step-up)
// and of the admin pages (users, role policies, environments); listed in
// authzCases. The status codes are the ones chosen at the top of
// web/account.go and web/admin.go.

// acctCell carries what one cell's prepare and form set up to the calls
// after them. The matrix calls, one cell after the other: prepare (with
// the cell's t and env), form (with the actor), signs the actor in, then
// path, want, sends the request and runs check. So prepare makes the
// cell's fresh targets, form learns who acts, and path may change the
// state of the session the actor just got (path runs on the cell's
// goroutine, so it can fail the cell through st.t).
type acctCell struct {
	t     *testing.T
	env   *testEnv
	uniq  string
	actor string
	// since is the database's time when the cell began.
	since time.Time
	// bystander is a fresh member: the account the actors without one
	// of their own (anonymous, deactivated) aim at.
	bystander *keyledger.User
	// target is the fresh user, envName the fresh environment, an admin
	// action or a set-password link is aimed at.
	target  *keyledger.User
	envName string
	token   string // set-password link token
	sid     string // hex session id, as in /profile/sessions/:sid/revoke
	current string // hex id of the asking session, when signed in
	// tokenID is the access token a revoke is aimed at, tokenSecret its
	// secret.
	tokenID     int64
	tokenSecret string
	// totpSecret and totpAt: a two-factor enrollment begun by form, to be
	// confirmed by path with the code of totpAt.
	totpSecret string
	totpAt     time.Time
}

// prepare starts a cell: fresh bystander, and a production key owned
// by them whose value no answer nor log may show. setup adds the case's
// own targets and returns more values that must stay hidden.
func (st *acctCell) prepare(setup func(st *acctCell) []string) func(*testing.T, *testEnv, *keyledger.Key, string) []string {
	return func(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
		t.Helper()
		*st = acctCell{t: t, env: env, uniq: uniq}
		if err := env.Pool.QueryRow(context.Background(), "SELECT now()").Scan(&st.since); err != nil {
			t.Fatal(err)
		}
		st.bystander = acctNewUser(t, env, "bystander-"+uniq, keyledger.RoleMember)
		value := authzSecret()
		if _, err := env.Store.CreateKey(context.Background(), keyledger.Actor{User: st.bystander}, keyledger.KeyInput{
			Name: "bystander " + uniq, Project: "checkout", Environment: "production", OwnerEmail: st.bystander.Email, Value: value}); err != nil {
			t.Fatal(err)
		}
		secrets := []string{value}
		if setup != nil {
			secrets = append(secrets, setup(st)...)
		}
		return secrets
	}
}

// form remembers the actor and builds the cell's form with f (nil: none).
func (st *acctCell) form(f func(st *acctCell) url.Values) func(string, string, string) url.Values {
	return func(a, _, _ string) url.Values {
		st.actor = a
		if f == nil {
			return url.Values{}
		}
		return f(st)
	}
}

// self is the acting user as the database has it now; for the actors
// without an account of their own, the bystander.
func (st *acctCell) self() *keyledger.User {
	st.t.Helper()
	id := st.bystander.ID
	if signedIn(st.actor) {
		id = st.env.Users[authzLoginName[st.actor]].ID
	}
	u, err := st.env.Store.UserByID(context.Background(), keyledger.SystemActor("test"), id)
	if err != nil {
		st.t.Fatal(err)
	}
	return u
}

// user re-reads u.
func (st *acctCell) user(t *testing.T, u *keyledger.User) *keyledger.User {
	t.Helper()
	fresh, err := st.env.Store.UserByID(context.Background(), keyledger.SystemActor("test"), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return fresh
}

// exec runs SQL that sets up a state only time or another device would.
func (st *acctCell) exec(sql string, args ...any) {
	st.t.Helper()
	if _, err := st.env.Pool.Exec(context.Background(), sql, args...); err != nil {
		st.t.Fatal(err)
	}
}

// newSession signs u in on another device and returns the session's hex
// id.
func (st *acctCell) newSession(u *keyledger.User) string {
	st.t.Helper()
	raw, err := st.env.Store.StartSession(context.Background(), keyledger.Actor{IP: "192.0.2.7", UserAgent: "authz matrix"}, u, web.DefaultSessions())
	if err != nil {
		st.t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(raw)))
}

// currentSession is the hex id of u's newest session (a signed-in actor
// has exactly one: the one the matrix just opened).
func (st *acctCell) currentSession(u *keyledger.User) string {
	st.t.Helper()
	var sid string
	if err := st.env.Pool.QueryRow(context.Background(),
		"SELECT encode(id_hash, 'hex') FROM sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1", u.ID).Scan(&sid); err != nil {
		st.t.Fatal(err)
	}
	return sid
}

// sessionAlive reports whether the session with hex id sid still exists.
func (st *acctCell) sessionAlive(t *testing.T, sid string) bool {
	t.Helper()
	var n int
	if err := st.env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM sessions WHERE id_hash = decode($1, 'hex')", sid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// pendingSessions counts u's sessions still waiting for the second factor.
func (st *acctCell) pendingSessions(t *testing.T, u *keyledger.User) int {
	t.Helper()
	var n int
	if err := st.env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM sessions WHERE user_id = $1 AND pending_totp", u.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// makePending turns the actor's fresh session into one waiting for the
// second factor, as POST /login leaves it for a user with two-factor
// sign-in. (Signing in through the form would rotate the session after
// the matrix took its CSRF token.)
func (st *acctCell) makePending() {
	if signedIn(st.actor) {
		st.exec("UPDATE sessions SET pending_totp = true WHERE user_id = $1", st.self().ID)
	}
}

// beginTOTP starts an enrollment for the acting user and returns the
// secret; confirmTOTP finishes it with the code of the time it began.
func (st *acctCell) beginTOTP() string {
	st.t.Helper()
	enr, err := st.env.Store.BeginTOTP(context.Background(), keyledger.Actor{User: st.self()}, "keyledger")
	if err != nil {
		st.t.Fatal(err)
	}
	st.totpSecret, st.totpAt = enr.Secret, time.Now()
	return enr.Secret
}

func (st *acctCell) confirmTOTP() {
	st.t.Helper()
	if _, err := st.env.Store.ConfirmTOTP(context.Background(), keyledger.Actor{User: st.self(), StepUpAt: time.Now()}, "", totpCode(st.t, st.totpSecret, st.totpAt), ""); err != nil {
		st.t.Fatal(err)
	}
}

// passwordsChanged lists the users whose password changed during the cell.
func (st *acctCell) passwordsChanged(t *testing.T) []string {
	t.Helper()
	rows, err := st.env.Pool.Query(context.Background(), "SELECT email FROM users WHERE password_changed_at >= $1 ORDER BY email", st.since)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPasswordChanged: exactly u's password changed iff done.
func (st *acctCell) checkPasswordChanged(t *testing.T, u *keyledger.User, done bool) {
	t.Helper()
	want := ""
	if done {
		want = u.Email
	}
	if got := strings.Join(st.passwordsChanged(t), ","); got != want {
		t.Errorf("passwords changed: %q, want %q", got, want)
	}
}

// checkTokenNotLogged: a set-password token is a credential.
func (st *acctCell) checkTokenNotLogged(t *testing.T, token string) {
	t.Helper()
	if token != "" && strings.Contains(st.env.Logs.String(), token) {
		t.Error("a set-password token is in the server log")
	}
}

// userPath is /admin/users/{id}/{action} for u.
func userPath(u *keyledger.User, action string) string {
	return "/admin/users/" + strconv.FormatInt(u.ID, 10) + "/" + action
}

// acctNewUser creates an active user local@example.com with Password.
func acctNewUser(t *testing.T, env *testEnv, local string, role keyledger.Role) *keyledger.User {
	t.Helper()
	u, err := env.Store.CreateUser(context.Background(), keyledger.SystemActor("test"), keyledger.NewUser{
		Email: local + "@example.com", Name: "Fresh " + local, Role: role, Password: Password})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// adminOnly: admins get ok; leads and members 403 (the handlers check
// CanAdminister before anything else); signed-out actors as needUser.
func adminOnly(method, path string, ok authzWant) func(string, string, *keyledger.Key) authzWant {
	return func(a, _ string, _ *keyledger.Key) authzWant {
		if a == actorAdmin {
			return ok
		}
		return needUser(a, method, path, no403)
	}
}

// signedInOnly: everyone signed in gets ok; signed-out actors as needUser.
func signedInOnly(method, path string, ok authzWant) func(string, string, *keyledger.Key) authzWant {
	return func(a, _ string, _ *keyledger.Key) authzWant { return needUser(a, method, path, ok) }
}

func see(location string) authzWant {
	return authzWant{status: http.StatusSeeOther, location: location}
}

var (
	ok401 = authzWant{status: http.StatusUnauthorized}
	ok422 = authzWant{status: http.StatusUnprocessableEntity}
)

func authzAccountCases() []authzCase {
	// One state per case: the cells of a case run one after the other.
	var (
		tfaPending, tfaRight, tfaWrong                     = &acctCell{}, &acctCell{}, &acctCell{}
		linkGet, linkPost, linkNoGet, linkNoPost           = &acctCell{}, &acctCell{}, &acctCell{}, &acctCell{}
		linkGone                                           = &acctCell{}
		profile, pwRight, pwWrong                          = &acctCell{}, &acctCell{}, &acctCell{}
		revokeOther, revokeForeign, revokeCurrent          = &acctCell{}, &acctCell{}, &acctCell{}
		revokeOthers                                       = &acctCell{}
		enrollPage, enrollRight, enrollWrong               = &acctCell{}, &acctCell{}, &acctCell{}
		disableRight, disableWrong                         = &acctCell{}, &acctCell{}
		stepRight, stepWrong, stepEmpty, stepOffsite       = &acctCell{}, &acctCell{}, &acctCell{}, &acctCell{}
		createPw, createLink                               = &acctCell{}, &acctCell{}
		promote, demote, promoteSelf                       = &acctCell{}, &acctCell{}, &acctCell{}
		deactivate, reactivate, pwLink, policies, envEdit  = &acctCell{}, &acctCell{}, &acctCell{}, &acctCell{}, &acctCell{}
		envCreate                                          = &acctCell{}
		tokCreate, tokInvalid, tokRevoke, tokForeign       = &acctCell{}, &acctCell{}, &acctCell{}, &acctCell{}
		enrollStale, enrollStalePw, tokStale, stepEnrolled = &acctCell{}, &acctCell{}, &acctCell{}, &acctCell{}
		resetTOTP, resetSelf, resetNone                    = &acctCell{}, &acctCell{}, &acctCell{}
	)

	// A fresh user to aim at, with a live session of their own.
	freshTarget := func(role keyledger.Role, deactivated bool) func(st *acctCell) []string {
		return func(st *acctCell) []string {
			st.target = acctNewUser(st.t, st.env, "target-"+st.uniq, role)
			st.sid = st.newSession(st.target)
			if deactivated {
				if _, err := st.env.Store.DeactivateUser(context.Background(), keyledger.SystemActor("test"), st.target.Email); err != nil {
					st.t.Fatal(err)
				}
			}
			return nil
		}
	}
	// A set-password link for a fresh member (then deactivated when
	// deactivated is set).
	freshLink := func(deactivated bool) func(st *acctCell) []string {
		return func(st *acctCell) []string {
			freshTarget(keyledger.RoleMember, false)(st)
			token, _, err := st.env.Store.CreatePasswordLink(context.Background(), actorOf(st.env, "admin"), st.target.ID)
			if err != nil {
				st.t.Fatal(err)
			}
			st.token = token
			st.tokenID, st.tokenSecret = mintToken(st.t, st.env, st.target, "before recovery "+st.uniq)
			if deactivated {
				if _, err := st.env.Store.DeactivateUser(context.Background(), keyledger.SystemActor("test"), st.target.Email); err != nil {
					st.t.Fatal(err)
				}
			}
			return []string{"link password " + st.uniq, st.tokenSecret}
		}
	}
	linkForm := func(st *acctCell) url.Values {
		pw := "link password " + st.uniq
		return url.Values{"password": {pw}, "confirm": {pw}}
	}
	linkPath := func(st *acctCell) func(*keyledger.Key) string {
		return func(*keyledger.Key) string { return "/set-password/" + st.token }
	}
	// checkLink: the link's user got the new password, the link is spent
	// and their sessions and access tokens ended, iff the request
	// succeeded.
	checkLink := func(st *acctCell) func(*testing.T, *testEnv, *keyledger.Key, url.Values, authzWant) {
		return func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
			done := got.status == http.StatusSeeOther
			st.checkPasswordChanged(t, st.target, done)
			if _, err := env.Store.PasswordLinkUser(context.Background(), st.token); (err == nil) == done {
				t.Errorf("link still usable = %v after status %d", err == nil, got.status)
			}
			if alive := st.sessionAlive(t, st.sid); alive == done {
				t.Errorf("the link user's session alive = %v after status %d", alive, got.status)
			}
			if alive := tokenAlive(t, env, st.tokenID); alive == done {
				t.Errorf("the link user's access token alive = %v after status %d", alive, got.status)
			}
			if status := apiStatus(t, env, st.tokenSecret); (status == http.StatusUnauthorized) != done {
				t.Errorf("the link user's access token answers %d after status %d", status, got.status)
			}
			st.checkTokenNotLogged(t, st.token)
		}
	}
	pendingCode := func(right bool) func(st *acctCell) url.Values {
		return func(st *acctCell) url.Values {
			if !signedIn(st.actor) {
				return url.Values{"code": {"123456"}}
			}
			st.beginTOTP()
			if !right {
				return url.Values{"code": {"12345678"}}
			}
			// The step after the one enrollment spends.
			return url.Values{"code": {totpCode(st.t, st.totpSecret, st.totpAt.Add(30*time.Second))}}
		}
	}
	pendingPath := func(st *acctCell) func(*keyledger.Key) string {
		return func(*keyledger.Key) string {
			if signedIn(st.actor) {
				st.confirmTOTP()
				st.makePending()
			}
			return "/login/2fa"
		}
	}
	// checkPending: the actor's session finished signing in iff 303.
	checkPending := func(st *acctCell) func(*testing.T, *testEnv, *keyledger.Key, url.Values, authzWant) {
		return func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
			if !signedIn(got.actor) {
				return
			}
			if n := st.pendingSessions(t, st.self()); (n == 0) != (got.status == http.StatusSeeOther) {
				t.Errorf("%d pending sessions after status %d", n, got.status)
			}
		}
	}
	// checkTOTP: the acting user's two-factor sign-in is on iff on.
	checkTOTP := func(st *acctCell, on func(got authzWant) bool) func(*testing.T, *testEnv, *keyledger.Key, url.Values, authzWant) {
		return func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
			if enabled := st.self().TOTPEnabled; enabled != on(got) {
				t.Errorf("two-factor sign-in on = %v after status %d", enabled, got.status)
			}
		}
	}
	// Step-up: the actor's confirmation is 11 minutes old when they ask.
	agedPath := func(st *acctCell) func(*keyledger.Key) string {
		return func(*keyledger.Key) string {
			st.exec("UPDATE sessions SET step_up_at = now() - interval '11 minutes' WHERE user_id = $1", st.self().ID)
			return "/step-up"
		}
	}
	// staleTo ages the actor's confirmation, then goes to p.
	staleTo := func(st *acctCell, p string) func(*keyledger.Key) string {
		return func(*keyledger.Key) string {
			st.exec("UPDATE sessions SET step_up_at = now() - interval '11 minutes' WHERE user_id = $1", st.self().ID)
			return p
		}
	}
	// totpOn turns u's two-factor sign-in on through the store.
	totpOn := func(st *acctCell, u *keyledger.User) string {
		st.t.Helper()
		ctx := context.Background()
		enr, err := st.env.Store.BeginTOTP(ctx, keyledger.Actor{User: u}, "keyledger")
		if err != nil {
			st.t.Fatal(err)
		}
		if _, err := st.env.Store.ConfirmTOTP(ctx, keyledger.Actor{User: u, StepUpAt: time.Now()}, "", totpCode(st.t, enr.Secret, time.Now()), ""); err != nil {
			st.t.Fatal(err)
		}
		return enr.Secret
	}
	checkStepUp := func(st *acctCell) func(*testing.T, *testEnv, *keyledger.Key, url.Values, authzWant) {
		return func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
			var fresh int
			if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM sessions WHERE user_id = $1 AND step_up_at > now() - interval '1 minute'",
				st.self().ID).Scan(&fresh); err != nil {
				t.Fatal(err)
			}
			if (fresh > 0) != (got.status == http.StatusSeeOther) {
				t.Errorf("%d freshly confirmed sessions after status %d", fresh, got.status)
			}
		}
	}
	// checkRole: target has role after, which is want iff 303.
	checkRole := func(st *acctCell, before, after keyledger.Role) func(*testing.T, *testEnv, *keyledger.Key, url.Values, authzWant) {
		return func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
			want := before
			if got.status == http.StatusSeeOther {
				want = after
			}
			if r := st.user(t, st.target).Role; r != want {
				t.Errorf("role %s after status %d, want %s", r, got.status, want)
			}
		}
	}
	setTarget := func(role keyledger.Role) func(st *acctCell) []string {
		return func(st *acctCell) []string {
			st.target = acctNewUser(st.t, st.env, "target-"+st.uniq, role)
			return nil
		}
	}
	targetPath := func(st *acctCell, action string) func(*keyledger.Key) string {
		return func(*keyledger.Key) string { return userPath(st.target, action) }
	}
	adminPost := func(loc string) func(string, string, *keyledger.Key) authzWant {
		return adminOnly("POST", "", see(loc))
	}
	// checkNoLink: only an admin's answer carries a set-password link.
	checkNoLink := func(t *testing.T, got authzWant) {
		t.Helper()
		if m := passwordLinkRe.FindStringSubmatch(got.body); (m != nil) != (got.status == http.StatusOK && got.actor == actorAdmin) {
			t.Errorf("as %s (status %d) a set-password link shown = %v", got.actor, got.status, m != nil)
		}
	}
	linkCount := func(t *testing.T, env *testEnv, u *keyledger.User) int {
		t.Helper()
		var n int
		if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM password_links WHERE user_id = $1 AND used_at IS NULL", u.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const newUserPassword = "initial password "

	return []authzCase{
		// Second factor at sign-in. Without a half-finished sign-in the
		// page sends signed-in people on, everyone else to sign in.
		{route: "GET /login/2fa", name: "no sign-in under way", method: "GET", path: fixedPath("/login/2fa?next=%2Fprofile"),
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				if signedIn(a) {
					return see("/profile")
				}
				return see("/login")
			}},
		{route: "GET /login/2fa", name: "code due", method: "GET", prepare: tfaPending.prepare(nil), form: tfaPending.form(nil),
			path: func(*keyledger.Key) string { tfaPending.makePending(); return "/login/2fa" },
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				if signedIn(a) {
					return ok200
				}
				return see("/login")
			},
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, `name="code"`) {
					t.Error("the two-factor page asks for no code")
				}
				if signedIn(got.actor) && tfaPending.pendingSessions(t, tfaPending.self()) != 1 {
					t.Error("looking at the page changed the pending session")
				}
			}},
		{route: "POST /login/2fa", name: "no sign-in under way", method: "POST", path: fixedPath("/login/2fa"),
			form: func(string, string, string) url.Values { return url.Values{"code": {"123456"}, "next": {"/profile"}} },
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				switch {
				case signedIn(a):
					return see("/profile")
				case a == actorDeactivated:
					return no403
				}
				return see("/login")
			}},
		{route: "POST /login/2fa", name: "right code", method: "POST", prepare: tfaRight.prepare(nil), form: tfaRight.form(pendingCode(true)),
			path: pendingPath(tfaRight),
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				switch {
				case signedIn(a):
					return see("/keys")
				case a == actorDeactivated:
					return no403
				}
				return see("/login")
			},
			check: checkPending(tfaRight)},
		{route: "POST /login/2fa", name: "wrong code", method: "POST", prepare: tfaWrong.prepare(nil), form: tfaWrong.form(pendingCode(false)),
			path: pendingPath(tfaWrong),
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				switch {
				case signedIn(a):
					return ok401
				case a == actorDeactivated:
					return no403
				}
				return see("/login")
			},
			check: checkPending(tfaWrong)},

		// Set-password links: the token is the credential, whoever holds
		// it and whatever session they have.
		{route: "GET /set-password/:token", name: "valid link", method: "GET", prepare: linkGet.prepare(freshLink(false)), path: linkPath(linkGet),
			want: func(string, string, *keyledger.Key) authzWant { return ok200 },
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if !strings.Contains(got.body, `data-testid="set-password-email">`+linkGet.target.Email+"<") {
					t.Error("the set-password page does not name the link's user")
				}
				linkGet.checkPasswordChanged(t, linkGet.target, false)
				if _, err := env.Store.PasswordLinkUser(context.Background(), linkGet.token); err != nil {
					t.Errorf("looking at the link spent it: %v", err)
				}
				linkGet.checkTokenNotLogged(t, linkGet.token)
			}},
		{route: "GET /set-password/:token", name: "unknown token", method: "GET", prepare: linkNoGet.prepare(nil),
			path: func(*keyledger.Key) string { return "/set-password/" + authzRand(32) },
			want: func(string, string, *keyledger.Key) authzWant { return nf404 }},
		{route: "GET /set-password/:token", name: "deactivated user's link", method: "GET", prepare: linkGone.prepare(freshLink(true)), path: linkPath(linkGone),
			want: func(string, string, *keyledger.Key) authzWant { return nf404 },
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, _ authzWant) {
				linkGone.checkTokenNotLogged(t, linkGone.token)
			}},
		// A deactivated user's form carries a token bound to the session
		// that died: refused as expired (see needUser).
		{route: "POST /set-password/:token", name: "valid link", method: "POST", prepare: linkPost.prepare(freshLink(false)),
			form: linkPost.form(linkForm), path: linkPath(linkPost),
			want:  staleForm(see("/login?set=1")),
			check: checkLink(linkPost)},
		{route: "POST /set-password/:token", name: "unknown token", method: "POST", prepare: linkNoPost.prepare(nil),
			form: linkNoPost.form(linkForm),
			path: func(*keyledger.Key) string { return "/set-password/" + authzRand(32) },
			want: staleForm(nf404),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, _ authzWant) {
				linkNoPost.checkPasswordChanged(t, nil, false)
			}},

		// Profile: one's own, for everyone signed in.
		{route: "GET /profile", method: "GET", prepare: profile.prepare(nil), form: profile.form(nil), path: fixedPath("/profile"),
			want: signedInOnly("GET", "/profile", ok200),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, `data-testid="profile-email">`+profile.self().Email+"<") {
					t.Error("the profile is not the actor's own")
				}
			}},
		// The quick copy's shell: one's own, for anyone signed in.
		{route: "POST /profile/shell", method: "POST", path: fixedPath("/profile/shell"),
			form: func(string, string, string) url.Values { return url.Values{"shell": {"fish"}} },
			want: signedInOnly("POST", "", see("/profile?shell=saved")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				name, ok := authzLoginName[got.actor]
				if !ok {
					return
				}
				u, err := env.Store.UserByEmail(context.Background(), name+"@example.com")
				if err != nil {
					t.Fatal(err)
				}
				if (u.Shell == keyledger.FormatFish) != (got.status == http.StatusSeeOther) {
					t.Errorf("shell %q after status %d", u.Shell, got.status)
				}
			}},
		{route: "POST /profile/password", name: "right current password", method: "POST",
			prepare: pwRight.prepare(func(st *acctCell) []string { return []string{Password, "new password " + st.uniq} }),
			form: pwRight.form(func(st *acctCell) url.Values {
				return url.Values{"current_password": {Password}, "new_password": {"new password " + st.uniq}, "confirm": {"new password " + st.uniq}}
			}),
			path: fixedPath("/profile/password"),
			want: signedInOnly("POST", "", see("/profile?password=changed")),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				pwRight.checkPasswordChanged(t, pwRight.self(), got.status == http.StatusSeeOther)
			}},
		{route: "POST /profile/password", name: "wrong current password", method: "POST",
			prepare: pwWrong.prepare(func(st *acctCell) []string { return []string{"new password " + st.uniq} }),
			form: pwWrong.form(func(st *acctCell) url.Values {
				return url.Values{"current_password": {"not the password " + st.uniq}, "new_password": {"new password " + st.uniq}, "confirm": {"new password " + st.uniq}}
			}),
			path: fixedPath("/profile/password"),
			want: signedInOnly("POST", "", ok422),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, _ authzWant) {
				pwWrong.checkPasswordChanged(t, nil, false)
			}},

		// Sessions: only one's own, even for admins.
		{route: "POST /profile/sessions/:sid/revoke", name: "own other session", method: "POST", prepare: revokeOther.prepare(nil), form: revokeOther.form(nil),
			path: func(*keyledger.Key) string {
				revokeOther.sid = revokeOther.newSession(revokeOther.self())
				return "/profile/sessions/" + revokeOther.sid + "/revoke"
			},
			want: signedInOnly("POST", "", see("/profile?revoked=1")),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if alive := revokeOther.sessionAlive(t, revokeOther.sid); alive == (got.status == http.StatusSeeOther) {
					t.Errorf("session alive = %v after status %d", alive, got.status)
				}
			}},
		{route: "POST /profile/sessions/:sid/revoke", name: "someone else's session", method: "POST",
			prepare: revokeForeign.prepare(freshTarget(keyledger.RoleMember, false)),
			path:    func(*keyledger.Key) string { return "/profile/sessions/" + revokeForeign.sid + "/revoke" },
			want:    signedInOnly("POST", "", nf404),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if !revokeForeign.sessionAlive(t, revokeForeign.sid) {
					t.Errorf("someone else's session ended after status %d", got.status)
				}
			}},
		{route: "POST /profile/sessions/:sid/revoke", name: "current session", method: "POST", prepare: revokeCurrent.prepare(nil), form: revokeCurrent.form(nil),
			path: func(*keyledger.Key) string {
				if signedIn(revokeCurrent.actor) {
					revokeCurrent.sid = revokeCurrent.currentSession(revokeCurrent.self())
				} else {
					revokeCurrent.sid = revokeCurrent.newSession(revokeCurrent.bystander)
				}
				return "/profile/sessions/" + revokeCurrent.sid + "/revoke"
			},
			want: signedInOnly("POST", "", see("/login")),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if alive := revokeCurrent.sessionAlive(t, revokeCurrent.sid); alive == (got.status == http.StatusSeeOther) {
					t.Errorf("session alive = %v after status %d", alive, got.status)
				}
			}},

		{route: "POST /profile/sessions/revoke-others", method: "POST", prepare: revokeOthers.prepare(nil), form: revokeOthers.form(nil),
			path: func(*keyledger.Key) string {
				revokeOthers.current = ""
				if signedIn(revokeOthers.actor) {
					revokeOthers.current = revokeOthers.currentSession(revokeOthers.self())
				}
				revokeOthers.sid = revokeOthers.newSession(revokeOthers.self())
				return "/profile/sessions/revoke-others"
			},
			want: signedInOnly("POST", "", see("/profile?others=revoked")),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if alive := revokeOthers.sessionAlive(t, revokeOthers.sid); alive == (got.status == http.StatusSeeOther) {
					t.Errorf("other session alive = %v after status %d", alive, got.status)
				}
				if revokeOthers.current != "" && !revokeOthers.sessionAlive(t, revokeOthers.current) {
					t.Error("the asking session ended too")
				}
			}},

		// Access tokens: one's own, even for admins (the store would let
		// an admin revoke anyone's; the profile is not the place).
		{route: "POST /profile/tokens", name: "valid", method: "POST", prepare: tokCreate.prepare(nil),
			form: tokCreate.form(func(st *acctCell) url.Values {
				return url.Values{"name": {"matrix " + st.uniq}, "scopes": {"read", "reveal"}, "expires": {"30d"}}
			}),
			path: fixedPath("/profile/tokens"),
			want: signedInOnly("POST", "", ok200),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				made := got.status == http.StatusOK
				if n := tokenCountNamed(t, env, "matrix "+tokCreate.uniq); (n == 1) != made || n > 1 {
					t.Errorf("%d tokens created after status %d", n, got.status)
				}
				secret := newTokenSecret(got.body)
				if (secret != "") != made {
					t.Errorf("token shown = %v after status %d", secret != "", got.status)
				}
				if made {
					if owner := tokenOwner(t, env, secret); owner != tokCreate.self().ID {
						t.Errorf("the token shown belongs to user %d, not the actor", owner)
					}
					if strings.Contains(env.Logs.String(), secret) {
						t.Error("a new access token is in the server log")
					}
				}
			}},
		// A stale (perhaps stolen) session mints no token without the
		// current password.
		{route: "POST /profile/tokens", name: "stale session, no password", method: "POST", prepare: tokStale.prepare(nil),
			form: tokStale.form(func(st *acctCell) url.Values {
				return url.Values{"name": {"matrix " + st.uniq}, "scopes": {"read", "reveal"}, "expires": {"30d"}}
			}),
			path: staleTo(tokStale, "/profile/tokens"),
			want: signedInOnly("POST", "", ok422),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if n := tokenCountNamed(t, env, "matrix "+tokStale.uniq); n != 0 {
					t.Errorf("%d tokens created by a stale session after status %d", n, got.status)
				}
				if got.status == http.StatusUnprocessableEntity && !strings.Contains(got.body, `data-testid="error-current_password"`) {
					t.Error("the refusal does not ask for the current password")
				}
			}},
		{route: "POST /profile/tokens", name: "no scope", method: "POST", prepare: tokInvalid.prepare(nil),
			form: tokInvalid.form(func(st *acctCell) url.Values {
				return url.Values{"name": {"matrix " + st.uniq}, "expires": {"30d"}}
			}),
			path: fixedPath("/profile/tokens"),
			want: signedInOnly("POST", "", ok422),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if n := tokenCountNamed(t, env, "matrix "+tokInvalid.uniq); n != 0 {
					t.Errorf("%d tokens created after status %d", n, got.status)
				}
				if newTokenSecret(got.body) != "" {
					t.Error("a refused form shows a token")
				}
			}},
		// The actor's own token, made after they signed in (signed-out
		// actors aim at the bystander's).
		{route: "POST /profile/tokens/:tid/revoke", name: "own token", method: "POST", prepare: tokRevoke.prepare(nil), form: tokRevoke.form(nil),
			path: func(*keyledger.Key) string {
				tokRevoke.tokenID, tokRevoke.tokenSecret = mintToken(tokRevoke.t, tokRevoke.env, tokRevoke.self(), "revoke "+tokRevoke.uniq)
				return tokenRevokePath(tokRevoke.tokenID)
			},
			want: signedInOnly("POST", "", see("/profile?token_revoked=1")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if alive := tokenAlive(t, env, tokRevoke.tokenID); alive == (got.status == http.StatusSeeOther) {
					t.Errorf("token alive = %v after status %d", alive, got.status)
				}
				if strings.Contains(got.body, tokRevoke.tokenSecret) || strings.Contains(env.Logs.String(), tokRevoke.tokenSecret) {
					t.Error("an access token is in the answer or the server log")
				}
			}},
		{route: "POST /profile/tokens/:tid/revoke", name: "someone else's token", method: "POST",
			prepare: tokForeign.prepare(func(st *acctCell) []string {
				st.target = acctNewUser(st.t, st.env, "target-"+st.uniq, keyledger.RoleMember)
				st.tokenID, st.tokenSecret = mintToken(st.t, st.env, st.target, "foreign "+st.uniq)
				return []string{st.tokenSecret}
			}),
			path: func(*keyledger.Key) string { return tokenRevokePath(tokForeign.tokenID) },
			want: signedInOnly("POST", "", nf404),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if !tokenAlive(t, env, tokForeign.tokenID) {
					t.Errorf("someone else's token was revoked after status %d", got.status)
				}
			}},
		{route: "POST /profile/tokens/:tid/revoke", name: "not a token id", method: "POST", path: fixedPath("/profile/tokens/abc/revoke"),
			want: signedInOnly("POST", "", nf404)},

		// Two-factor enrollment: one's own.
		{route: "GET /profile/2fa", method: "GET", prepare: enrollPage.prepare(nil), form: enrollPage.form(nil), path: fixedPath("/profile/2fa"),
			want: signedInOnly("GET", "/profile/2fa", ok200),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, `data-testid="totp-secret"`) {
					t.Error("the enrollment page shows no secret")
				}
				if enrollPage.self().TOTPEnabled {
					t.Error("looking at the page turned two-factor sign-in on")
				}
			}},
		{route: "POST /profile/2fa", name: "right code", method: "POST", prepare: enrollRight.prepare(nil),
			form: enrollRight.form(func(st *acctCell) url.Values {
				st.beginTOTP()
				return url.Values{"code": {totpCode(st.t, st.totpSecret, st.totpAt)}}
			}),
			path: fixedPath("/profile/2fa"),
			want: signedInOnly("POST", "", ok200),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, f url.Values, got authzWant) {
				checkTOTP(enrollRight, func(got authzWant) bool { return got.status == http.StatusOK })(t, env, k, f, got)
				if shown := strings.Contains(got.body, `data-testid="recovery-codes"`); shown != (got.status == http.StatusOK) {
					t.Errorf("recovery codes shown = %v after status %d", shown, got.status)
				}
			}},
		{route: "POST /profile/2fa", name: "wrong code", method: "POST", prepare: enrollWrong.prepare(nil),
			form: enrollWrong.form(func(st *acctCell) url.Values {
				st.beginTOTP()
				return url.Values{"code": {"12345678"}}
			}),
			path:  fixedPath("/profile/2fa"),
			want:  signedInOnly("POST", "", ok422),
			check: checkTOTP(enrollWrong, func(authzWant) bool { return false })},
		// A stale (perhaps stolen) session enrolls no device without the
		// current password.
		{route: "POST /profile/2fa", name: "stale session, no password", method: "POST", prepare: enrollStale.prepare(nil),
			form: enrollStale.form(func(st *acctCell) url.Values {
				st.beginTOTP()
				return url.Values{"code": {totpCode(st.t, st.totpSecret, st.totpAt)}}
			}),
			path:  staleTo(enrollStale, "/profile/2fa"),
			want:  signedInOnly("POST", "", ok422),
			check: checkTOTP(enrollStale, func(authzWant) bool { return false })},
		{route: "POST /profile/2fa", name: "stale session, current password", method: "POST",
			prepare: enrollStalePw.prepare(func(*acctCell) []string { return []string{Password} }),
			form: enrollStalePw.form(func(st *acctCell) url.Values {
				st.beginTOTP()
				return url.Values{"code": {totpCode(st.t, st.totpSecret, st.totpAt)}, "current_password": {Password}}
			}),
			path:  staleTo(enrollStalePw, "/profile/2fa"),
			want:  signedInOnly("POST", "", ok200),
			check: checkTOTP(enrollStalePw, func(got authzWant) bool { return got.status == http.StatusOK })},
		{route: "POST /profile/2fa/disable", name: "right password", method: "POST", prepare: disableRight.prepare(func(*acctCell) []string { return []string{Password} }),
			form: disableRight.form(func(*acctCell) url.Values { return url.Values{"password": {Password}} }),
			// On after the actor signed in (before, the sign-in would wait
			// for the code).
			path: func(*keyledger.Key) string {
				disableRight.beginTOTP()
				disableRight.confirmTOTP()
				return "/profile/2fa/disable"
			},
			want:  signedInOnly("POST", "", see("/profile?totp=off")),
			check: checkTOTP(disableRight, func(got authzWant) bool { return got.status != http.StatusSeeOther })},
		{route: "POST /profile/2fa/disable", name: "wrong password", method: "POST", prepare: disableWrong.prepare(nil),
			form: disableWrong.form(func(st *acctCell) url.Values { return url.Values{"password": {"not the password " + st.uniq}} }),
			path: func(*keyledger.Key) string {
				disableWrong.beginTOTP()
				disableWrong.confirmTOTP()
				return "/profile/2fa/disable"
			},
			want:  signedInOnly("POST", "", ok422),
			check: checkTOTP(disableWrong, func(authzWant) bool { return true })},

		// The page a stale admin is sent to before handing out a credential.
		{route: "GET /step-up", method: "GET", path: fixedPath("/step-up"),
			want: signedInOnly("GET", "/step-up", ok200),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if shown := strings.Contains(got.body, `name="secret"`); shown != (got.status == http.StatusOK) {
					t.Errorf("step-up form shown = %v after status %d", shown, got.status)
				}
			}},
		// Step-up: a wrong secret is a refused credential (401).
		{route: "POST /step-up", name: "password", method: "POST", prepare: stepRight.prepare(func(*acctCell) []string { return []string{Password} }),
			form:  stepRight.form(func(*acctCell) url.Values { return url.Values{"secret": {Password}, "next": {"/profile"}} }),
			path:  agedPath(stepRight),
			want:  signedInOnly("POST", "", see("/profile?confirmed=1")),
			check: checkStepUp(stepRight)},
		{route: "POST /step-up", name: "wrong secret", method: "POST", prepare: stepWrong.prepare(nil),
			form: stepWrong.form(func(st *acctCell) url.Values {
				return url.Values{"secret": {"not the password " + st.uniq}, "next": {"/profile"}}
			}),
			path:  agedPath(stepWrong),
			want:  signedInOnly("POST", "", ok401),
			check: checkStepUp(stepWrong)},
		{route: "POST /step-up", name: "no secret", method: "POST", prepare: stepEmpty.prepare(nil),
			form:  stepEmpty.form(func(*acctCell) url.Values { return url.Values{"next": {"/profile"}} }),
			path:  agedPath(stepEmpty),
			want:  signedInOnly("POST", "", ok422),
			check: checkStepUp(stepEmpty)},
		// The device enrolled in this session does not confirm it is the
		// person (the thief of a fresh session could enroll their own).
		{route: "POST /step-up", name: "code of the device this session enrolled", method: "POST", prepare: stepEnrolled.prepare(nil),
			form: stepEnrolled.form(func(st *acctCell) url.Values {
				if !signedIn(st.actor) {
					return url.Values{"secret": {"123456"}, "next": {"/profile"}}
				}
				st.beginTOTP()
				// The step after the one enrollment spends.
				return url.Values{"secret": {totpCode(st.t, st.totpSecret, st.totpAt.Add(30*time.Second))}, "next": {"/profile"}}
			}),
			path: func(k *keyledger.Key) string {
				if signedIn(stepEnrolled.actor) {
					// As ConfirmTOTP leaves it when this session enrolls.
					stepEnrolled.confirmTOTP()
					stepEnrolled.exec(`UPDATE users SET totp_enrolled_session = (SELECT id_hash FROM sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1)
						WHERE id = $1`, stepEnrolled.self().ID)
				}
				return agedPath(stepEnrolled)(k)
			},
			want:  signedInOnly("POST", "", ok401),
			check: checkStepUp(stepEnrolled)},
		{route: "POST /step-up", name: "off-site next", method: "POST", prepare: stepOffsite.prepare(func(*acctCell) []string { return []string{Password} }),
			form:  stepOffsite.form(func(*acctCell) url.Values { return url.Values{"secret": {Password}, "next": {"//evil.example/keys"}} }),
			path:  agedPath(stepOffsite),
			want:  signedInOnly("POST", "", see("/keys")),
			check: checkStepUp(stepOffsite)},

		// Admin: users.
		{route: "GET /admin/users", method: "GET", path: fixedPath("/admin/users"),
			want: adminOnly("GET", "/admin/users", ok200),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if shown := strings.Contains(got.body, `data-testid="user-table"`); shown != (got.status == http.StatusOK) {
					t.Errorf("user table shown = %v after status %d", shown, got.status)
				}
			}},
		// Asking for an admin account, to make the refusal count.
		{route: "POST /admin/users", name: "with password", method: "POST",
			prepare: createPw.prepare(func(st *acctCell) []string { return []string{newUserPassword + st.uniq} }),
			form: createPw.form(func(st *acctCell) url.Values {
				return url.Values{"email": {"new-" + st.uniq + "@example.com"}, "name": {"New " + st.uniq}, "role": {"admin"},
					"mode": {"password"}, "password": {newUserPassword + st.uniq}}
			}),
			path: fixedPath("/admin/users"),
			want: adminPost("/admin/users?created=1"),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				u, err := env.Store.UserByEmail(context.Background(), "new-"+createPw.uniq+"@example.com")
				if created := err == nil; created != (got.status == http.StatusSeeOther) {
					t.Errorf("user created = %v after status %d", created, got.status)
				}
				if err == nil && u.Role != keyledger.RoleAdmin {
					t.Errorf("created with role %s", u.Role)
				}
			}},
		{route: "POST /admin/users", name: "with link", method: "POST", prepare: createLink.prepare(nil),
			form: createLink.form(func(st *acctCell) url.Values {
				return url.Values{"email": {"new-" + st.uniq + "@example.com"}, "name": {"New " + st.uniq}, "role": {"member"}, "mode": {"link"}}
			}),
			path: fixedPath("/admin/users"),
			want: adminOnly("POST", "", ok200),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				u, err := env.Store.UserByEmail(context.Background(), "new-"+createLink.uniq+"@example.com")
				if created := err == nil; created != (got.status == http.StatusOK) {
					t.Errorf("user created = %v after status %d", created, got.status)
				}
				if err == nil && linkCount(t, env, u) != 1 {
					t.Error("the new user has no set-password link")
				}
				checkNoLink(t, got)
				if m := passwordLinkRe.FindStringSubmatch(got.body); m != nil {
					createLink.checkTokenNotLogged(t, m[3])
				}
			}},
		{route: "POST /admin/users/:uid/role", name: "promote a member", method: "POST",
			prepare: promote.prepare(setTarget(keyledger.RoleMember)), path: targetPath(promote, "role"),
			form:  func(string, string, string) url.Values { return url.Values{"role": {"lead"}} },
			want:  adminPost("/admin/users?role=1"),
			check: checkRole(promote, keyledger.RoleMember, keyledger.RoleLead)},
		{route: "POST /admin/users/:uid/role", name: "demote an admin", method: "POST",
			prepare: demote.prepare(setTarget(keyledger.RoleAdmin)), path: targetPath(demote, "role"),
			form:  func(string, string, string) url.Values { return url.Values{"role": {"member"}} },
			want:  adminPost("/admin/users?role=1"),
			check: checkRole(demote, keyledger.RoleAdmin, keyledger.RoleMember)},
		// Everyone asks to become admin; only an admin (already one) is
		// answered, with no change.
		{route: "POST /admin/users/:uid/role", name: "promote oneself", method: "POST", prepare: promoteSelf.prepare(nil),
			form: promoteSelf.form(func(st *acctCell) url.Values {
				st.target = st.self()
				return url.Values{"role": {"admin"}}
			}),
			path: targetPath(promoteSelf, "role"),
			want: adminPost("/admin/users?role=1"),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				want := keyledger.RoleMember
				switch got.actor {
				case actorAdmin:
					want = keyledger.RoleAdmin
				case actorLead:
					want = keyledger.RoleLead
				}
				if r := promoteSelf.user(t, promoteSelf.target).Role; r != want {
					t.Errorf("role %s after status %d, want %s", r, got.status, want)
				}
			}},
		// Admins learn the user does not exist; nobody else learns
		// anything.
		{route: "POST /admin/users/:uid/role", name: "unknown user", method: "POST", path: fixedPath("/admin/users/999999999/role"),
			form: func(string, string, string) url.Values { return url.Values{"role": {"lead"}} },
			want: adminOnly("POST", "", nf404)},
		{route: "POST /admin/users/:uid/deactivate", method: "POST",
			prepare: deactivate.prepare(freshTarget(keyledger.RoleMember, false)), path: targetPath(deactivate, "deactivate"),
			want: adminPost("/admin/users?deactivated=1"),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				done := got.status == http.StatusSeeOther
				if active := deactivate.user(t, deactivate.target).Active(); active == done {
					t.Errorf("target active = %v after status %d", active, got.status)
				}
				if alive := deactivate.sessionAlive(t, deactivate.sid); alive == done {
					t.Errorf("target's session alive = %v after status %d", alive, got.status)
				}
			}},
		{route: "POST /admin/users/:uid/reactivate", method: "POST",
			prepare: reactivate.prepare(freshTarget(keyledger.RoleMember, true)), path: targetPath(reactivate, "reactivate"),
			want: adminPost("/admin/users?reactivated=1"),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if active := reactivate.user(t, reactivate.target).Active(); active != (got.status == http.StatusSeeOther) {
					t.Errorf("target active = %v after status %d", active, got.status)
				}
			}},
		{route: "POST /admin/users/:uid/password-link", method: "POST",
			prepare: pwLink.prepare(setTarget(keyledger.RoleMember)), path: targetPath(pwLink, "password-link"),
			want: adminOnly("POST", "", ok200),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if n := linkCount(t, env, pwLink.target); (n == 1) != (got.status == http.StatusOK) {
					t.Errorf("%d live links after status %d", n, got.status)
				}
				checkNoLink(t, got)
				if m := passwordLinkRe.FindStringSubmatch(got.body); m != nil {
					pwLink.checkTokenNotLogged(t, m[3])
				}
			}},
		// Two-factor reset: admins only, never their own; the user's
		// sessions end. (The matrix's server has no notifier, so the admin
		// is asked to tell the user.)
		{route: "POST /admin/users/:uid/2fa-reset", name: "a member's", method: "POST",
			prepare: resetTOTP.prepare(func(st *acctCell) []string {
				setTarget(keyledger.RoleMember)(st)
				st.sid = st.newSession(st.target)
				return []string{totpOn(st, st.target)}
			}),
			path: targetPath(resetTOTP, "2fa-reset"),
			want: adminPost("/admin/users?totp_reset_untold=1"),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				done := got.status == http.StatusSeeOther
				if on := resetTOTP.user(t, resetTOTP.target).TOTPEnabled; on == done {
					t.Errorf("target's two-factor sign-in on = %v after status %d", on, got.status)
				}
				if alive := resetTOTP.sessionAlive(t, resetTOTP.sid); alive == done {
					t.Errorf("target's session alive = %v after status %d", alive, got.status)
				}
				var n int
				if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2",
					keyledger.ActionTOTPReset, resetTOTP.target.ID).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if (n == 1) != done {
					t.Errorf("%d reset events after status %d", n, got.status)
				}
			}},
		{route: "POST /admin/users/:uid/2fa-reset", name: "one's own", method: "POST", prepare: resetSelf.prepare(nil), form: resetSelf.form(nil),
			path: func(*keyledger.Key) string {
				u := resetSelf.self()
				totpOn(resetSelf, u)
				return userPath(u, "2fa-reset")
			},
			want: adminOnly("POST", "", no403),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if !resetSelf.self().TOTPEnabled {
					t.Errorf("own two-factor sign-in reset after status %d", got.status)
				}
			}},
		{route: "POST /admin/users/:uid/2fa-reset", name: "none to reset", method: "POST",
			prepare: resetNone.prepare(setTarget(keyledger.RoleMember)), path: targetPath(resetNone, "2fa-reset"),
			want: adminOnly("POST", "", authzWant{status: http.StatusConflict})},
		// Role policies: put back after each cell, so that a lead signing
		// in next is not sent to enroll.
		// A lead without a second factor holds a token: it stops iff the
		// policy now requires one of leads.
		{route: "POST /admin/roles", method: "POST", path: fixedPath("/admin/roles"),
			prepare: policies.prepare(func(st *acctCell) []string {
				setTarget(keyledger.RoleLead)(st)
				st.tokenID, st.tokenSecret = mintToken(st.t, st.env, st.target, "lead "+st.uniq)
				return []string{st.tokenSecret}
			}),
			form: func(string, string, string) url.Values { return url.Values{"require_totp": {"lead"}} },
			want: adminPost("/admin/users?policies=1"),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				ctx := context.Background()
				pol, err := env.Store.RolePolicies(ctx, keyledger.SystemActor("test"))
				if err != nil {
					t.Fatal(err)
				}
				if pol[keyledger.RoleLead] != (got.status == http.StatusSeeOther) || pol[keyledger.RoleAdmin] || pol[keyledger.RoleMember] {
					t.Errorf("policies %v after status %d", pol, got.status)
				}
				if status := apiStatus(t, env, policies.tokenSecret); (status == http.StatusForbidden) != pol[keyledger.RoleLead] {
					t.Errorf("the unenrolled lead's token answers %d under policies %v", status, pol)
				}
				if err := env.Store.SetRolePolicy(ctx, actorOf(env, "admin"), keyledger.RoleLead, false); err != nil {
					t.Fatal(err)
				}
			}},

		// Admin: environments.
		{route: "GET /admin/environments", method: "GET", path: fixedPath("/admin/environments"),
			want: adminOnly("GET", "/admin/environments", ok200),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if shown := strings.Contains(got.body, `action="/admin/environments/production"`); shown != (got.status == http.StatusOK) {
					t.Errorf("environment forms shown = %v after status %d", shown, got.status)
				}
			}},
		{route: "POST /admin/environments", method: "POST", prepare: envCreate.prepare(nil), path: fixedPath("/admin/environments"),
			form: envCreate.form(func(st *acctCell) url.Values {
				return url.Values{"name": {"qa-" + st.uniq}, "reveal_policy": {"any_user"}, "rotation_days": {"30"}}
			}),
			want: adminPost("/admin/environments?created=1"),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				_, err := env.Store.Environment(context.Background(), "qa-"+envCreate.uniq)
				if created := err == nil; created != (got.status == http.StatusSeeOther) {
					t.Errorf("environment created = %v after status %d", created, got.status)
				}
			}},
		// A fresh environment per cell, loosened and shortened.
		{route: "POST /admin/environments/:name", method: "POST",
			prepare: envEdit.prepare(func(st *acctCell) []string {
				st.envName = "tmp-" + st.uniq
				if _, err := st.env.Store.CreateEnvironment(context.Background(), actorOf(st.env, "admin"), keyledger.EnvironmentInput{
					Name: st.envName, RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true, RotationDays: "90"}); err != nil {
					st.t.Fatal(err)
				}
				return nil
			}),
			path: func(*keyledger.Key) string { return "/admin/environments/" + envEdit.envName },
			form: func(string, string, string) url.Values {
				return url.Values{"reveal_policy": {"any_user"}, "rotation_days": {"7"}}
			},
			want: adminPost("/admin/environments?saved=1"),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				e, err := env.Store.Environment(context.Background(), envEdit.envName)
				if err != nil {
					t.Fatal(err)
				}
				want := keyledger.Environment{ID: e.ID, Name: envEdit.envName, RevealPolicy: keyledger.RevealOwnerLeadsAdmins, ReasonRequired: true, RotationDays: 90}
				if got.status == http.StatusSeeOther {
					want.RevealPolicy, want.ReasonRequired, want.RotationDays = keyledger.RevealAnyUser, false, 7
				}
				if e != want {
					t.Errorf("environment %+v after status %d, want %+v", e, got.status, want)
				}
			}},
	}
}
