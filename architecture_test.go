package keyledger_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// allowedImports is the dependency direction of docs/architecture.md: for
// each package of ours, the packages of ours it may import. A package not
// listed here fails the test, so a new one must be placed on purpose.
var allowedImports = map[string][]string{
	"":                           nil,
	"crypto":                     nil,
	"migrations":                 nil,
	"static":                     nil,
	"verify":                     {""},
	"notify":                     {""},
	"provideradmin":              {""},
	"provideradmin/providertest": {"", "provideradmin"},
	"templates":                  {""},
	"store":                      {"", "crypto", "migrations"},
	"store/pgcluster":            nil,
	"store/storetest":            {"crypto", "migrations", "store"},
	"web":                        {"", "crypto", "static", "store", "templates", "web/wire"},
	"web/wire":                   {""},
	"cmd/keyledger":              {"", "crypto", "notify", "provideradmin", "store", "verify", "web", "web/wire"},
	"cmd/keyledger-load":         {"", "crypto", "store"},
	"deploy":                     nil, // tests of the container files only
	"deploy/helm":                nil, // tests of the Helm chart only
}

func name(rel string) string {
	if rel == "" {
		return "keyledger (root)"
	}
	return rel
}

func TestImportDirections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Module", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
			Module     struct{ Path string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		mod := p.Module.Path
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, mod), "/")
		allowed, ok := allowedImports[rel]
		if !ok {
			t.Errorf("package %q is not placed in docs/architecture.md (add it to allowedImports and the doc)", name(rel))
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if imp != mod && !strings.HasPrefix(imp, mod+"/") {
				continue
			}
			irel := strings.TrimPrefix(strings.TrimPrefix(imp, mod), "/")
			ok := false
			for _, a := range allowed {
				ok = ok || a == irel
			}
			if !ok {
				t.Errorf("%q imports %q, which docs/architecture.md does not allow", name(rel), name(irel))
			}
		}
	}
	if seen < len(allowedImports)/2 {
		t.Fatalf("go list found only %d of our packages; the test is not looking at the module", seen)
	}
}
