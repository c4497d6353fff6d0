package store_test

import (
	"strings"
	"testing"

	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestPairedStatementsAgree: a batch of one takes the plain statement and
// a larger batch the unnest one; both must read (or write) the same
// columns in the same order, and the scan must take exactly as many values
// as the statement returns. Postgres describes each statement, so a
// column added to one form only, or to the select list but not the scan
// list, fails here rather than at the first reveal.
func TestPairedStatementsAgree(t *testing.T) {
	pool := storetest.NewPool(t)
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, pair := range store.PairedStatements() {
		var oids [2][]uint32
		var names [2][]string
		var params [2][]uint32
		for i, st := range pair {
			sd, err := conn.Conn().PgConn().Prepare(t.Context(), "", st.SQL, nil)
			if err != nil {
				t.Fatalf("%s does not prepare: %v", st.Name, err)
			}
			if len(sd.Fields) != st.Dests {
				t.Errorf("%s returns %d columns, its scan takes %d", st.Name, len(sd.Fields), st.Dests)
			}
			if len(sd.ParamOIDs) != st.Args {
				t.Errorf("%s takes %d parameters, it is given %d", st.Name, len(sd.ParamOIDs), st.Args)
			}
			for j, f := range sd.Fields {
				oids[i] = append(oids[i], f.DataTypeOID)
				if j > 0 { // the first is ord, named as each statement binds it
					names[i] = append(names[i], string(f.Name))
				}
			}
			params[i] = sd.ParamOIDs
		}
		a, b := pair[0].Name, pair[1].Name
		if !strings.Contains(pair[1].SQL, "unnest(") {
			// Two one-row forms take the same parameters.
			if len(params[0]) != len(params[1]) {
				t.Errorf("%s takes %d parameters, %s %d", a, len(params[0]), b, len(params[1]))
			}
			for j := range min(len(params[0]), len(params[1])) {
				if params[0][j] != params[1][j] {
					t.Errorf("parameter $%d is type %d in %s, %d in %s", j+1, params[0][j], a, params[1][j], b)
				}
			}
		}
		if got, want := strings.Join(names[1], ","), strings.Join(names[0], ","); got != want {
			t.Errorf("%s selects\n  %s\n%s selects\n  %s", a, want, b, got)
		}
		if len(oids[0]) != len(oids[1]) {
			if pair[0].Dests == pair[1].Dests {
				t.Errorf("%s returns %d columns, %s %d", a, len(oids[0]), b, len(oids[1]))
			}
			continue
		}
		for j := range oids[0] {
			if oids[0][j] != oids[1][j] {
				t.Errorf("column %d is type %d in %s, %d in %s", j, oids[0][j], a, oids[1][j], b)
			}
		}
	}
}
