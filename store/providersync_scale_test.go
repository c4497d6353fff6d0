package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin"
	"github.com/keyledger/keyledger/provideradmin/providertest"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestProviderSyncScale syncs 2,000 keys across 20 projects from the
// OpenAI fake, through the real client, in under 10 s, with a statement
// count that does not grow with the number of keys (no N+1), and matches
// the registered ones.
func TestProviderSyncScale(t *testing.T) {
	t.Parallel()
	const projects, keys, registered = 20, 2000, 40
	fake := providertest.NewOpenAI()
	t.Cleanup(fake.Close)
	fake.Generate(projects, keys)
	pa := provideradmin.New(provideradmin.Config{OpenAIBaseURL: fake.URL(), HTTPClient: fake.Client()})

	c := newClock()
	s, pool, qc := storetest.NewCountingStore(t, store.Options{Now: c.Now, PasswordParams: storetest.FastPasswords()})
	f := &fixture{s: s, pool: pool}
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	// Registered keys whose masked hint is that of generated keys 0..39:
	// the fake's redacted values end in the key number.
	for i := range registered {
		v := fmt.Sprintf("sk-proj-%s%04d", "Ab0123456789abcdefghijklmnopqrstuvwxyzABCD", i)
		in := devKey(fmt.Sprintf("registered %d", i), admin.Email, v)
		in.Project = fmt.Sprintf("Project %d", i%projects)
		f.key(t, admin, in)
	}
	conn, err := s.AddProviderConnection(t.Context(), as(admin), pa,
		keyledger.ProviderConnectionInput{Provider: "openai", Name: "Scale", AdminKey: fake.AdminKey()})
	if err != nil {
		t.Fatal(err)
	}

	before := qc.Count()
	start := time.Now()
	res, err := s.SyncProviderConnection(t.Context(), as(admin), pa, conn.ID)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	statements := qc.Count() - before
	t.Logf("synced %d keys across %d projects in %s with %d statements", res.Seen, projects, took, statements)
	if res.Seen != keys || res.New != keys || res.Matched != registered || res.Unmatched != keys-registered {
		t.Errorf("sync = %+v", res)
	}
	if took > 10*time.Second {
		t.Errorf("sync took %s, want under 10 s", took)
	}
	// A handful per sync (actor, lock, two upsert batches, deletions,
	// match, counts, connection, audit, commit), whatever the key count.
	if statements > 20 {
		t.Errorf("%d statements for one sync of %d keys: N+1?", statements, keys)
	}
	inv, err := s.Inventory(t.Context(), as(admin), keyledger.InventoryFilter{State: keyledger.InventoryOwnerLeft})
	if err != nil {
		t.Fatal(err)
	}
	if want := keys / 10; len(inv.Items) != want {
		t.Errorf("owner left: %d, want %d (every tenth generated key)", len(inv.Items), want)
	}

	// A second sync updates in place: nothing new, nothing deleted.
	start = time.Now()
	res, err = s.SyncProviderConnection(t.Context(), as(admin), pa, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second sync in %s", time.Since(start))
	if res.New != 0 || res.Deleted != 0 || res.Seen != keys {
		t.Errorf("second sync = %+v", res)
	}
}
