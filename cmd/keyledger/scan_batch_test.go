package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// TestCheckCandidatesBatches: distinct values go in batches the endpoint
// accepts (count and body size under the server's 64 KiB default), each
// value once, and hits come back to the value they were answered for.
func TestCheckCandidatesBatches(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes, counts []int
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in wire.LeakCheckRequest
		if err := json.Unmarshal(body, &in); err != nil || r.URL.Path != "/api/v1/leaks/check" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		sizes, counts = append(sizes, len(body)), append(counts, len(in.Candidates))
		out := wire.LeakCheckResult{Hits: []wire.LeakHit{}}
		for i, c := range in.Candidates {
			seen[c]++
			if strings.HasSuffix(c, "7") {
				out.Hits = append(out.Hits, wire.LeakHit{Index: i, Name: "hit " + c})
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	c := &apiClient{base: srv.URL, token: "klt_test", http: srv.Client()}
	var findings []finding
	for i := range 1200 {
		v := fmt.Sprintf("%s-%d", strings.Repeat("x", 150), i%1000)
		findings = append(findings, finding{name: "f", candidate: candidate{line: i, value: v}})
	}
	hits, err := checkCandidates(context.Background(), c, findings)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range counts {
		if n > keyledger.MaxLeakCandidates || sizes[i] > 64<<10 {
			t.Errorf("batch %d: %d candidates, %d bytes", i, n, sizes[i])
		}
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct values sent, want 1000", len(seen))
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%q sent %d times", v, n)
		}
	}
	// Values ending in 7: 7, 17, ..., 997 (100 of them).
	if len(hits) != 100 {
		t.Errorf("%d values with hits, want 100", len(hits))
	}
	for v, hs := range hits {
		if len(hs) != 1 || hs[0].Name != "hit "+v {
			t.Errorf("hits of %q: %+v", v, hs)
		}
	}
}
