package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// The tree BenchmarkScanTree scans: 50,000 files and 500 MB on disk, shaped
// like a monorepo checkout.
const (
	benchTextFiles   = 43_990   // source, docs and config under src/
	benchBinaryFiles = 1_000    // images under assets/, NUL in the first bytes
	benchBinarySize  = 64 << 10 //
	benchIgnored     = 5_000    // node_modules/, listed in .gitignore
	benchIgnoredSize = 8 << 10  //
	benchLargeFiles  = 10       // minified bundles over --max-size
	benchLargeSize   = 1536 << 10
	benchTotalBytes  = 500 << 20
)

// BenchmarkScanTree runs the built `keyledger scan` over a 50,000-file,
// 500 MB git work tree against a real server, and reports the wall time,
// the scanner's peak resident memory and its throughput. The tree holds
// source text (with the hashes and ids real code has), binaries, files too
// large to scan, an ignored node_modules/, and planted keys: three
// registered (one an old version), one look-alike, and registered values
// hidden in an ignored file and a binary, which must not be reported.
//
//	make bench-scan
//
// It fails when a scan takes 30 s or more, or reports the wrong hits.
func BenchmarkScanTree(b *testing.B) {
	bin := keyledgerBinary(b)
	url := storetest.NewDatabase(b)
	key := newKEK(b)
	env := dbEnv(url, key)
	ctx := context.Background()

	mustRun(b, env, cliPassword+"\n", "user", "create", "--email", "dev@example.com", "--name", "Dev", "--role", "member")
	st, _ := openStore(b, url, key, store.Options{PasswordParams: storetest.FastPasswords()})
	u, err := st.UserByEmail(ctx, "dev@example.com")
	if err != nil {
		b.Fatal(err)
	}
	actor := keyledger.Actor{User: u, StepUpAt: time.Now()}
	rng := rand.New(rand.NewPCG(1, 2))
	var registered []string
	for i, name := range []string{"OpenAI checkout", "Stripe billing", "GitHub deploy"} {
		prefix := []string{"sk-proj-", "sk_live_", "ghp_"}[i]
		v := prefix + benchToken(rng, 36)
		if _, err := st.CreateKey(ctx, actor, keyledger.KeyInput{Name: name, Project: "mono", Environment: "development", OwnerEmail: u.Email, Value: v}); err != nil {
			b.Fatal(err)
		}
		registered = append(registered, v)
	}
	// An old version: a key rotated since; its first value is planted.
	oldPlanted := "sk-ant-api03-" + benchToken(rng, 40)
	res, err := st.CreateKey(ctx, actor, keyledger.KeyInput{Name: "Anthropic search", Project: "mono", Environment: "development", OwnerEmail: u.Email, Value: oldPlanted})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.RotateKey(ctx, actor, res.Key.ID, keyledger.RotateInput{Value: "sk-ant-api03-" + benchToken(rng, 40), GraceDays: "7"}); err != nil {
		b.Fatal(err)
	}

	code, stdout, stderr := runIO(b, env, "", bin, "token", "create", "--email", "dev@example.com", "--scopes", "read", "--expires", "1d")
	m := printedToken.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		b.Fatalf("token create: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	addr := freeAddr(b)
	senv := dbEnv(url, key)
	senv["KEYLEDGER_LISTEN"] = addr
	srv := start(b, senv, "serve")
	base := "http://" + addr
	waitReady(b, srv, base)

	dir := b.TempDir()
	began := time.Now()
	plants := benchTree(b, dir, rng, registered, oldPlanted)
	b.Logf("built the tree (%d files, %d MB) in %s", benchTextFiles+benchBinaryFiles+benchIgnored+benchLargeFiles+1, benchTotalBytes>>20, time.Since(began).Round(time.Second))

	home := b.TempDir()
	cenv := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config"), "KEYLEDGER_SERVER": base, "KEYLEDGER_TOKEN": m[1]}
	b.ResetTimer()
	var worst time.Duration
	var peakKB int64
	for range b.N {
		// Drop nothing from the page cache (that needs root and would
		// measure the disk, not the scanner); the first run after the
		// build reads a warm cache like a developer's checkout does.
		cmd := exec.Command(bin, "scan")
		cmd.Dir = dir
		cmd.Env = processEnv(cenv)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		t0 := time.Now()
		code, err := exitStatus(cmd.Run())
		took := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		worst = max(worst, took)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			peakKB = max(peakKB, ru.Maxrss) // KiB on Linux
		}
		// CPU time says what the scan costs whatever else the machine
		// runs at the time.
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		b.Logf("scan: %s wall, %s CPU (user %s, system %s), load average %s", took.Round(10*time.Millisecond), cpu.Round(10*time.Millisecond),
			cmd.ProcessState.UserTime().Round(10*time.Millisecond), cmd.ProcessState.SystemTime().Round(10*time.Millisecond), loadAverage())
		checkBenchOutput(b, code, out.String(), errOut.String(), plants, append(registered, oldPlanted))
	}
	b.StopTimer()
	b.ReportMetric(float64(peakKB)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(benchTotalBytes>>20)/worst.Seconds(), "MB/s")
	b.Logf("slowest scan %s, peak RSS %.1f MB", worst.Round(10*time.Millisecond), float64(peakKB)/1024)
	if worst >= 30*time.Second {
		b.Errorf("a scan took %s; the target is under 30 s", worst.Round(time.Millisecond))
	}
}

