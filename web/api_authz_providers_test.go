package web_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// The API matrix's provider cases (apiAuthzCases): connections and manual
// links are admins' with a write token (reads: the read scope);
// revoke-at-the-provider follows the key page: owner, leads and admins,
// never with a token in a sensitive environment; rotation at OpenAI too:
// leads and admins.

// apiAdminOnly: 401 without a live token, 403 for all but the admin.
func apiAdminOnly(ok int) func(string, string) int {
	return func(actor, _ string) int {
		if apiLive(actor) && actor != apiAdmin {
			return http.StatusForbidden
		}
		return authed(actor, ok)
	}
}

// apiProvCell is one cell's connection and provider key.
type apiProvCell struct {
	connID string
	pk     int64
	keyID  string // the cell's key, for a body
}

// connect adds a connection (the fakes' admin key, accepted without a
// call) and, when k is given, a provider key row for it: linked to k by
// the sync (linked false) or by an admin (true), or ambiguous (k nil).
func (pc *apiProvCell) connect(t *testing.T, a *apiT, uniq string) {
	t.Helper()
	c, err := a.env.Store.AddProviderConnection(context.Background(), actorOf(a.env, "admin"), acceptingAdmin{},
		keyledger.ProviderConnectionInput{Provider: "openai", Name: "conn " + uniq, AdminKey: providertest.OpenAIAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	pc.connID = c.ID
}

func (pc *apiProvCell) providerKey(t *testing.T, a *apiT, uniq string, k *keyledger.Key, manual bool) {
	t.Helper()
	pc.connect(t, a, uniq)
	var keyID any
	state := keyledger.MatchAmbiguous
	if k != nil {
		keyID, state = k.ID, keyledger.MatchMatched
	}
	var linkedBy any
	if manual {
		linkedBy = a.env.Users["admin"].ID
	}
	if err := a.env.Pool.QueryRow(context.Background(), `INSERT INTO provider_keys (connection_id, provider_key_id, name, project_id, status,
			first_seen_at, last_seen_at, key_id, match_state, match_candidates, linked_by, linked_at)
		VALUES ($1, $2, 'matrix', 'proj_matrix', 'active', now(), now(), $3, $4, 2, $5, CASE WHEN $5::bigint IS NULL THEN NULL ELSE now() END) RETURNING id`,
		pc.connID, "key_"+uniq, keyID, state, linkedBy).Scan(&pc.pk); err != nil {
		t.Fatal(err)
	}
}

func (pc *apiProvCell) row(t *testing.T, a *apiT) (keyID string, manual, revoked bool) {
	t.Helper()
	if err := a.env.Pool.QueryRow(context.Background(), `SELECT coalesce(key_id::text, ''), linked_by IS NOT NULL, revoked_at IS NOT NULL
		FROM provider_keys WHERE id = $1`, pc.pk).Scan(&keyID, &manual, &revoked); err != nil {
		t.Fatal(err)
	}
	return keyID, manual, revoked
}

func apiProviderCases() []apiAuthzCase {
	sync, remove, revoke, link, unlink := &apiProvCell{}, &apiProvCell{}, &apiProvCell{}, &apiProvCell{}, &apiProvCell{}
	autoOn := &apiProvCell{}
	// Rotation at OpenAI: leads and admins with a write token, in every
	// environment (a rotation needs no fresh password: the old key keeps
	// working through the grace period).
	rotators := func(ok int) func(string, string) int {
		return func(actor, _ string) int {
			if apiLive(actor) && (actor == apiReadOnly || (actor != apiLead && actor != apiAdmin)) {
				return http.StatusForbidden
			}
			return authed(actor, ok)
		}
	}
	var createName string
	connPath := func(pc *apiProvCell, what string) func(*keyledger.Key) string {
		return func(*keyledger.Key) string { return "/api/v1/providers/" + pc.connID + "/" + what }
	}
	invPath := func(pc *apiProvCell, what string) func(*keyledger.Key) string {
		return func(*keyledger.Key) string { return "/api/v1/inventory/" + strconv.FormatInt(pc.pk, 10) + "/" + what }
	}
	return []apiAuthzCase{
		{route: "GET /api/v1/providers", method: "GET", path: apiFixed("/api/v1/providers"), want: apiAdminOnly(http.StatusOK)},
		{route: "POST /api/v1/providers", method: "POST", providers: true, path: apiFixed("/api/v1/providers"),
			body: func(_ *apiT, _, _, uniq string) any {
				createName = "new " + uniq
				return map[string]any{"provider": "openai", "name": createName, "admin_key": providertest.OpenAIAdminKey}
			},
			want: apiAdminOnly(http.StatusCreated),
			check: func(t *testing.T, a *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				var n int
				if err := a.env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_connections WHERE name = $1 AND last_sync_status IS NOT NULL`, createName).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if (n == 1) != (r.Status == http.StatusCreated) {
					t.Errorf("%d synced connections named %q after status %d", n, createName, r.Status)
				}
			}},
		{route: "POST /api/v1/providers/:pid/sync", method: "POST", providers: true, path: connPath(sync, "sync"),
			setup: func(t *testing.T, a *apiT, _ *keyledger.Key, uniq string) { sync.connect(t, a, uniq) },
			want:  apiAdminOnly(http.StatusOK),
			check: func(t *testing.T, a *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				c := provConn(t, a.env, sync.connID)
				if synced := c.LastSyncStatus == keyledger.SyncOK; synced != (r.Status == http.StatusOK) {
					t.Errorf("synced = %v after status %d", synced, r.Status)
				}
			}},
		{route: "POST /api/v1/providers/:pid/remove", method: "POST", path: connPath(remove, "remove"),
			setup: func(t *testing.T, a *apiT, _ *keyledger.Key, uniq string) { remove.connect(t, a, uniq) },
			want:  apiAdminOnly(http.StatusNoContent),
			check: func(t *testing.T, a *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				if gone := provConn(t, a.env, remove.connID) == nil; gone != (r.Status == http.StatusNoContent) {
					t.Errorf("removed = %v after status %d", gone, r.Status)
				}
			}},
		// The fakes know no such key: a 404 there counts as revoked.
		{route: "POST /api/v1/keys/:id/provider-revoke", method: "POST", perEnv: true, needsKey: true, providers: true, path: apiKeyPath("/provider-revoke"),
			setup: func(t *testing.T, a *apiT, k *keyledger.Key, uniq string) { revoke.providerKey(t, a, uniq, k, false) },
			body:  func(*apiT, string, string, string) any { return map[string]any{"reason": "authz matrix"} },
			want: func(actor, envName string) int {
				switch {
				case !apiLive(actor):
					return http.StatusUnauthorized
				case actor == apiReadOnly || !apiMayEdit(actor):
					return http.StatusForbidden
				case envName == "production" || envName == "ci-production":
					return http.StatusForbidden // a token cannot step up
				}
				return http.StatusOK
			},
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				if _, _, revoked := revoke.row(t, a); revoked != (r.Status == http.StatusOK) {
					t.Errorf("revoked = %v after status %d", revoked, r.Status)
				}
				apiCheckCount(t, a, k, keyledger.ActionProviderRevoke, r.Status == http.StatusOK)
			}},
		// A key linked to a service account's key at OpenAI qualifies.
		{route: "POST /api/v1/keys/:id/auto-rotate", name: "on", method: "POST", perEnv: true, needsKey: true, path: apiKeyPath("/auto-rotate"),
			setup: func(t *testing.T, a *apiT, k *keyledger.Key, uniq string) {
				autoOn.providerKey(t, a, uniq, k, false)
				if _, err := a.env.Pool.Exec(context.Background(), `UPDATE provider_keys SET owner_type = $2 WHERE id = $1`, autoOn.pk, keyledger.OwnerServiceAccount); err != nil {
					t.Fatal(err)
				}
			},
			body: func(*apiT, string, string, string) any { return map[string]any{"enabled": true} },
			want: rotators(http.StatusOK),
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				apiCheckCount(t, a, k, keyledger.ActionAutoRotateOn, r.Status == http.StatusOK)
			}},
		// Off always works; it was off, so nothing is recorded.
		{route: "POST /api/v1/keys/:id/auto-rotate", name: "off", method: "POST", perEnv: true, needsKey: true, path: apiKeyPath("/auto-rotate"),
			body: func(*apiT, string, string, string) any { return map[string]any{"enabled": false} },
			want: rotators(http.StatusOK),
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				apiCheckCount(t, a, k, keyledger.ActionAutoRotateOff, false)
			}},
		// A key at no provider: refused with the reason (409), recorded as
		// a failed attempt, nothing called, the version as it was.
		{route: "POST /api/v1/keys/:id/provider-rotate", method: "POST", perEnv: true, needsKey: true, providers: true, path: apiKeyPath("/provider-rotate"),
			want: rotators(http.StatusConflict),
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				if v := authzGetKey(a.env, t, k.ID).CurrentVersion; v != 1 {
					t.Errorf("current version %d after status %d", v, r.Status)
				}
				apiCheckCount(t, a, k, keyledger.ActionProviderRotateFailed, r.Status == http.StatusConflict)
			}},
		{route: "POST /api/v1/inventory/:provider_key/link", method: "POST", needsKey: true, path: invPath(link, "link"),
			setup: func(t *testing.T, a *apiT, k *keyledger.Key, uniq string) {
				link.keyID = k.ID
				link.providerKey(t, a, uniq, nil, false)
			},
			body: func(*apiT, string, string, string) any { return map[string]any{"key_id": link.keyID} },
			want: apiAdminOnly(http.StatusOK),
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				keyID, manual, _ := link.row(t, a)
				if (keyID == k.ID && manual) != (r.Status == http.StatusOK) {
					t.Errorf("linked to %q (manual %v) after status %d", keyID, manual, r.Status)
				}
			}},
		{route: "POST /api/v1/inventory/:provider_key/unlink", method: "POST", needsKey: true, path: invPath(unlink, "unlink"),
			setup: func(t *testing.T, a *apiT, k *keyledger.Key, uniq string) { unlink.providerKey(t, a, uniq, k, true) },
			want:  apiAdminOnly(http.StatusOK),
			check: func(t *testing.T, a *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				if _, manual, _ := unlink.row(t, a); manual == (r.Status == http.StatusOK) {
					t.Errorf("still linked by hand = %v after status %d", manual, r.Status)
				}
			}},
	}
}
