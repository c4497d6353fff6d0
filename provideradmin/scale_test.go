package provideradmin

import (
	"context"
	"testing"
	"time"

	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// TestKeys2000Across20Projects is the inventory the issue sizes: 2,000
// keys across 20 OpenAI projects (and 2,000 Anthropic keys across 20
// workspaces), listed with the documented page sizes and a small per
// request latency, within the sync's budget and the concurrency bound.
func TestKeys2000Across20Projects(t *testing.T) {
	if testing.Short() {
		t.Skip("lists 4,000 keys")
	}
	const latency = 20 * time.Millisecond // a modest round trip per request

	fo := providertest.NewOpenAI()
	defer fo.Close()
	fo.Generate(20, 2000)
	fo.SetDelay(latency)
	co := newTestClient(t, Config{OpenAIBaseURL: fo.URL(), Concurrency: 6})
	start := time.Now()
	keys, err := co.Keys(context.Background(), openAICred(fo.AdminKey()))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2000 {
		t.Fatalf("OpenAI keys = %d, want 2000", len(keys))
	}
	t.Logf("OpenAI: 2000 keys, 20 projects: %d requests, max %d in flight, %v (with %v per request)",
		len(fo.Requests()), fo.MaxInFlight(), took.Round(time.Millisecond), latency)
	if fo.MaxInFlight() > 6 {
		t.Errorf("max in flight = %d, want <= 6", fo.MaxInFlight())
	}
	if took > 5*time.Second {
		t.Errorf("OpenAI listing took %v, want well under the 10s sync budget", took)
	}

	fa := providertest.NewAnthropic()
	defer fa.Close()
	fa.Generate(20, 2000)
	fa.SetDelay(latency)
	ca := newTestClient(t, Config{AnthropicBaseURL: fa.URL()})
	start = time.Now()
	akeys, err := ca.Keys(context.Background(), anthropicCred(fa.AdminKey()))
	took = time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(akeys) != 2000 {
		t.Fatalf("Anthropic keys = %d, want 2000", len(akeys))
	}
	t.Logf("Anthropic: 2000 keys, 20 workspaces: %d requests, %v (with %v per request)",
		len(fa.Requests()), took.Round(time.Millisecond), latency)
	if took > 5*time.Second {
		t.Errorf("Anthropic listing took %v", took)
	}
}

func BenchmarkOpenAIKeys2000Across20Projects(b *testing.B) {
	f := providertest.NewOpenAI()
	defer f.Close()
	f.Generate(20, 2000)
	c := newTestClient(b, Config{OpenAIBaseURL: f.URL()})
	cred := openAICred(f.AdminKey())
	b.ResetTimer()
	for b.Loop() {
		keys, err := c.Keys(context.Background(), cred)
		if err != nil || len(keys) != 2000 {
			b.Fatalf("keys = %d, err = %v", len(keys), err)
		}
	}
}

func BenchmarkAnthropicKeys2000(b *testing.B) {
	f := providertest.NewAnthropic()
	defer f.Close()
	f.Generate(20, 2000)
	c := newTestClient(b, Config{AnthropicBaseURL: f.URL()})
	cred := anthropicCred(f.AdminKey())
	b.ResetTimer()
	for b.Loop() {
		keys, err := c.Keys(context.Background(), cred)
		if err != nil || len(keys) != 2000 {
			b.Fatalf("keys = %d, err = %v", len(keys), err)
		}
	}
}
