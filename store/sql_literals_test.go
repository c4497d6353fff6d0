package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// TestSQLNamesDomainWordsByParameter: audit actions and user and
// checklist item statuses are the root package's constants; store SQL
// passes them as parameters ($n) instead of spelling them as SQL
// literals, so a renamed constant cannot leave a query matching nothing.
func TestSQLNamesDomainWordsByParameter(t *testing.T) {
	words := append([]string{}, keyledger.AuditActions()...)
	words = append(words, string(keyledger.UserActive), string(keyledger.UserDeactivated), string(keyledger.UserFrozen),
		keyledger.ItemOpen, keyledger.ItemDone, keyledger.ItemWaived)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(node ast.Node) bool {
			lit, ok := node.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			for _, w := range words {
				if c := strings.Count(lit.Value, "'"+w+"'"); c > 0 {
					n += c
					t.Errorf("%s: SQL spells '%s'; pass the keyledger constant as a parameter", fset.Position(lit.Pos()), w)
				}
			}
			return true
		})
	}
	t.Logf("%d literal action or status words in store SQL", n)
}
