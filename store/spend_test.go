package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// daily is n days of the same usage ending the day before end, plus end.
func daily(key string, end time.Time, n int, each, last int64) []keyledger.ProviderUsage {
	var out []keyledger.ProviderUsage
	for i := n; i >= 1; i-- {
		out = append(out, keyledger.ProviderUsage{KeyID: key, Day: end.AddDate(0, 0, -i), Requests: each, InputTokens: each * 10, OutputTokens: each})
	}
	return append(out, keyledger.ProviderUsage{KeyID: key, Day: end, Requests: last, InputTokens: last * 10, OutputTokens: last})
}

func TestProviderUsageSyncUpserts(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := context.Background()
	pa := newUsageAdmin()
	c := connect(t, f.fixture, f.admin, pa, "openai", "acme")
	today := keyledger.UTCDay(f.clock.Now())
	pa.setUsage([]keyledger.ProviderUsage{
		{KeyID: "key_a", Day: today, Requests: 3, InputTokens: 30, OutputTokens: 3},
		// The same key and day in another bucket (a second page or model): added up.
		{KeyID: "key_a", Day: today, Requests: 2, InputTokens: 20, OutputTokens: 2},
		{KeyID: "key_a", Day: today.AddDate(0, 0, -29), Requests: 1},
		{KeyID: "key_b", Day: today.AddDate(0, 0, -1), Requests: 7},
		{KeyID: "", Day: today, Requests: 100}, // not tied to a key
	})
	n, err := f.s.SyncProviderUsage(ctx, pa, c.ID)
	if err != nil || n != 3 {
		t.Fatalf("sync: %d key-days, %v; want 3", n, err)
	}
	// The provider revises today's numbers: the next sync replaces them.
	pa.setUsage([]keyledger.ProviderUsage{{KeyID: "key_a", Day: today, Requests: 9, InputTokens: 90, OutputTokens: 9}})
	if _, err := f.s.SyncProviderUsage(ctx, pa, c.ID); err != nil {
		t.Fatal(err)
	}
	var rows, reqToday, inToday int64
	if err := f.pool.QueryRow(ctx, `SELECT count(*), sum(requests) FILTER (WHERE day = $2::date AND provider_key_id = 'key_a'),
			sum(input_tokens) FILTER (WHERE day = $2::date AND provider_key_id = 'key_a')
		FROM provider_usage WHERE connection_id = $1`, c.ID, today).Scan(&rows, &reqToday, &inToday); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || reqToday != 9 || inToday != 90 {
		t.Errorf("stored %d rows, today %d requests / %d input tokens; want 3 rows, 9 / 90", rows, reqToday, inToday)
	}
}

func TestProviderUsageSyncFailureNamesNoAdminKey(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	pa := newUsageAdmin()
	c := connect(t, f.fixture, f.admin, pa, "openai", "acme")
	pa.usageErr = &keyledger.ProviderAdminError{Kind: keyledger.ProviderRateLimited, Status: 429, RetryAfter: 30 * time.Second}
	_, err := f.s.SyncProviderUsage(context.Background(), pa, c.ID)
	if keyledger.ProviderAdminErrorKindOf(err) != keyledger.ProviderRateLimited {
		t.Fatalf("err = %v, want the rate limit", err)
	}
	for _, k := range pa.seen {
		if k != "" && strings.Contains(err.Error(), k) {
			t.Fatal("the error holds the admin key")
		}
	}
}

func TestSpendSpikeAlertsExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := context.Background()
	pa := newUsageAdmin()
	c := connect(t, f.fixture, f.admin, pa, "openai", "acme")
	now := f.clock.Now()
	today := keyledger.UTCDay(now)
	spiking, _ := f.newKey(t, "spiking", "production")
	steady, _ := f.newKey(t, "steady", "production")
	small, _ := f.newKey(t, "small", "production")
	seenAtProvider(t, f.fixture, c.ID, providerKeyRow{ProviderKeyID: "key_spike", Name: "spike", KeyID: spiking.ID}, now)
	seenAtProvider(t, f.fixture, c.ID, providerKeyRow{ProviderKeyID: "key_steady", Name: "steady", KeyID: steady.ID}, now)
	seenAtProvider(t, f.fixture, c.ID, providerKeyRow{ProviderKeyID: "key_small", Name: "small", KeyID: small.ID}, now)
	seenAtProvider(t, f.fixture, c.ID, providerKeyRow{ProviderKeyID: "key_shadow", Name: "ci bot", Project: "proj_1"}, now)
	var usage []keyledger.ProviderUsage
	usage = append(usage, daily("key_spike", today, 14, 1000, 5000)...)  // 5× the median, above the floor
	usage = append(usage, daily("key_steady", today, 14, 2000, 6000)...) // exactly 3×: not more
	usage = append(usage, daily("key_small", today, 14, 50, 900)...)     // 18× but under the floor
	usage = append(usage, daily("key_shadow", today, 14, 0, 1_200)...)   // from nothing, not in keyledger
	pa.setUsage(usage)
	n := &fakeNotifier{}
	run := func() int {
		t.Helper()
		if _, err := f.s.SyncAllProviderUsage(ctx, pa); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.RaiseSpendAlerts(ctx, keyledger.DefaultSpendRule()); err != nil {
			t.Fatal(err)
		}
		sent, err := f.s.SendSpendAlerts(ctx, n, testLinks("https://k.example"))
		if err != nil {
			t.Fatal(err)
		}
		return sent
	}
	if sent := run(); sent != 2 {
		t.Fatalf("first run sent %d alerts, want 2 (the spike and the shadow key)", sent)
	}
	got := n.take()
	by := map[string]keyledger.Notification{}
	for _, note := range got {
		if note.Kind != keyledger.AlertSpendSpike {
			t.Errorf("kind %q", note.Kind)
		}
		by[note.ProviderKeyID] = note
	}
	sp, ok := by["key_spike"]
	if !ok {
		t.Fatalf("no alert for the spiking key: %+v", got)
	}
	if sp.KeyID != spiking.ID || sp.URL != "https://k.example/keys/"+spiking.ID || sp.Spend.Requests != 5000 || sp.Spend.MedianRequests != 1000 ||
		sp.Spend.Measure != keyledger.SpikeRequests || !sp.Spend.Day.Equal(today) || sp.Provider != "OpenAI" {
		t.Errorf("spike alert = %+v", sp)
	}
	if !slices.Contains(sp.Recipients, f.owner.Email) || !slices.Contains(sp.Recipients, f.lead.Email) {
		t.Errorf("recipients %v, want the owner and the leads", sp.Recipients)
	}
	sh, ok := by["key_shadow"]
	if !ok {
		t.Fatalf("no alert for the shadow key: %+v", got)
	}
	if sh.KeyID != "" || sh.URL != "" || sh.KeyName != "ci bot" || slices.Contains(sh.Recipients, f.owner.Email) || !slices.Contains(sh.Recipients, f.lead.Email) {
		t.Errorf("shadow alert = %+v: want the leads only, named as at the provider", sh)
	}
	// The job runs again (next hour): nothing new.
	if sent := run(); sent != 0 {
		t.Errorf("second run sent %d alerts, want 0", sent)
	}
	// The next day, today's spike is yesterday's: already told.
	f.clock.Advance(24 * time.Hour)
	if sent := run(); sent != 0 {
		t.Errorf("next day sent %d alerts for the same spike, want 0", sent)
	}
	var audited int
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionSpendSpike).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if audited != 2 {
		t.Errorf("%d spend spike audit events, want 2", audited)
	}
}

func TestSpendAlertFailedSendIsRetried(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := context.Background()
	pa := newUsageAdmin()
	c := connect(t, f.fixture, f.admin, pa, "anthropic", "acme")
	today := keyledger.UTCDay(f.clock.Now())
	pa.setUsage(daily("apikey_1", today, 14, 10, 4000))
	if _, err := f.s.SyncProviderUsage(ctx, pa, c.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := f.s.RaiseSpendAlerts(ctx, keyledger.DefaultSpendRule()); err != nil || n != 1 {
		t.Fatalf("raised %d, %v; want 1", n, err)
	}
	n := &fakeNotifier{}
	n.setErr(context.DeadlineExceeded)
	if sent, err := f.s.SendSpendAlerts(ctx, n, testLinks("https://k.example")); err == nil || sent != 0 {
		t.Fatalf("sent %d, err %v; want a failure", sent, err)
	}
	n.setErr(nil)
	if sent, err := f.s.SendSpendAlerts(ctx, n, testLinks("https://k.example")); err != nil || sent != 1 {
		t.Fatalf("retry sent %d, %v; want 1", sent, err)
	}
}
