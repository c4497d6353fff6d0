package store_test

import (
	"context"
	"sync"
	"time"

	"github.com/keyledger/keyledger"
)

// stubAdmin is a keyledger.ProviderAdmin held in memory, for store tests
// that exercise the store's side (sealing, matching, upserts) and not the
// HTTP clients; end-to-end tests go through provideradmin against its
// httptest fakes. It answers per admin key: keys[adminKey] lists that
// organization's keys, fail[adminKey] is the error every call returns.
type stubAdmin struct {
	mu    sync.Mutex
	keys  map[string][]keyledger.ProviderKey
	fail  map[string]error
	calls int
	seen  []string // admin keys it was called with
}

func newStubAdmin() *stubAdmin {
	return &stubAdmin{keys: map[string][]keyledger.ProviderKey{}, fail: map[string]error{}}
}

func (a *stubAdmin) set(adminKey string, keys []keyledger.ProviderKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[adminKey] = keys
}

func (a *stubAdmin) Supports(p keyledger.Provider) bool {
	return p == keyledger.ProviderOpenAI || p == keyledger.ProviderAnthropic
}

func (a *stubAdmin) call(c keyledger.ProviderCredential) ([]keyledger.ProviderKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	a.seen = append(a.seen, c.AdminKey)
	if err := a.fail[c.AdminKey]; err != nil {
		return nil, err
	}
	return append([]keyledger.ProviderKey(nil), a.keys[c.AdminKey]...), nil
}

func (a *stubAdmin) Check(_ context.Context, c keyledger.ProviderCredential) error {
	_, err := a.call(c)
	return err
}

func (a *stubAdmin) Keys(_ context.Context, c keyledger.ProviderCredential) ([]keyledger.ProviderKey, error) {
	return a.call(c)
}

func (a *stubAdmin) Usage(_ context.Context, c keyledger.ProviderCredential, _ time.Time) ([]keyledger.ProviderUsage, error) {
	_, err := a.call(c)
	return nil, err
}

func (a *stubAdmin) Revoke(_ context.Context, c keyledger.ProviderCredential, _ keyledger.ProviderKeyRef) error {
	_, err := a.call(c)
	return err
}
