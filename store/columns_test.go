package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
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
			// Two one-row forms take the same parameters (the second may
			// add the actor-status guard after them).
			if len(params[1])-len(params[0]) != pair[1].Args-pair[0].Args {
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

// TestAuditEventSameEitherStatement: a reveal's event reads back the same
// whether it was written alone (auditSingleInsert) or in a batch
// (auditBatchInsert), and every column holds what it should: both
// statements take their columns from one table, and this pins the values'
// order against it.
func TestAuditEventSameEitherStatement(t *testing.T) {
	f := newRevealFixture(t)
	ctx := t.Context()
	key := f.keys["staging"]
	if _, err := f.s.Reveal(ctx, as(f.other), key.ID, "alone"); err != nil {
		t.Fatal(err)
	}
	batches0, _ := f.s.AuditBatchStats()
	release := f.s.HoldAuditFlushes()
	const n = 3
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := f.s.Reveal(ctx, as(f.other), key.ID, fmt.Sprintf("together %d", i))
			errs <- err
		}()
	}
	waitQueued(t, f.s, n)
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if batches, _ := f.s.AuditBatchStats(); batches-batches0 != 1 {
		t.Fatalf("%d audit batches, want the %d reveals in one", batches-batches0, n)
	}
	page, err := f.s.ListAudit(ctx, as(f.admin), store.AuditFilter{Action: keyledger.ActionKeyReveal, KeyID: key.ID})
	if err != nil || len(page.Events) != n+1 {
		t.Fatalf("%d events, %v; want %d", len(page.Events), err, n+1)
	}
	want := keyledger.AuditEvent{ActorID: f.other.ID, ActorEmail: f.other.Email, Action: keyledger.ActionKeyReveal, KeyID: key.ID,
		KeyName: key.Name, KeyVersion: 1, Environment: "staging", IP: "192.0.2.10", UserAgent: "store-test/1.0", Details: "{}"}
	reasons := map[string]bool{}
	for _, e := range page.Events {
		reasons[e.Reason] = true
		e.ID, e.Time, e.Reason = 0, time.Time{}, ""
		if e != want {
			t.Errorf("event\n  %+v\nwant\n  %+v", e, want)
		}
	}
	if len(reasons) != n+1 || !reasons["alone"] || !reasons["together 0"] {
		t.Errorf("reasons %v", reasons)
	}
}
