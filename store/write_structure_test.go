package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// txWithoutSync names the store functions that may open a transaction
// (or write outside one) without going through write, and why each
// changes nothing an offboarding checklist follows: key ownership,
// archiving and versions; key.reveal and key.export events; a user's
// status; their sessions and tokens. Everything else that writes uses
// write, which brings the checklists in line before it commits.
//
// A new write path fails TestWritesGoThroughWrite until it either uses
// write or is added here with its reason.
var txWithoutSync = map[string]string{
	"Store.sendAlerts": "system job: claims and releases alert rows (leak incidents' notified_at, value and spend alerts' sent_at), which no checklist follows",
	"Store.write":      "the wrapper itself",
	"Store.tx":         "the retry loop write is built on",
	// Sessions, tokens and sign-in: a session or token is only ever
	// created for an active account, and ending one can only resolve a
	// revoke item, which RevokeAccess or the next sync records.
	"Store.Authenticate":     "password rehash on sign-in",
	"Store.startSession":     "a session of an active account",
	"Store.RevokeSession":    "ends one session (see above)",
	"Store.EndSession":       "ends one session (see above)",
	"Store.EndOtherSessions": "ends the person's other sessions (see above)",
	"Store.PurgeExpired":     "system job: expired sessions and old throttle rows",
	"Store.TokenActor":       "token bookkeeping (last used)",
	"Store.CheckLeaks":       "only its leak.check audit event (neither a reveal nor an export)",
	"Store.ReportLeak":       "opens or joins a leak incident and audits leak.report: no key, version, reveal or account changes",
	"Store.WaiveLeak":        "closes a leak incident: no key, version, reveal or account changes",
	"Store.leakNotified":     "a leak incident's timeline step and its leak.notified event",
	"Store.OIDCUser":         "sign-in by OIDC: a session of an active account, or a new account, which owns and saw nothing",
	"Store.oidcRefused":      "audit of a refused OIDC sign-in (neither a reveal nor an export)",
	"Store.Session":          "session bookkeeping (expiry, last seen)",
	"Store.CreateToken":      "a token of an active account",
	"Store.RevokeToken":      "ends one token (see above)",
	"Store.StepUp":           "a step-up proof on the session",
	"Store.ResetTOTP":        "ends the person's sessions (see above) and clears their second factor",
	"Store.admit":            "sign-in throttling",
	"Store.forgive":          "sign-in throttling",
	"Store.failed":           "sign-in throttling (its audit event is neither a reveal nor an export)",
	// Accounts: neither role, password nor second factor is something a
	// checklist follows.
	"Store.CreateUser":         "a new account owns nothing and saw nothing",
	"Store.SetRole":            "a role is not followed by a checklist",
	"Store.ChangePassword":     "a password is not followed by a checklist",
	"Store.DisableTOTP":        "two-factor setup",
	"Store.CreatePasswordLink": "a link is not access; the checklist follows sessions and tokens",
	"Store.UsePasswordLink":    "needs an active account; sets a password",
	"Store.BeginTOTP":          "two-factor setup",
	"Store.ConfirmTOTP":        "two-factor setup",
	"Store.CompleteTOTP":       "two-factor sign-in, as startSession",
	"Store.SetRolePolicy":      "a policy, not a record",
	"Store.SetShell":           "a person's own preference (the quick copy's shell)",
	// Offboarding's own actions resolve their item in the same
	// transaction; CompleteOffboarding syncs before it counts.
	"Store.withOpenOffboarding": "the checklist actions (waive, revoke, complete) keep their item in step themselves",
	// Keys: neither environments, provider checks, the end of a grace
	// period nor a master key rotation changes an owner, an archive or a
	// current version.
	"Store.CreateEnvironment":      "environments are not followed by a checklist",
	"Store.UpdateEnvironment":      "environments are not followed by a checklist",
	"Store.recordVerification":     "a provider check result",
	"Store.DestroyExpiredVersions": "system job: destroys old versions; the current version stays",
	"Store.RotateMasterKey":        "re-wraps data keys; versions and owners stay",
	"Store.rewrapColumn":           "re-wraps data keys; versions and owners stay",
	"Store.claimReminder":          "system job: reminder bookkeeping",
	"Store.SendReminders":          "system job: reminder bookkeeping and its audit event (neither a reveal nor an export)",
	"Store.SendAccountAlerts":      "system job: alert bookkeeping",
	"Store.checkKeyring":           "the master key canary at start",
	// Provider connections and the keys they list are not followed by a
	// checklist (the keys' owners are keyledger's, unchanged by a sync).
	"Store.AddProviderConnection":    "a connection holds no key of anyone's",
	"Store.auditCheckFailure":        "the audit event of a refused admin key",
	"Store.RemoveProviderConnection": "a connection holds no key of anyone's",
	"Store.SyncProviderConnection":   "provider keys and their links; keyledger keys and owners stay",
	"Store.recordSyncFailure":        "a sync result on the connection",
	// Usage at the provider and spend alerts: numbers and alert
	// bookkeeping about keys, never their owners or versions.
	"Store.SyncProviderUsage":   "system job: usage numbers",
	"Store.RaiseSpendAlerts":    "system job: alert bookkeeping and its audit event (neither a reveal nor an export)",
	"Store.auditRevokeFailure":  "the audit event of a revoke the provider refused (nothing changed)",
	"Store.SetAutoRotate":       "a key's automated-rotation switch: no owner, version or reveal changes",
	"Store.noteRotationError":   "the words of a failed revoke after a rotation on the key's rotation row (revokeNow wrote the changes)",
	"Store.recordRotateAttempt": "a failed rotation at the provider: its words on the key's rotation row and its audit event (nothing rotated)",
	// The audit chain links events already written.
	"Store.chainBatch":       "the audit chainer",
	"Store.ensureAuditEpoch": "audit bookkeeping at start",
	"Store.loadChainKeying":  "audit bookkeeping at start",
	"Store.verifyPass":       "read only (repeatable read snapshot)",
}