// benchPlants says where the planted strings are.
type benchPlants struct {
	registered []string // file:line of the registered values, in report order
	lookalike  string   // file:line of the unregistered look-alike
}

func checkBenchOutput(b *testing.B, code int, stdout, stderr string, p benchPlants, values []string) {
	b.Helper()
	if code != 1 {
		b.Fatalf("scan: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, v := range values {
		if strings.Contains(stdout+stderr, v) {
			b.Fatal("the scan printed a value")
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var hits []string
	for _, l := range lines {
		if !strings.Contains(l, "not in keyledger") {
			hits = append(hits, l)
		}
	}
	if len(hits) != len(p.registered) {
		b.Fatalf("%d registered hits, want %d (%v):\n%s", len(hits), len(p.registered), p.registered, stdout)
	}
	for _, want := range p.registered {
		if !strings.Contains(stdout, want+": ") {
			b.Errorf("no hit at %s:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "old version v1") {
		b.Errorf("the old version is not reported as old:\n%s", stdout)
	}
	if !strings.Contains(stdout, p.lookalike+": looks like an OpenAI key, not in keyledger") {
		b.Errorf("the look-alike at %s is not reported:\n%s", p.lookalike, stdout)
	}
	if regexp.MustCompile(`node_modules/|assets/`).MatchString(stdout) {
		b.Errorf("an ignored or binary file was reported:\n%s", stdout)
	}
	if !strings.Contains(stderr, fmt.Sprintf("%d files scanned", benchTextFiles+1)) {
		b.Errorf("want %d files scanned (the text files and .gitignore), got: %s", benchTextFiles+1, stderr)
	}
}

const benchAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func benchToken(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = benchAlphabet[rng.IntN(len(benchAlphabet))]
	}
	return string(b)
}

// benchLines are the lines source files are made of: code, comments,
// config and prose, as found in a real repository.
func benchLines(rng *rand.Rand) []string {
	words := strings.Fields(`user account request response handler context error value result config server client
		cache token session record index buffer stream reader writer parse format encode decode build update delete
		create list fetch store query limit offset page count total status message event logger metrics retry timeout`)
	w := func() string { return words[rng.IntN(len(words))] }
	ident := func() string { return w() + strings.ToUpper(w()[:1]) + w()[1:] }
	templates := []func() string{
		func() string {
			return fmt.Sprintf("func %s(ctx context.Context, %s string) (*%s, error) {", ident(), w(), strings.ToUpper(w()[:1])+w()[1:])
		},
		func() string { return fmt.Sprintf("\t%s, err := %s.%s(ctx, %s)", w(), w(), ident(), w()) },
		func() string {
			return "\tif err != nil {\n\t\treturn nil, fmt.Errorf(\"" + w() + " " + w() + ": %w\", err)\n\t}"
		},
		func() string {
			return "\t// " + w() + " " + w() + " the " + w() + " before the " + w() + " is " + w() + "d, so that " + w() + "s stay " + w()
		},
		func() string { return fmt.Sprintf("const %s = %d", ident(), rng.IntN(100000)) },
		func() string { return fmt.Sprintf("  %s: %s_%s", w(), w(), w()) },
		func() string { return fmt.Sprintf(`    %q: "%s-%s",`, w(), w(), w()) },
		func() string {
			return fmt.Sprintf("export const %s = (%s) => %s.%s(%s);", ident(), w(), w(), ident(), w())
		},
		func() string { return fmt.Sprintf("    self.%s = %s(%s=%d)", w(), ident(), w(), rng.IntN(1000)) },
		func() string {
			return "The " + w() + " " + w() + " returns a " + w() + " when the " + w() + " has no " + w() + "."
		},
		func() string {
			return fmt.Sprintf("\treturn &%s{%s: %s, %s: %s}, nil", ident(), ident(), w(), ident(), w())
		},
		func() string { return "}" },
		func() string { return "" },
	}
	var lines []string
	for len(lines) < 4096 {
		// One line each, so that line numbers can be counted.
		lines = append(lines, strings.Split(templates[rng.IntN(len(templates))](), "\n")...)
	}
	return lines
}

// benchTree writes the tree into dir, commits it, and returns where the
// planted strings are. registered are current values, old an old one.
func benchTree(b testing.TB, dir string, rng *rand.Rand, registered []string, old string) benchPlants {
	b.Helper()
	lines := benchLines(rng)
	write := func(rel string, content []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	gitignore := []byte("node_modules/\n")
	write(".gitignore", gitignore)
	fixed := int64(len(gitignore)) + benchBinaryFiles*benchBinarySize + benchIgnored*benchIgnoredSize + benchLargeFiles*benchLargeSize
	textBytes := int64(benchTotalBytes) - fixed
	exts := []string{".go", ".go", ".go", ".ts", ".py", ".md", ".yaml", ".json"}

	// Planted: file index -> the line inserted.
	type plantLine struct {
		line      string
		lookalike bool
	}
	var p benchPlants
	plant := map[int]plantLine{}
	for i, v := range registered {
		plant[1000+i*9000] = plantLine{line: "API_KEY = \"" + v + "\""}
	}
	plant[40000] = plantLine{line: "token: " + old}
	plant[25000] = plantLine{line: "openai_key = \"sk-proj-" + benchToken(rng, 40) + "\"", lookalike: true}
	var buf bytes.Buffer
	var written int64
	for i := range benchTextFiles {
		// Sizes vary 1 KiB..2x the mean; the last file takes the rest.
		mean := (textBytes - written) / int64(benchTextFiles-i)
		size := mean
		if i < benchTextFiles-1 {
			size = 1024 + rng.Int64N(2*(mean-1024)+1)
		}
		buf.Reset()
		lineNo := 0
		insertAt := -1
		if _, ok := plant[i]; ok {
			insertAt = 5 + rng.IntN(20)
			size = max(size, 4096) // the plant stays inside the file
		}
		for int64(buf.Len()) < size {
			lineNo++
			switch {
			case lineNo == insertAt:
				buf.WriteString(plant[i].line)
			case i%50 == 7 && lineNo == 3:
				// Hashes and ids real code carries: high-entropy
				// assignments that match no key.
				fmt.Fprintf(&buf, "checksum = \"%x\"", rng.Uint64())
				fmt.Fprintf(&buf, "%x", rng.Uint64())
			default:
				buf.WriteString(lines[rng.IntN(len(lines))])
			}
			buf.WriteByte('\n')
		}
		content := buf.Bytes()[:min(int64(buf.Len()), size)]
		if insertAt > 0 && lineNo < insertAt {
			b.Fatalf("file %d too short for its plant", i)
		}
		rel := fmt.Sprintf("src/pkg%03d/file%03d%s", i/100, i%100, exts[i%len(exts)])
		if pl, ok := plant[i]; ok {
			loc := fmt.Sprintf("%s:%d", rel, insertAt)
			if pl.lookalike {
				p.lookalike = loc
			} else {
				p.registered = append(p.registered, loc)
			}
		}
		// Cut at a line end so that a planted line stays whole.
		if j := bytes.LastIndexByte(content, '\n'); j > 0 {
			content = content[:j+1]
		}
		write(rel, content)
		written += int64(len(content))
	}
	bin := make([]byte, benchBinarySize)
	for i := range benchBinaryFiles {
		copy(bin, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
		for j := 16; j < len(bin); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				bin[j+k] = byte(v >> (8 * k))
			}
		}
		if i == 500 {
			copy(bin[4096:], "OPENAI_API_KEY="+registered[0]+"\n") // in a binary: not read
		}
		write(fmt.Sprintf("assets/img%02d/%04d.png", i/100, i), bin)
	}
	js := make([]byte, 0, benchIgnoredSize)
	for i := range benchIgnored {
		js = js[:0]
		if i == 1234 {
			js = append(js, "module.exports.key = \""+registered[1]+"\";\n"...) // ignored: not read
		}
		for len(js) < benchIgnoredSize {
			js = append(js, lines[rng.IntN(len(lines))]...)
			js = append(js, '\n')
		}
		write(fmt.Sprintf("node_modules/lib%03d/index%02d.js", i/50, i%50), js[:benchIgnoredSize])
	}
	minified := []byte("var a=function(b){return b.c(d)};")
	large := bytes.Repeat(minified, benchLargeSize/len(minified)+1)[:benchLargeSize]
	for i := range benchLargeFiles {
		write(fmt.Sprintf("dist/bundle%d.min.js", i), large)
	}
	// Commit it, as a checkout is; compression off to build faster.
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"config", "user.email", "bench@example.com"},
		{"config", "user.name", "Bench"},
		{"config", "commit.gpgsign", "false"},
		{"-c", "core.compression=0", "-c", "core.looseCompression=0", "add", "-A"},
		{"commit", "-q", "-m", "tree"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return p
}

// BenchmarkFindCandidates measures the search alone (no I/O) over source
// text like BenchmarkScanTree's, with one high-entropy assignment per
// 50 lines.
func BenchmarkFindCandidates(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	lines := benchLines(rng)
	var buf bytes.Buffer
	for i := 0; buf.Len() < 4<<20; i++ {
		if i%50 == 7 {
			fmt.Fprintf(&buf, "checksum = \"%x%x\"\n", rng.Uint64(), rng.Uint64())
			continue
		}
		buf.WriteString(lines[rng.IntN(len(lines))])
		buf.WriteByte('\n')
	}
	content := buf.Bytes()
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		findCandidates(content)
	}
}

// loadAverage is /proc/loadavg's first three fields, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
