package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// acceptingAdmin is a keyledger.ProviderAdmin that accepts every admin
// key and lists nothing: the matrix's setup adds connections with it
// (holding the fakes' admin key), and the routes under test then reach
// the fakes through the server's real client.
type acceptingAdmin struct{}

func (acceptingAdmin) Supports(keyledger.Provider) bool { return true }
func (acceptingAdmin) Check(context.Context, keyledger.ProviderCredential) error {
	return nil
}

func (acceptingAdmin) Keys(context.Context, keyledger.ProviderCredential) ([]keyledger.ProviderKey, error) {
	return nil, nil
}

func (acceptingAdmin) Usage(context.Context, keyledger.ProviderCredential, time.Time) ([]keyledger.ProviderUsage, error) {
	return nil, nil
}

func (acceptingAdmin) Revoke(context.Context, keyledger.ProviderCredential, keyledger.ProviderKeyRef) error {
	return nil
}

// provCell is one matrix cell's connection.
type provCell struct{ id, name string }

func (pc *provCell) prepare(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
	pc.name = "conn " + uniq
	c, err := env.Store.AddProviderConnection(context.Background(), actorOf(env, "admin"), acceptingAdmin{},
		keyledger.ProviderConnectionInput{Provider: "openai", Name: pc.name, AdminKey: providertest.OpenAIAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	pc.id = c.ID
	return []string{providertest.OpenAIAdminKey}
}

// provConn reads a cell's connection as an admin: nil once removed.
func provConn(t *testing.T, env *testEnv, id string) *keyledger.ProviderConnection {
	c, err := env.Store.ProviderConnection(context.Background(), actorOf(env, "admin"), id)
	if keyledger.ErrorCode(err) == keyledger.ENOTFOUND {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// linkCell is a link matrix cell's provider key: ambiguous (for link) or
// linked by an admin to the cell's key (for unlink).
type linkCell struct {
	provCell
	pk    int64
	keyID string
}

func (lc *linkCell) prepare(t *testing.T, env *testEnv, uniq string, manual bool) []string {
	secrets := lc.provCell.prepare(t, env, nil, uniq)
	k, value := authzKey(env, t, "member", "development", "link "+uniq)
	secrets = append(secrets, value)
	lc.keyID = k.ID
	var keyID, linkedBy any
	state := keyledger.MatchAmbiguous
	if manual {
		keyID, linkedBy, state = k.ID, env.Users["admin"].ID, keyledger.MatchMatched
	}
	if err := env.Pool.QueryRow(context.Background(), `INSERT INTO provider_keys (connection_id, provider_key_id, name, first_seen_at, last_seen_at,
			key_id, match_state, match_candidates, linked_by, linked_at)
		VALUES ($1, $2, 'matrix', now(), now(), $3, $4, 2, $5, CASE WHEN $5::bigint IS NULL THEN NULL ELSE now() END) RETURNING id`,
		lc.id, "key_"+uniq, keyID, state, linkedBy).Scan(&lc.pk); err != nil {
		t.Fatal(err)
	}
	return secrets
}

func (lc *linkCell) linked(t *testing.T, env *testEnv) (keyID string, manual bool) {
	t.Helper()
	if err := env.Pool.QueryRow(context.Background(), `SELECT coalesce(key_id::text, ''), linked_by IS NOT NULL FROM provider_keys WHERE id = $1`, lc.pk).
		Scan(&keyID, &manual); err != nil {
		t.Fatal(err)
	}
	return keyID, manual
}

// authzProviderCases: connections and manual links are admins' (an admin
// key can list and revoke every key of an organization); the inventory is
// leads' and admins'.
func authzProviderCases() []authzCase {
	sync, remove, create := &provCell{}, &provCell{}, &provCell{}
	link, unlink := &linkCell{}, &linkCell{}
	fixed := func(p string) func() string { return func() string { return p } }
	return []authzCase{
		{route: "GET /admin/providers", method: "GET", path: fixedPath("/admin/providers"),
			want: adminOnly("GET", "/admin/providers", ok200)},
		{route: "POST /admin/providers", method: "POST", providers: true, path: fixedPath("/admin/providers"),
			prepare: func(_ *testing.T, _ *testEnv, _ *keyledger.Key, uniq string) []string {
				create.name = "new " + uniq
				return []string{providertest.OpenAIAdminKey}
			},
			form: func(string, string, string) url.Values {
				return url.Values{"provider": {"openai"}, "name": {create.name}, "admin_key": {providertest.OpenAIAdminKey}}
			},
			want: adminOnly("POST", "", see("/admin/providers?added=1")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				var n int
				if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_connections WHERE name = $1 AND last_sync_status IS NOT NULL`, create.name).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if (n == 1) != (got.status == http.StatusSeeOther) {
					t.Errorf("%d synced connections named %q after status %d", n, create.name, got.status)
				}
			}},
		{route: "POST /admin/providers/:pid/sync", method: "POST", providers: true, prepare: sync.prepare,
			path: func(*keyledger.Key) string { return "/admin/providers/" + sync.id + "/sync" },
			want: adminOnly("POST", "", see("/admin/providers?synced=1")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				c := provConn(t, env, sync.id)
				if synced := c.LastSyncStatus == keyledger.SyncOK; synced != (got.status == http.StatusSeeOther) {
					t.Errorf("synced = %v after status %d", synced, got.status)
				}
			}},
		{route: "POST /admin/providers/:pid/remove", method: "POST", prepare: remove.prepare,
			path: func(*keyledger.Key) string { return "/admin/providers/" + remove.id + "/remove" },
			want: adminOnly("POST", "", see("/admin/providers?removed=1")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if gone := provConn(t, env, remove.id) == nil; gone != (got.status == http.StatusSeeOther) {
					t.Errorf("removed = %v after status %d", gone, got.status)
				}
			}},
		{route: "POST /inventory/:provider_key/link", method: "POST",
			prepare: func(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
				return link.prepare(t, env, uniq, false)
			},
			path: func(*keyledger.Key) string { return "/inventory/" + strconv.FormatInt(link.pk, 10) + "/link" },
			form: func(string, string, string) url.Values { return url.Values{"key_id": {link.keyID}} },
			want: adminOnly("POST", "", see("/inventory?linked=1")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				keyID, manual := link.linked(t, env)
				if (keyID == link.keyID && manual) != (got.status == http.StatusSeeOther) {
					t.Errorf("linked to %q (manual %v) after status %d", keyID, manual, got.status)
				}
			}},
		{route: "POST /inventory/:provider_key/unlink", method: "POST",
			prepare: func(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
				return unlink.prepare(t, env, uniq, true)
			},
			path: func(*keyledger.Key) string { return "/inventory/" + strconv.FormatInt(unlink.pk, 10) + "/unlink" },
			want: adminOnly("POST", "", see("/inventory?unlinked=1")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if _, manual := unlink.linked(t, env); manual == (got.status == http.StatusSeeOther) {
					t.Errorf("still linked by hand = %v after status %d", manual, got.status)
				}
			}},
		{route: "GET /inventory", method: "GET", path: fixedPath("/inventory"),
			want: leadsOnly("GET", fixed("/inventory"), func() authzWant { return ok200 }),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, "Provider inventory") {
					t.Error("the inventory page has no title")
				}
			}},
		{route: "GET /inventory.csv", method: "GET", path: fixedPath("/inventory.csv"),
			want: leadsOnly("GET", fixed("/inventory.csv"), func() authzWant { return csvFile }),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.HasPrefix(got.body, "connection,provider,provider_key_id,") {
					t.Errorf("the inventory CSV starts %q", got.body[:min(len(got.body), 40)])
				}
			}},
	}
}