// TestWritesGoThroughWrite fails when a store function opens a
// transaction with s.tx or pgx.Begin…, or writes with pool.Exec, and is
// neither write itself nor listed in txWithoutSync: such a path would
// leave offboarding checklists stale (DESIGN.md section 7).
func TestWritesGoThroughWrite(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	var bad []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			fname := funcName(fn)
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "syncOffboardings" && fname != "Store.write" && fname != "Store.CompleteOffboarding" {
					bad = append(bad, fset.Position(call.Pos()).String()+": "+fname+" calls syncOffboardings itself")
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				what := ""
				switch {
				case sel.Sel.Name == "tx" && isIdent(sel.X):
					what = "s.tx"
				case isIdentNamed(sel.X, "pgx") && strings.HasPrefix(sel.Sel.Name, "Begin"):
					what = "pgx." + sel.Sel.Name
				case isPoolSelector(sel.X) && (sel.Sel.Name == "Exec" || strings.HasPrefix(sel.Sel.Name, "Begin")):
					what = "pool." + sel.Sel.Name
				}
				if what == "" {
					return true
				}
				if _, ok := txWithoutSync[fname]; ok {
					seen[fname] = true
					return true
				}
				bad = append(bad, fset.Position(call.Pos()).String()+": "+fname+" uses "+what)
				return true
			})
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s: a write must go through s.write (which syncs offboarding checklists before commit), or be listed in txWithoutSync with why it changes nothing a checklist follows", b)
	}
	var stale []string
	for name := range txWithoutSync {
		if !seen[name] && name != "Store.tx" {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	for _, name := range stale {
		t.Errorf("txWithoutSync lists %s, which opens no transaction: remove it so the list stays true", name)
	}
}

func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if st, ok := t.(*ast.StarExpr); ok {
		t = st.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

func isIdent(e ast.Expr) bool { _, ok := e.(*ast.Ident); return ok }

func isIdentNamed(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// isPoolSelector matches s.pool and a bare pool.
func isPoolSelector(e ast.Expr) bool {
	if isIdentNamed(e, "pool") {
		return true
	}
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "pool"
}
