package main

import (
	"context"
	"fmt"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// auditResult compares the key.reveal events in the database with the
// reveals the server answered 200.
type auditResult struct {
	apiOK, browserOK int // 200 answers counted by this tool
	events           int // key.reveal events in the audit log
	viaToken         int // of which came with an access token
	missing          int // answered reveals without an event
	duplicated       int // answered reveals with more than one event
	wrongKey         int // event for another key than the one asked for
	extra            int // events no answered reveal accounts for
	chainChecked     int64
	chainUnchained   int64
	chainProblem     string
	pgVersion        string
}

func (a auditResult) successes() int { return a.apiOK + a.browserOK }

// pass: exactly one key.reveal event per successful reveal, no more.
func (a auditResult) pass() bool {
	return a.events == a.successes() && a.missing == 0 && a.duplicated == 0 && a.wrongKey == 0 && a.extra == 0 &&
		a.viaToken == a.apiOK && a.chainProblem == ""
}

// checkAudit runs after the server has stopped. Every reveal was sent with
// a unique reason, so each answered reveal must find exactly one event
// with its reason and key, and no event may be left over. Then the hash
// chain is verified as `keyledger audit verify` does.
func checkAudit(ctx context.Context, dbURL, masterKey string, results []result) (auditResult, error) {
	var a auditResult
	want := map[string]string{} // reason -> key id
	for _, r := range results {
		for _, rv := range r.reveals {
			want[rv.reason] = rv.keyID
		}
		switch r.scenario {
		case scAPIReveal:
			a.apiOK += len(r.reveals)
		case scBrowserReveal:
			a.browserOK += len(r.reveals)
		}
	}
	pool, err := openPool(ctx, dbURL, 4)
	if err != nil {
		return a, err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&a.pgVersion); err != nil {
		return a, err
	}
	rows, err := pool.Query(ctx, `SELECT reason, coalesce(key_id::text, ''), details ? 'via_token' FROM audit_events WHERE action = $1`,
		keyledger.ActionKeyReveal)
	if err != nil {
		return a, fmt.Errorf("read audit events: %w", err)
	}
	seen := map[string]int{}
	for rows.Next() {
		var reason, keyID string
		var token bool
		if err := rows.Scan(&reason, &keyID, &token); err != nil {
			rows.Close()
			return a, err
		}
		a.events++
		if token {
			a.viaToken++
		}
		k, ok := want[reason]
		switch {
		case !ok:
			a.extra++
			continue
		case k != keyID:
			a.wrongKey++
		}
		seen[reason]++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, err
	}
	for reason := range want {
		switch n := seen[reason]; {
		case n == 0:
			a.missing++
		case n > 1:
			a.duplicated++
		}
	}

	kr, err := keyring(masterKey)
	if err != nil {
		return a, err
	}
	st, err := store.New(ctx, pool, kr, store.Options{PasswordParams: &cheapPasswords})
	if err != nil {
		return a, err
	}
	rep, err := st.VerifyAudit(ctx)
	if err != nil {
		return a, err
	}
	a.chainChecked, a.chainUnchained, a.chainProblem = rep.Checked, rep.Unchained, rep.Problem
	return a, nil
}
