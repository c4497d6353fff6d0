package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// scanFile is one file to scan: its name as reported, and how to read it
// (from the working tree, the git index or a blob in history).
type scanFile struct {
	name string
	// read returns the content, in buf if it fits (a worker reuses one
	// buffer for all its files: no garbage per file).
	read func(ctx context.Context, buf []byte) ([]byte, error)
}

// finding is a candidate at a place.
type finding struct {
	name string
	candidate
}

// scanner holds one run's settings and what it found.
type scanner struct {
	maxSize int64
	stderr  io.Writer

	mu       sync.Mutex
	findings []finding
	files    int
	failed   int
}

// scan is `keyledger scan [--staged | --git-history] [PATH...]`: it finds
// strings that look like keys in files and asks the server which are a
// registered key's value (POST /leaks/check). It never prints a value.
// Exit 1 when a registered key is found, 0 when none is, 2 when the scan
// could not be made (or not completely: an unreadable file).
func (m *Main) scan(ctx context.Context, args []string) error {
	flags := m.newFlags("scan", "scan [--staged | --git-history] [--max-size BYTES] [PATH...]")
	staged := flags.Bool("staged", false, "scan the git index (what the next commit holds), for a pre-commit hook")
	history := flags.Bool("git-history", false, "scan every file version of every commit reachable from HEAD")
	maxSize := flags.Int64("max-size", 1<<20, "skip files larger than this many bytes")
	paths, help, err := parseInterspersed(flags, args)
	if help || err != nil {
		return err
	}
	if *staged && *history {
		return usageErr("--staged and --git-history exclude each other")
	}
	err = m.runScan(ctx, paths, *staged, *history, *maxSize)
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: 2, msg: err.Error()}
}

func (m *Main) runScan(ctx context.Context, paths []string, staged, history bool, maxSize int64) error {
	c, err := m.client()
	if err != nil {
		return err
	}
	s := &scanner{maxSize: maxSize, stderr: m.Stderr}
	var files []scanFile
	switch {
	case staged:
		files, err = stagedFiles(ctx, paths)
		if err == nil {
			err = s.scanAll(ctx, files)
		}
	case history:
		err = s.scanHistory(ctx)
	default:
		if len(paths) == 0 {
			paths = []string{"."}
		}
		files, err = treeFiles(ctx, paths, maxSize)
		if err == nil {
			err = s.scanAll(ctx, files)
		}
	}
	if err != nil {
		return err
	}
	hits, err := checkCandidates(ctx, c, s.findings)
	if err != nil {
		return err
	}
	registered := s.report(m.Stdout, hits)
	fmt.Fprintf(m.Stderr, "keyledger scan: %d files scanned, %d registered key values found\n", s.files, registered)
	switch {
	case registered > 0:
		return &exitError{code: 1}
	case s.failed > 0:
		return &exitError{code: 2, msg: fmt.Sprintf("%d files could not be read; the scan is incomplete", s.failed)}
	}
	return nil
}

// runGit runs git in dir and returns its standard output.
func runGit(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func splitNUL(b []byte) []string {
	var out []string
	for _, p := range bytes.Split(b, []byte{0}) {
		if len(p) > 0 {
			out = append(out, string(p))
		}
	}
	return out
}

// treeFiles lists the files under paths. Inside a git work tree git lists
// them, so .gitignore is respected (tracked and untracked files, not the
// ignored ones); elsewhere the tree is walked. A file named explicitly is
// scanned even if ignored.
func treeFiles(ctx context.Context, paths []string, maxSize int64) ([]scanFile, error) {
	var out []scanFile
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", p, err)
		}
		if !fi.IsDir() {
			out = append(out, diskFile(filepath.Clean(p), p, maxSize))
			continue
		}
		if inside, _ := runGit(ctx, p, "rev-parse", "--is-inside-work-tree"); strings.TrimSpace(string(inside)) == "true" {
			list, err := runGit(ctx, p, "ls-files", "-co", "--exclude-standard", "-z")
			if err != nil {
				return nil, err
			}
			for _, rel := range splitNUL(list) {
				full := filepath.Join(p, rel)
				out = append(out, diskFile(filepath.Clean(full), full, maxSize))
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				out = append(out, diskFile(filepath.Clean(path), path, maxSize))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", p, err)
		}
	}
	return out, nil
}

// errSkip marks a file that is not scanned on purpose (not a regular
// file, or gone since git listed it).
var errSkip = errors.New("skipped")

