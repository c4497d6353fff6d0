package web_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// The web layer reads the time from the store's clock, so a page or an
// API answer decides (due dates, step-up windows) as the store does: here
// a key due in a day is overdue once the store's clock is three days on.
func TestWebUsesTheStoreClock(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	env := newEnvWithStore(t, store.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	a := newAPI(t, env)
	u := env.Users["member"]
	res, err := env.Store.CreateKey(context.Background(), actorOf(env, "member"), keyledger.KeyInput{Name: "clock-key", Project: "checkout",
		Environment: "development", OwnerEmail: u.Email, Value: "sk-clock-test-value-0001", RotationDays: "1"})
	if err != nil {
		t.Fatal(err)
	}
	k := res.Key
	tok := a.token("member", "read")
	status := func() string {
		r := a.do(tok, "GET", "/api/v1/keys/"+k.ID, nil)
		s, _ := r.JSON["rotation_status"].(string)
		return s
	}
	if got := status(); got != "due_soon" {
		t.Fatalf("rotation_status today = %q, want due_soon", got)
	}
	offset.Store(int64(3 * 24 * time.Hour))
	if got := status(); got != "overdue" {
		t.Errorf("rotation_status three days on by the store's clock = %q, want overdue", got)
	}
}
