package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// usageAdmin is stubAdmin with usage and revocations of its own: Usage
// answers the days from since on, Revoke records the refs it was asked to
// revoke (or fails with revokeErr).
type usageAdmin struct {
	*stubAdmin
	mu        sync.Mutex
	usage     []keyledger.ProviderUsage
	usageErr  error
	revoked   []keyledger.ProviderKeyRef
	revokeErr error
}

func newUsageAdmin() *usageAdmin { return &usageAdmin{stubAdmin: newStubAdmin()} }

func (a *usageAdmin) setUsage(u []keyledger.ProviderUsage) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.usage = append([]keyledger.ProviderUsage(nil), u...)
}

func (a *usageAdmin) Usage(_ context.Context, _ keyledger.ProviderCredential, since time.Time) ([]keyledger.ProviderUsage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.usageErr != nil {
		return nil, a.usageErr
	}
	var out []keyledger.ProviderUsage
	for _, u := range a.usage {
		if !u.Day.Before(since) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (a *usageAdmin) Revoke(_ context.Context, _ keyledger.ProviderCredential, ref keyledger.ProviderKeyRef) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revokeErr != nil {
		return a.revokeErr
	}
	a.revoked = append(a.revoked, ref)
	return nil
}

// connect adds a connection (the admin checks the admin key with pa).
func connect(t testing.TB, f *fixture, admin *keyledger.User, pa keyledger.ProviderAdmin, provider, name string) keyledger.ProviderConnection {
	t.Helper()
	adminKey := secretValue(t, "sk-admin-")
	if provider == "anthropic" {
		adminKey = secretValue(t, "sk-ant-admin01-")
	}
	c, err := f.s.AddProviderConnection(context.Background(), as(admin), pa,
		keyledger.ProviderConnectionInput{Provider: provider, Name: name, AdminKey: adminKey})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// providerKeyRow is a provider_keys row as the sync writes it.
type providerKeyRow struct {
	ProviderKeyID, Name, Hint, Project, Status, CreatedBy string
	KeyID                                                 string // linked registered key, "" for none
	LastUsedAt                                            *time.Time
}

// seenAtProvider writes a provider_keys row as the inventory sync would
// (that sync is another file's concern; these tests need its outcome).
func seenAtProvider(t testing.TB, f *fixture, connID string, r providerKeyRow, now time.Time) int64 {
	t.Helper()
	state := "unmatched"
	var key any
	if r.KeyID != "" {
		state, key = "matched", r.KeyID
	}
	if r.Status == "" {
		r.Status = "active"
	}
	var id int64
	err := f.pool.QueryRow(context.Background(), `INSERT INTO provider_keys (connection_id, provider_key_id, name, hint, match_hint, project_id,
			status, created_by, last_used_at, first_seen_at, last_seen_at, key_id, match_state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) RETURNING id`,
		connID, r.ProviderKeyID, r.Name, r.Hint, keyledger.MatchHint(r.Hint), r.Project, r.Status, r.CreatedBy, r.LastUsedAt, now, key, state).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