func diskFile(name, path string, maxSize int64) scanFile {
	return scanFile{name: name, read: func(_ context.Context, buf []byte) ([]byte, error) {
		return readText(path, maxSize, buf)
	}}
}

// sniffBytes is how much of a file decides whether it is binary (a NUL in
// it, as git decides).
const sniffBytes = 8192

// readText reads a regular file that is at most maxSize bytes and not
// binary. The size is checked before reading and a binary stops after its
// first sniffBytes, so memory stays bounded by the workers times maxSize
// whatever the tree holds.
func readText(path string, maxSize int64, buf []byte) ([]byte, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errSkip // tracked but deleted in the working tree
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxSize {
		return nil, errSkip // symlinks, submodules, files too large to scan
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// A read-only file: nothing to flush, so Close cannot lose data.
	defer func() { _ = f.Close() }()
	// One byte more than the size seen, to notice a file that grew.
	if int64(cap(buf)) < fi.Size()+1 {
		buf = make([]byte, fi.Size()+1)
	}
	buf = buf[:fi.Size()+1]
	n, err := io.ReadFull(f, buf[:min(len(buf), sniffBytes)])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.IndexByte(buf[:n], 0) >= 0 {
		return nil, errSkip
	}
	if n == sniffBytes {
		m, err := io.ReadFull(f, buf[n:])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return nil, err
		}
		n += m
	}
	if int64(n) > maxSize {
		return nil, errSkip // grew past the limit since Lstat
	}
	return buf[:n], nil
}

