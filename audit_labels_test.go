package keyledger_test

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// auditActionConstants reads every Action* constant from audit.go, so that
// an action added there without a label (or a filter entry) fails here.
func auditActionConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "audit.go", nil, 0)
	if err != nil {
		t.Fatalf("parse audit.go: %v", err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Action") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				out[n.Name] = constant.StringVal(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
			}
		}
	}
	if len(out) < 40 {
		t.Fatalf("found only %d Action constants in audit.go; the parser missed some", len(out))
	}
	return out
}

func TestEveryAuditActionHasALabel(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for name, action := range auditActionConstants(t) {
		label := keyledger.AuditActionLabel(action)
		if label == "" || label == action || strings.Contains(label, ".") || strings.Contains(label, "_") {
			t.Errorf("%s (%q) has no human label (got %q)", name, action, label)
		}
		if other, dup := seen[label]; dup {
			t.Errorf("%s and %s share the label %q", name, other, label)
		}
		seen[label] = name
		if !slices.Contains(keyledger.AuditActions(), action) {
			t.Errorf("%s (%q) is missing from AuditActions, so the filter cannot pick it", name, action)
		}
	}
	// An unknown action (an old log row) still shows, as itself.
	if got := keyledger.AuditActionLabel("legacy.thing"); got != "legacy.thing" {
		t.Errorf("unknown action label = %q, want the action itself", got)
	}
}
