package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	scAPIReveal     = "api-reveal"
	scBrowserReveal = "browser-reveal"
	scKeyList       = "key-list"
	scDashboard     = "dashboard"
	scRotation      = "rotation"
)

var allScenarios = []string{scAPIReveal, scBrowserReveal, scKeyList, scDashboard, scRotation}

func knownScenario(s string) bool { return slices.Contains(allScenarios, s) }

// reveal is one reveal the server answered 200: the unique reason it was
// sent with and the key asked for. The audit check finds each exactly once.
type reveal struct {
	reason string
	keyID  string
}

type result struct {
	scenario string
	clients  int
	elapsed  time.Duration
	ok       int // 200 answers with the expected body
	errors   int // anything else
	bytes    int64
	p50, p99 time.Duration
	reveals  []reveal // reveal scenarios: every 200
	statuses map[int]int
	samples  []string
	// serverCPU and pgCPU are the CPU time the server and the load
	// database's Postgres backends used during the run (cpu.go).
	serverCPU, pgCPU time.Duration
}

// cpuPerRequest is d per successful answer in ms, or "—" unmeasured.
func (r result) cpuPerRequest(d time.Duration) string {
	if r.ok == 0 || d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", ms(d)/float64(r.ok))
}

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// avgBytes is the mean size of a successful answer's body.
func (r result) avgBytes() int64 {
	if r.ok == 0 {
		return 0
	}
	return r.bytes / int64(r.ok)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// worker is one simulated client's tally.
type worker struct {
	lat      []time.Duration
	ok, errs int
	bytes    int64
	reveals  []reveal
	statuses map[int]int
	samples  []string
	buf      bytes.Buffer
}

func (w *worker) fail(format string, a ...any) {
	w.errs++
	if len(w.samples) < 3 {
		w.samples = append(w.samples, fmt.Sprintf(format, a...))
	}
}

// runScenario runs n clients against one scenario for d. Each client sends
// its next request as soon as the previous answer is read (closed loop).
func runScenario(ctx context.Context, h *http.Client, base, sc string, n int, d time.Duration, sd *seedData, ss *sessions) result {
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < n; c++ {
		w := &worker{statuses: map[int]int{}, lat: make([]time.Duration, 0, 4096)}
		workers[c] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				oneRequest(ctx, h, base, sc, n, c, seq, sd, ss, w)
			}
		}()
	}
	wg.Wait()
	r := result{scenario: sc, clients: n, elapsed: time.Since(start), statuses: map[int]int{}}
	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		r.ok += w.ok
		r.errors += w.errs
		r.bytes += w.bytes
		r.reveals = append(r.reveals, w.reveals...)
		for k, v := range w.statuses {
			r.statuses[k] += v
		}
		for _, s := range w.samples {
			if len(r.samples) < 5 {
				r.samples = append(r.samples, s)
			}
		}
	}
	slices.Sort(lat)
	r.p50, r.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	return r
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func oneRequest(ctx context.Context, h *http.Client, base, sc string, n, c, seq int, sd *seedData, ss *sessions, w *worker) {
	var (
		req    *http.Request
		err    error
		want   string // a 200 body must contain this
		rev    reveal
		member = ss.members[c%len(ss.members)]
		lead   = ss.leads[c%len(ss.leads)]
	)
	switch sc {
	case scAPIReveal, scBrowserReveal:
		k := sd.devKeys[mrand.IntN(len(sd.devKeys))]
		// A reason unique to this request, so the audit check can match
		// every answered reveal to its event.
		rev = reveal{reason: fmt.Sprintf("load %s n%d c%d #%d", sc, n, c, seq), keyID: k.id}
		if sc == scAPIReveal {
			body := `{"reason":"` + rev.reason + `"}`
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/keys/"+k.id+"/reveal", strings.NewReader(body))
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+sd.tokens[c%len(sd.tokens)])
				req.Header.Set("Content-Type", "application/json")
			}
			want = `"value":"` + k.value + `"`
		} else {
			form := url.Values{"_csrf": {member.csrf}, "reason": {rev.reason}}
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/keys/"+k.id+"/reveal", strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Cookie", member.cookie)
			}
			want = k.value
		}
	case scKeyList:
		page := 1 + mrand.IntN(max(sd.devPages, 1))
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/keys?environment=development&page="+strconv.Itoa(page), http.NoBody)
		if err == nil {
			req.Header.Set("Cookie", member.cookie)
		}
		want = "load-key-"
	case scDashboard, scRotation:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/"+sc, http.NoBody)
		if err == nil {
			req.Header.Set("Cookie", lead.cookie)
		}
		want = "load-key-" // a key on the rotation page
		if sc == scDashboard {
			want = `data-testid="owner-table"`
		}
	}
	if err != nil {
		w.fail("build request: %v", err)
		return
	}
	t0 := time.Now()
	resp, err := h.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.fail("%v", err)
		}
		return
	}
	w.buf.Reset()
	_, err = io.Copy(&w.buf, resp.Body)
	_ = resp.Body.Close() // a response body: closing it loses nothing
	lat := time.Since(t0)
	w.statuses[resp.StatusCode]++
	switch {
	case err != nil:
		w.fail("read answer: %v", err)
		if resp.StatusCode == http.StatusOK && rev.reason != "" {
			w.reveals = append(w.reveals, rev)
		}
	case resp.StatusCode != http.StatusOK:
		w.fail("%d: %.200s", resp.StatusCode, oneLine(w.buf.String()))
	default:
		if rev.reason != "" {
			w.reveals = append(w.reveals, rev)
		}
		if !bytes.Contains(w.buf.Bytes(), []byte(want)) {
			w.fail("200 without the expected content %q: %.200s", want, oneLine(w.buf.String()))
			return
		}
		w.ok++
		w.bytes += int64(w.buf.Len())
		w.lat = append(w.lat, lat)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