// stagedFiles lists the files the index adds or changes, read from the
// index (`git show :path`), not from the working tree: what the commit
// will hold.
func stagedFiles(ctx context.Context, paths []string) ([]scanFile, error) {
	top, err := runGit(ctx, ".", "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	root := strings.TrimSpace(string(top))
	list, err := runGit(ctx, ".", append([]string{"diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR", "--"}, paths...)...)
	if err != nil {
		return nil, err
	}
	var out []scanFile
	for _, rel := range splitNUL(list) {
		out = append(out, scanFile{name: rel, read: func(ctx context.Context, _ []byte) ([]byte, error) {
			return runGit(ctx, root, "show", ":"+rel)
		}})
	}
	return out, nil
}

// scanAll reads and searches files with bounded parallelism.
func (s *scanner) scanAll(ctx context.Context, files []scanFile) error {
	work := make(chan scanFile)
	var wg sync.WaitGroup
	for range min(8, 2*runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for f := range work {
				content, err := f.read(ctx, buf)
				if cap(content) > cap(buf) {
					buf = content[:0]
				}
				if errors.Is(err, errSkip) {
					continue
				}
				if err != nil {
					s.mu.Lock()
					s.failed++
					fmt.Fprintf(s.stderr, "keyledger scan: %s: %v\n", f.name, err)
					s.mu.Unlock()
					continue
				}
				s.search(f.name, content)
			}
		}()
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		work <- f
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

// search records the candidates of one file, unless it is too large or
// binary (a NUL in its first 8 KiB, as git decides).
func (s *scanner) search(name string, content []byte) {
	if int64(len(content)) > s.maxSize || bytes.IndexByte(content[:min(len(content), sniffBytes)], 0) >= 0 {
		return
	}
	found := findCandidates(content)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files++
	for _, c := range found {
		s.findings = append(s.findings, finding{name: name, candidate: c})
	}
}

// scanHistory scans every blob reachable from HEAD once (git rev-list
// --objects names each with a path), streamed by one git cat-file; a hit
// is reported with the commit that introduced the blob.
func (s *scanner) scanHistory(ctx context.Context) error {
	list, err := runGit(ctx, ".", "rev-list", "--objects", "HEAD")
	if err != nil {
		return err
	}
	type blob struct{ id, path string }
	var blobs []blob
	for _, line := range strings.Split(string(list), "\n") {
		id, path, ok := strings.Cut(line, " ")
		if ok && path != "" {
			blobs = append(blobs, blob{id, path}) // trees have a path too; cat-file tells them apart
		}
	}
	cmd := exec.CommandContext(ctx, "git", "cat-file", "--batch")
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("git cat-file: %w", err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("git cat-file: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git cat-file: %w", err)
	}
	go func() {
		w := bufio.NewWriter(in)
		for _, b := range blobs {
			if _, err := fmt.Fprintln(w, b.id); err != nil {
				break // git exited; its error is reported by Wait
			}
		}
		_ = w.Flush()
		_ = in.Close()
	}()
	r := bufio.NewReaderSize(outPipe, 1<<16)
	for _, b := range blobs {
		header, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("git cat-file: %w", err)
		}
		f := strings.Fields(header)
		if len(f) != 3 {
			return fmt.Errorf("git cat-file: unexpected %q", header)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("git cat-file: unexpected %q", header)
		}
		if f[1] != "blob" || size > s.maxSize {
			// Trees, and blobs too large to scan: skipped without
			// holding them in memory.
			if _, err := io.CopyN(io.Discard, r, size+1); err != nil {
				return fmt.Errorf("git cat-file: %w", err)
			}
			continue
		}
		content := make([]byte, size+1) // and the newline after it
		if _, err := io.ReadFull(r, content); err != nil {
			return fmt.Errorf("git cat-file: %w", err)
		}
		s.search(b.path+"@"+b.id[:12], content[:size])
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git cat-file: %w", err)
	}
	return s.nameCommits(ctx)
}

// nameCommits replaces the blob ids of the findings from history by the
// commit that introduced each blob, which is what a person can look at.
func (s *scanner) nameCommits(ctx context.Context) error {
	commits := map[string]string{}
	for i, f := range s.findings {
		path, id, _ := strings.Cut(f.name, "@")
		c, ok := commits[id]
		if !ok {
			out, err := runGit(ctx, ".", "log", "--format=%h", "--reverse", "--find-object="+id, "HEAD")
			if err != nil {
				return err
			}
			c, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
			commits[id] = c
		}
		s.findings[i].name = c + ":" + path
	}
	return nil
}

// leakBatchBytes caps the candidates' bytes in one leaks/check call.
const leakBatchBytes = 32 << 10

// checkCandidates asks the server which distinct candidate values are a
// registered key's, in batches the endpoint accepts, and returns the hits
// by value. Candidates longer than the endpoint takes are no key.
func checkCandidates(ctx context.Context, c *apiClient, findings []finding) (map[string][]wire.LeakHit, error) {
	seen := map[string]bool{}
	var values []string
	for _, f := range findings {
		if !seen[f.value] && len(f.value) <= keyledger.MaxLeakCandidateBytes {
			seen[f.value] = true
			values = append(values, f.value)
		}
	}
	hits := map[string][]wire.LeakHit{}
	for len(values) > 0 {
		// A batch also stays well under the server's default body limit
		// (64 KiB): 500 long candidates would not.
		n, size := 0, 0
		for n < len(values) && n < keyledger.MaxLeakCandidates && size+len(values[n]) < leakBatchBytes {
			size += len(values[n]) + 16 // quotes, comma, escapes
			n++
		}
		n = max(n, 1)
		batch := values[:n]
		values = values[n:]
		var res wire.LeakCheckResult
		if err := c.do(ctx, http.MethodPost, "/leaks/check", nil, wire.LeakCheckRequest{Candidates: batch}, &res); err != nil {
			return nil, err
		}
		for _, h := range res.Hits {
			if h.Index < 0 || h.Index >= len(batch) {
				return nil, fmt.Errorf("the server answered a candidate index %d out of range", h.Index)
			}
			hits[batch[h.Index]] = append(hits[batch[h.Index]], h)
		}
	}
	return hits, nil
}

// report prints the registered hits, then the unregistered look-alikes,
// each as file:line and never with the value, and returns how many
// registered hits there were. High-entropy strings that match no key are
// not reported: they are mostly hashes and ids.
func (s *scanner) report(w io.Writer, hits map[string][]wire.LeakHit) int {
	sort.SliceStable(s.findings, func(i, j int) bool {
		a, b := s.findings[i], s.findings[j]
		if a.name != b.name {
			return a.name < b.name
		}
		return a.line < b.line
	})
	registered := 0
	for _, f := range s.findings {
		for _, h := range hits[f.value] {
			which := "old version v" + strconv.Itoa(h.Version)
			if h.Current {
				which = "current version v" + strconv.Itoa(h.Version)
			}
			fmt.Fprintf(w, "%s:%d: %s (%s, project %s, owner %s), %s\n", f.name, f.line, h.Name, h.Environment, h.Project, h.OwnerEmail, which)
			registered++
		}
	}
	for _, f := range s.findings {
		if len(hits[f.value]) == 0 && f.provider != "" {
			fmt.Fprintf(w, "%s:%d: looks like %s key, not in keyledger\n", f.name, f.line, withArticle(f.provider))
		}
	}
	return registered
}

func withArticle(provider string) string {
	if strings.ContainsRune("AEIOU", rune(provider[0])) {
		return "an " + provider
	}
	return "a " + provider
}
