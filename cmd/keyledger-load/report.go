package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

type report struct {
	results    []result
	rss        rssSummary
	audit      auditResult
	opts       options
	seed       *seedData
	started    time.Time
	serverExit error
	machine    string
	loadStart  string
}

// machineInfo describes the box: CPU model and count, memory, kernel, and
// the load average (other work on a shared machine skews the numbers).
func machineInfo() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			mem = fmt.Sprintf(", %.0f GiB memory", float64(kib)/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	s := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if model != "" {
		s += " (" + model + ")"
	}
	return s + mem + kernel + ", " + runtime.Version()
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func (r report) find(sc string, clients int) (result, bool) {
	for _, x := range r.results {
		if x.scenario == sc && x.clients == clients {
			return x, true
		}
	}
	return result{}, false
}

func yesNo(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// target lines: each names what was measured and whether it meets the
// issue's target.
func (r report) targets() [][3]string {
	var out [][3]string
	add := func(name, measured string, ok bool) { out = append(out, [3]string{name, measured, yesNo(ok)}) }
	notMeasured := func(name string) { out = append(out, [3]string{name, "not measured in this run", "—"}) }

	if x, ok := r.find(scAPIReveal, 32); ok {
		add("API reveal ≥ 5,000/s at 32 clients", fmt.Sprintf("%.0f/s", x.rate()), x.rate() >= 5000)
		add("API reveal p99 ≤ 20 ms at 32 clients", fmt.Sprintf("%.1f ms", ms(x.p99)), x.p99 <= 20*time.Millisecond)
	} else {
		notMeasured("API reveal ≥ 5,000/s, p99 ≤ 20 ms at 32 clients")
	}
	if x, ok := r.find(scBrowserReveal, 32); ok {
		add("browser reveal ≥ 3,000/s at 32 clients", fmt.Sprintf("%.0f/s", x.rate()), x.rate() >= 3000)
	} else {
		notMeasured("browser reveal ≥ 3,000/s at 32 clients")
	}
	// Latency targets name no concurrency: judged at every level run.
	latency := func(sc, label string, limit time.Duration) {
		var parts []string
		ok, any := true, false
		for _, n := range r.opts.clients {
			if x, found := r.find(sc, n); found {
				any = true
				parts = append(parts, fmt.Sprintf("%d: %.1f ms", n, ms(x.p99)))
				ok = ok && x.p99 <= limit && x.ok > 0
			}
		}
		if !any {
			notMeasured(label)
			return
		}
		add(label, "p99 at "+strings.Join(parts, ", "), ok)
	}
	latency(scKeyList, "key list page p99 ≤ 25 ms (every concurrency)", 25*time.Millisecond)
	latency(scDashboard, "ownership dashboard p99 ≤ 50 ms (every concurrency)", 50*time.Millisecond)
	latency(scRotation, "rotation page p99 ≤ 50 ms (every concurrency)", 50*time.Millisecond)
	var during int64
	for _, p := range r.rss.phases {
		if knownScenario(p) {
			during = max(during, r.rss.byPhase[p])
		}
	}
	add("server RSS < 150 MiB through the whole run", fmt.Sprintf("max %.1f MiB (%.1f MiB while the scenarios ran)", mib(r.rss.maxKiB), mib(during)), r.rss.maxKiB < 150*1024)
	add("one audit event per successful reveal", fmt.Sprintf("%d events / %d reveals", r.audit.events, r.audit.successes()), r.audit.pass())
	out = append(out, [3]string{"envelope open within 2× raw AEAD", "not measured by the load test: `go test ./crypto/ -run '^$' -bench Open`", "—"})
	return out
}

func (r report) markdown() string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "\n## keyledger load test\n\n")
	fmt.Fprintf(&b, "- date: %s; machine: %s; Postgres %s on the same box\n", r.started.Format("2006-01-02 15:04 MST"), r.machine, r.audit.pgVersion)
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) before the scenarios: %s, after: %s (the load generator, the server and Postgres share the cores)\n", r.loadStart, loadAverage())
	fmt.Fprintf(&b, "- command: `make loadtest` (keyledger-load -duration %s -clients %s -keys %d -users %d)\n", o.duration, joinInts(o.clients), o.keys, o.users)
	nl := len(r.seed.leads)
	fmt.Fprintf(&b, "- seeded through the store: %d keys over development/staging/production (%d development, %d list pages), %d users (1 admin, %d leads, %d members), %d access tokens\n",
		r.seed.totalKeys, len(r.seed.devKeys), r.seed.devPages, r.seed.totalUsers, nl, r.seed.totalUsers-1-nl, len(r.seed.tokens))
	fmt.Fprintf(&b, "- each row runs for %s with that many closed-loop clients; req/s, p50 and p99 count 200 answers only; errors are all other answers\n\n", o.duration)

	fmt.Fprintf(&b, "| scenario | clients | req/s | p50 ms | p99 ms | errors | CPU ms/req server | CPU ms/req Postgres |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %d | %s | %s |\n", describe(x.scenario), x.clients, x.rate(), ms(x.p50), ms(x.p99), x.errors,
			x.cpuPerRequest(x.serverCPU), x.cpuPerRequest(x.pgCPU))
	}

	fmt.Fprintf(&b, "\nServer RSS (VmRSS every 200 ms, %d samples): max **%.1f MiB**", r.rss.samples, mib(r.rss.maxKiB))
	var phases []string
	for _, p := range r.rss.phases {
		if v := r.rss.byPhase[p]; v > 0 {
			phases = append(phases, fmt.Sprintf("%s %.1f", p, mib(v)))
		}
	}
	if len(phases) > 0 {
		fmt.Fprintf(&b, " (max per phase, MiB: %s)", strings.Join(phases, ", "))
	}
	fmt.Fprintf(&b, ".\n")
	fmt.Fprintf(&b, "Server shutdown on SIGTERM: %s.\n", exitStatus(r.serverExit))

	a := r.audit
	verdict := "PASS"
	if !a.pass() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "\nAudit check: **%s** — %d reveals answered 200 (API %d, browser %d); %d key.reveal events (%d via a token); missing %d, duplicated %d, wrong key %d, unaccounted %d. ",
		verdict, a.successes(), a.apiOK, a.browserOK, a.events, a.viaToken, a.missing, a.duplicated, a.wrongKey, a.extra)
	if a.chainProblem == "" {
		fmt.Fprintf(&b, "Hash chain verified: %d events, %d unchained.\n", a.chainChecked, a.chainUnchained)
	} else {
		fmt.Fprintf(&b, "Hash chain BROKEN: %s.\n", a.chainProblem)
	}

	fmt.Fprintf(&b, "\n| target (issue 6) | measured | |\n|---|---|---|\n")
	for _, t := range r.targets() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t[0], t[1], t[2])
	}
	return b.String()
}

func describe(sc string) string {
	switch sc {
	case scAPIReveal:
		return "API reveal (dev key)"
	case scBrowserReveal:
		return "browser reveal (form)"
	case scKeyList:
		return "key list (dev, random page)"
	case scDashboard:
		return "ownership dashboard (lead)"
	case scRotation:
		return "rotation page (lead)"
	}
	return sc
}

func joinInts(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ",")
}
