// Package deploy_test checks the deployment files.
package deploy_test

// Checks of the container setup (Dockerfile, .dockerignore, docker-compose.yml) that run
// without a Docker engine: docker-compose.yml is loaded with compose-go, the reference
// loader behind `docker compose`, and the Dockerfile is read as text.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestMain runs the tests from the repository root, where the Dockerfile,
// docker-compose.yml, .dockerignore, go.mod and Makefile they check live.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// loadCompose loads docker-compose.yml as `docker compose` would, with env as the whole
// environment (no .env file, nothing from the test process).
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(wd, "docker-compose.yml")}},
		Environment: types.Mapping(env),
	}
	if details.Environment == nil {
		details.Environment = types.Mapping{}
	}
	project, err := loader.LoadWithContext(t.Context(), details, func(o *loader.Options) {
		o.SetProjectName("keyledger", true)
	})
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return project
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q (has %v)", name, p.ServiceNames())
	}
	return s
}

// composeEnv returns a service's environment variable; ok is false when it is unset or has
// no value.
func composeEnv(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func composeMount(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

func wantComposeDependsOn(t *testing.T, s types.ServiceConfig, on, condition string) {
	t.Helper()
	dep, ok := s.DependsOn[on]
	if !ok {
		t.Errorf("service %s: no depends_on %s", s.Name, on)
		return
	}
	if dep.Condition != condition {
		t.Errorf("service %s: depends_on %s condition = %q, want %q", s.Name, on, dep.Condition, condition)
	}
}

func wantComposeBuildHere(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if s.Build == nil {
		t.Errorf("service %s: no build section (want build: .)", s.Name)
		return
	}
	if filepath.Clean(s.Build.Context) != filepath.Clean(wd) {
		t.Errorf("service %s: build context = %q, want the repository root %q", s.Name, s.Build.Context, wd)
	}
	if df := s.Build.Dockerfile; df != "" && df != "Dockerfile" {
		t.Errorf("service %s: build dockerfile = %q, want Dockerfile", s.Name, df)
	}
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t, nil)
	for _, name := range []string{"db", "init", "keyledger"} {
		composeService(t, p, name)
	}
}

func TestComposeDB(t *testing.T) {
	p := loadCompose(t, nil)
	db := composeService(t, p, "db")

	if !strings.HasPrefix(db.Image, "postgres:") {
		t.Errorf("db image = %q, want postgres:<version>", db.Image)
	}
	for key, want := range map[string]string{
		"POSTGRES_DB":       "keyledger",
		"POSTGRES_USER":     "keyledger",
		"POSTGRES_PASSWORD": "keyledger", // the local-only default, with nothing in the environment
	} {
		if got, _ := composeEnv(db, key); got != want {
			t.Errorf("db %s = %q, want %q", key, got, want)
		}
	}

	hc := db.HealthCheck
	if hc == nil || hc.Disable {
		t.Fatal("db has no healthcheck")
	}
	if !strings.Contains(strings.Join(hc.Test, " "), "pg_isready") {
		t.Errorf("db healthcheck test = %q, want pg_isready", hc.Test)
	}
	if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil || hc.StartPeriod == nil {
		t.Errorf("db healthcheck should set interval, timeout, retries and start_period: %+v", hc)
	}

	if len(db.Ports) != 0 {
		t.Errorf("db publishes ports %+v; Postgres should not be reachable from the host by default", db.Ports)
	}
	m, ok := composeMount(db, "/var/lib/postgresql/data")
	if !ok || m.Type != types.VolumeTypeVolume {
		t.Errorf("db: want a named volume at /var/lib/postgresql/data, got %+v", db.Volumes)
	}
}

func TestComposeInit(t *testing.T) {
	p := loadCompose(t, nil)
	s := composeService(t, p, "init")

	wantComposeBuildHere(t, s)
	if !slices.Equal(s.Command, types.ShellCommand{"bootstrap"}) {
		t.Errorf("init command = %q, want [bootstrap]", s.Command)
	}
	wantComposeDependsOn(t, s, "db", types.ServiceConditionHealthy)
	if s.Restart != "" && s.Restart != types.RestartPolicyNo {
		t.Errorf("init restart = %q, want \"no\" (it is a one-shot job)", s.Restart)
	}

	keyFile, ok := composeEnv(s, "KEYLEDGER_MASTER_KEY_FILE")
	if !ok {
		t.Fatal("init: KEYLEDGER_MASTER_KEY_FILE is not set")
	}
	m, ok := composeMount(s, filepath.Dir(keyFile))
	if !ok || m.Type != types.VolumeTypeVolume {
		t.Fatalf("init: the master key %s is not in a named volume (volumes %+v)", keyFile, s.Volumes)
	}
	if m.ReadOnly {
		t.Errorf("init: %s is read-only, but bootstrap writes the master key there", m.Target)
	}
	if _, ok := composeEnv(s, "KEYLEDGER_DATABASE_URL"); !ok {
		t.Error("init: KEYLEDGER_DATABASE_URL is not set")
	}
}

func TestComposeKeyledger(t *testing.T) {
	p := loadCompose(t, nil)
	s := composeService(t, p, "keyledger")
	db := composeService(t, p, "db")
	initSvc := composeService(t, p, "init")

	wantComposeBuildHere(t, s)
	if s.Image != "keyledger:local" {
		t.Errorf("keyledger image = %q, want keyledger:local", s.Image)
	}
	if initSvc.Image != s.Image {
		t.Errorf("init image %q != keyledger image %q: both must run the binary built from this repository", initSvc.Image, s.Image)
	}
	if len(s.Command) > 0 && !slices.Equal(s.Command, types.ShellCommand{"serve"}) {
		t.Errorf("keyledger command = %q, want [serve]", s.Command)
	}
	wantComposeDependsOn(t, s, "db", types.ServiceConditionHealthy)
	wantComposeDependsOn(t, s, "init", types.ServiceConditionCompletedSuccessfully)
	if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
		t.Errorf("keyledger restart = %q, want unless-stopped", s.Restart)
	}

	// Port 8080, on loopback unless someone chooses otherwise.
	var port *types.ServicePortConfig
	for i := range s.Ports {
		if s.Ports[i].Target == 8080 {
			port = &s.Ports[i]
		}
	}
	switch {
	case port == nil:
		t.Errorf("keyledger does not publish container port 8080: %+v", s.Ports)
	case port.Published != "8080":
		t.Errorf("keyledger publishes 8080 on host port %q, want 8080 (KEYLEDGER_BASE_URL says so)", port.Published)
	case port.HostIP != "127.0.0.1":
		t.Errorf("keyledger port 8080 binds host IP %q, want 127.0.0.1 by default", port.HostIP)
	}

	if listen, ok := composeEnv(s, "KEYLEDGER_LISTEN"); ok && !strings.HasPrefix(listen, "0.0.0.0:8080") && listen != ":8080" {
		t.Errorf("KEYLEDGER_LISTEN = %q: the published port needs 0.0.0.0:8080", listen)
	}
	if base, _ := composeEnv(s, "KEYLEDGER_BASE_URL"); base != "http://localhost:8080" {
		t.Errorf("KEYLEDGER_BASE_URL = %q, want http://localhost:8080", base)
	}
	if sc, _ := composeEnv(s, "KEYLEDGER_SECURE_COOKIES"); sc != "false" {
		t.Errorf("KEYLEDGER_SECURE_COOKIES = %q, want false for plain http://localhost", sc)
	}

	// The database URL points at the db service with its credentials.
	raw, ok := composeEnv(s, "KEYLEDGER_DATABASE_URL")
	if !ok {
		t.Fatal("keyledger: KEYLEDGER_DATABASE_URL is not set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("KEYLEDGER_DATABASE_URL: %v", err)
	}
	pgUser, _ := composeEnv(db, "POSTGRES_USER")
	pgPassword, _ := composeEnv(db, "POSTGRES_PASSWORD")
	pgDB, _ := composeEnv(db, "POSTGRES_DB")
	password, _ := u.User.Password()
	if u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Hostname() != "db" ||
		u.User.Username() != pgUser || password != pgPassword || strings.TrimPrefix(u.Path, "/") != pgDB ||
		u.Query().Get("sslmode") != "disable" {
		t.Errorf("KEYLEDGER_DATABASE_URL = %q, want postgres://%s:…@db:5432/%s?sslmode=disable", raw, pgUser, pgDB)
	}
	if initURL, _ := composeEnv(initSvc, "KEYLEDGER_DATABASE_URL"); initURL != raw {
		t.Errorf("init and keyledger use different databases: %q vs %q", initURL, raw)
	}

	// The master key file is the one init generated, in the same volume, read-only here.
	keyFile, ok := composeEnv(s, "KEYLEDGER_MASTER_KEY_FILE")
	if !ok {
		t.Fatal("keyledger: KEYLEDGER_MASTER_KEY_FILE is not set")
	}
	if initKeyFile, _ := composeEnv(initSvc, "KEYLEDGER_MASTER_KEY_FILE"); initKeyFile != keyFile {
		t.Errorf("KEYLEDGER_MASTER_KEY_FILE: init writes %q but keyledger reads %q", initKeyFile, keyFile)
	}
	m, ok := composeMount(s, filepath.Dir(keyFile))
	if !ok || m.Type != types.VolumeTypeVolume {
		t.Fatalf("keyledger: the master key %s is not in a named volume (volumes %+v)", keyFile, s.Volumes)
	}
	if !m.ReadOnly {
		t.Errorf("keyledger: %s should be mounted read-only; only init writes the key", m.Target)
	}
	if im, ok := composeMount(initSvc, m.Target); !ok || im.Source != m.Source {
		t.Errorf("keyledger mounts volume %q at %s, init mounts %+v", m.Source, m.Target, im)
	}

	hc := s.HealthCheck
	if hc == nil || hc.Disable || !strings.Contains(strings.Join(hc.Test, " "), "/keyledger healthcheck") {
		t.Errorf("keyledger healthcheck = %+v, want /keyledger healthcheck", hc)
	}
}

func TestComposeVolumes(t *testing.T) {
	p := loadCompose(t, nil)
	for _, name := range []string{"postgres-data", "keyledger-keys"} {
		if _, ok := p.Volumes[name]; !ok {
			t.Errorf("volume %q is not declared (declared: %v)", name, slices.Sorted(maps.Keys(p.Volumes)))
		}
	}
	used := map[string]bool{}
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeVolume {
				t.Errorf("service %s mounts %s as %s; use named volumes so a clean clone works anywhere", s.Name, v.Target, v.Type)
				continue
			}
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("service %s mounts undeclared volume %q", s.Name, v.Source)
			}
			used[v.Source] = true
		}
	}
	for name := range p.Volumes {
		if !used[name] {
			t.Errorf("volume %q is declared but no service mounts it", name)
		}
	}
}

// TestComposePasswordFromEnvironment checks that POSTGRES_PASSWORD reaches both Postgres
// and the database URLs, so the default is the only password written in the file.
func TestComposePasswordFromEnvironment(t *testing.T) {
	p := loadCompose(t, map[string]string{"POSTGRES_PASSWORD": "from-the-environment"})
	if got, _ := composeEnv(composeService(t, p, "db"), "POSTGRES_PASSWORD"); got != "from-the-environment" {
		t.Errorf("db POSTGRES_PASSWORD = %q, want it from the environment", got)
	}
	for _, name := range []string{"init", "keyledger"} {
		raw, _ := composeEnv(composeService(t, p, name), "KEYLEDGER_DATABASE_URL")
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s KEYLEDGER_DATABASE_URL: %v", name, err)
		}
		if pw, _ := u.User.Password(); pw != "from-the-environment" {
			t.Errorf("%s KEYLEDGER_DATABASE_URL = %q does not use POSTGRES_PASSWORD", name, raw)
		}
	}
}

// keyMaterialCandidate matches runs of base64 (standard or URL alphabet) or hex long enough to be
// a 256-bit key.
var keyMaterialCandidate = regexp.MustCompile(`[A-Za-z0-9+/_-]{40,}={0,2}`)

// looksLikeKeyMaterial reports a substring of s that decodes as base64 or hex to at least 32
// bytes and is not a repeated pattern: what a master key (or any other 256-bit secret)
// looks like written down.
func looksLikeKeyMaterial(s string) (string, bool) {
	for _, c := range keyMaterialCandidate.FindAllString(s, -1) {
		distinct := map[rune]bool{}
		for _, r := range c {
			distinct[r] = true
		}
		if len(distinct) < 10 { // a random key uses ~16 (hex) to ~30 (base64) symbols
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(c); err == nil && len(b) >= 32 {
				return c, true
			}
		}
		if b, err := hex.DecodeString(c); err == nil && len(b) >= 32 {
			return c, true
		}
	}
	return "", false
}

func TestComposeLooksLikeKeyMaterial(t *testing.T) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(key),
		"KEYLEDGER_MASTER_KEY=" + base64.RawURLEncoding.EncodeToString(key),
		hex.EncodeToString(key),
	} {
		if _, ok := looksLikeKeyMaterial(s); !ok {
			t.Errorf("looksLikeKeyMaterial(%q) = false", s)
		}
	}
	for _, s := range []string{
		"postgres://keyledger:keyledger@db:5432/keyledger?sslmode=disable",
		"KEYLEDGER_MASTER_KEY_FILE=/run/secrets/keyledger_master_key",
		"/var/lib/postgresql/data",
		"# " + strings.Repeat("-", 80),
	} {
		if c, ok := looksLikeKeyMaterial(s); ok {
			t.Errorf("looksLikeKeyMaterial(%q) = %q", s, c)
		}
	}
}

// TestComposeNoSecrets checks that no key is written into docker-compose.yml: the master
// key comes from a file (a volume or a Docker secret), never from the compose file.
func TestComposeNoSecrets(t *testing.T) {
	p := loadCompose(t, nil)
	for _, s := range p.Services {
		if _, ok := s.Environment["KEYLEDGER_MASTER_KEY"]; ok {
			t.Errorf("service %s sets KEYLEDGER_MASTER_KEY in docker-compose.yml; use KEYLEDGER_MASTER_KEY_FILE", s.Name)
		}
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			if c, ok := looksLikeKeyMaterial(*v); ok {
				t.Errorf("service %s: %s holds what looks like a key (%d chars): keep keys out of docker-compose.yml", s.Name, k, len(c))
			}
		}
	}
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(raw), "\n") {
		if c, ok := looksLikeKeyMaterial(line); ok {
			t.Errorf("docker-compose.yml:%d holds what looks like a key (%d chars), even if in a comment", i+1, len(c))
		}
	}
}

// ---- Dockerfile ----------------------------------------------------------------------

type dockerInstruction struct {
	line int    // 1-based line of the instruction's start
	cmd  string // upper case: FROM, RUN, ...
	args string // the rest, continuation lines joined with spaces
}

// parseDockerfile splits a Dockerfile into instructions: comments dropped, lines ending
// in a backslash joined. (Enough for our own Dockerfile; heredocs are not handled.)
func parseDockerfile(text string) []dockerInstruction {
	var out []dockerInstruction
	var cur *dockerInstruction
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(trimmed, "\\")
		trimmed = strings.TrimSpace(strings.TrimSuffix(trimmed, "\\"))
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &dockerInstruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else if trimmed != "" {
			cur.args = strings.TrimSpace(cur.args + " " + trimmed)
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// dockerStages splits instructions at FROM; stage 0 holds the global ARGs before the first FROM.
func dockerStages(ins []dockerInstruction) [][]dockerInstruction {
	stages := [][]dockerInstruction{nil}
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

func readDockerfile(t *testing.T) (string, [][]dockerInstruction) {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerStages(parseDockerfile(string(b)))
	if len(stages) < 3 { // global ARGs + builder + final
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(stages)-1)
	}
	return string(b), stages
}

// expandArgs replaces ${NAME} and $NAME with the defaults of the Dockerfile's global ARGs.
func expandArgs(s string, globals []dockerInstruction) string {
	defaults := map[string]string{}
	for _, in := range globals {
		if in.cmd == "ARG" {
			if name, value, ok := strings.Cut(in.args, "="); ok {
				defaults[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `"'`)
			}
		}
	}
	return os.Expand(s, func(name string) string { return defaults[name] })
}

func TestDockerfileStages(t *testing.T) {
	_, stages := readDockerfile(t)
	builder, final := stages[1], stages[len(stages)-1]

	// Builder: Go matching go.mod, module download cached before the sources are copied.
	from := strings.Fields(expandArgs(builder[0].args, stages[0]))
	if len(from) == 0 || !strings.HasPrefix(from[0], "golang:") {
		t.Fatalf("first stage FROM %q, want a golang image", builder[0].args)
	}
	tagVersion := strings.SplitN(strings.TrimPrefix(from[0], "golang:"), "-", 2)[0]
	goMod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)\s*$`).FindStringSubmatch(string(goMod))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if !goVersionAtLeast(tagVersion, m[1]) {
		t.Errorf("builder image %s may be older than go.mod's go %s (the golang image sets GOTOOLCHAIN=local)", from[0], m[1])
	}

	step := func(match func(dockerInstruction) bool) int {
		for i, in := range builder {
			if match(in) {
				return i
			}
		}
		return -1
	}
	copyMod := step(func(in dockerInstruction) bool {
		f := strings.Fields(in.args)
		return in.cmd == "COPY" && slices.Contains(f, "go.mod") && slices.Contains(f, "go.sum")
	})
	download := step(func(in dockerInstruction) bool {
		return in.cmd == "RUN" && strings.Contains(in.args, "go mod download")
	})
	copyAll := step(func(in dockerInstruction) bool {
		f := strings.Fields(in.args)
		return in.cmd == "COPY" && len(f) >= 2 && f[len(f)-2] == "."
	})
	if copyMod < 0 || download < 0 || copyAll < 0 || copyMod >= download || download >= copyAll {
		t.Errorf("builder should COPY go.mod go.sum, RUN go mod download, then COPY . . (steps at %d, %d, %d)", copyMod, download, copyAll)
	}
	cgoOff := false
	for _, in := range builder {
		cgoOff = cgoOff || (in.cmd == "ENV" || in.cmd == "RUN") && strings.Contains(in.args, "CGO_ENABLED=0")
	}
	if !cgoOff {
		t.Error("builder does not set CGO_ENABLED=0: the distroless static image has no libc")
	}

	// Final stage: distroless, non-root, only the binary (and the key directory).
	if base := final[0].args; !strings.HasPrefix(base, "gcr.io/distroless/static") || !strings.Contains(base, ":nonroot") {
		t.Errorf("final stage FROM %q, want gcr.io/distroless/static-debian12:nonroot", base)
	}
	user := ""
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "COPY", "ADD":
			if !strings.Contains(in.args, "--from=") {
				t.Errorf("Dockerfile:%d: final stage copies %q from the build context; copy only from the builder", in.line, in.args)
			}
		case "RUN":
			t.Errorf("Dockerfile:%d: RUN in the final stage (distroless has no shell)", in.line)
		}
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER = %q, want a non-root user (65532 / nonroot)", user)
	}

	want := map[string]func(string) bool{
		"ENTRYPOINT":  func(a string) bool { return strings.Contains(a, `"/keyledger"`) },
		"HEALTHCHECK": func(a string) bool { return strings.Contains(a, `"healthcheck"`) },
		"EXPOSE":      func(a string) bool { return slices.Contains(strings.Fields(a), "8080") },
		"ENV":         func(a string) bool { return strings.Contains(a, "KEYLEDGER_LISTEN=0.0.0.0:8080") },
		"COPY":        func(a string) bool { return strings.Contains(a, "--chown=65532") && strings.HasSuffix(a, " /keys") },
	}
	for cmd, ok := range want {
		if !slices.ContainsFunc(final, func(in dockerInstruction) bool { return in.cmd == cmd && ok(in.args) }) {
			t.Errorf("final stage lacks the expected %s instruction", cmd)
		}
	}
}

// goVersionAtLeast reports whether a golang image tag such as "1.26" or "1.26.8" provides
// at least go.mod's version (a minor-only tag is the newest patch of that minor).
func goVersionAtLeast(tag, goMod string) bool {
	parse := func(v string) []int {
		var out []int
		for _, p := range strings.Split(v, ".") {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil
			}
			out = append(out, n)
		}
		return out
	}
	tv, mv := parse(tag), parse(goMod)
	if len(tv) < 2 || len(mv) < 2 {
		return false
	}
	if tv[0] != mv[0] || tv[1] != mv[1] {
		return tv[0] > mv[0] || tv[0] == mv[0] && tv[1] > mv[1]
	}
	return len(tv) == 2 || len(mv) == 2 || tv[2] >= mv[2]
}

// goBuildCommand matches a `go build ... ./cmd/keyledger` command.
var goBuildCommand = regexp.MustCompile(`(?:\bgo|\$\(GO\)|\$\{GO\}) build\b.*?\./cmd/keyledger\b`)

// normalizeGoBuild splits a go build command into words, unquoting them, splitting
// -flag=value, and dropping the output path (-o), which differs between image and Makefile.
func normalizeGoBuild(cmd string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range cmd {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	// The version stamp comes from git in the Makefile and from a build
	// arg in the image: the same flag, a different source.
	for i, w := range words {
		words[i] = versionStamp.ReplaceAllString(w, "-X main.version=VERSION")
	}
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "$(GO)" || w == "${GO}" {
			w = "go"
		}
		if strings.HasPrefix(w, "-") {
			if flag, value, ok := strings.Cut(w, "="); ok {
				if flag == "-o" || flag == "--o" {
					continue
				}
				out = append(out, flag, value)
				continue
			}
			if w == "-o" || w == "--o" {
				i++ // skip the path
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

var versionStamp = regexp.MustCompile(`-X main\.version=(\$\(shell [^)]*\)|\S+)`)

// makeVariables collects simple top-level Makefile assignments (NAME = / := / ?= value).
func makeVariables(makefile string) map[string]string {
	vars := map[string]string{}
	assign := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(?::=|::=|\?=|=)\s*(.*)$`)
	for _, line := range strings.Split(makefile, "\n") {
		if m := assign.FindStringSubmatch(strings.TrimSpace(line)); m != nil && !strings.HasPrefix(line, "\t") {
			vars[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return vars
}

func expandMake(s string, vars map[string]string) string {
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	for range 5 { // nested references
		s = ref.ReplaceAllStringFunc(s, func(r string) string {
			m := ref.FindStringSubmatch(r)
			name := m[1] + m[2]
			if name == "GO" {
				return r
			}
			if v, ok := vars[name]; ok {
				return v
			}
			return r
		})
	}
	return s
}

// makeBuildCommand returns the go build command of the Makefile's build target, or of
// any rule when the build target delegates to another rule.
func makeBuildCommand(makefile string) (string, bool) {
	vars := makeVariables(makefile)
	lines := strings.Split(strings.ReplaceAll(makefile, "\\\n", " "), "\n")
	var inBuild []string
	var anywhere []string
	target := ""
	for _, line := range lines {
		if !strings.HasPrefix(line, "\t") {
			if t, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") && !strings.Contains(t, "=") {
				target = strings.TrimSpace(t)
			}
			continue
		}
		cmd := goBuildCommand.FindString(expandMake(line, vars))
		if cmd == "" {
			continue
		}
		if slices.Contains(strings.Fields(target), "build") {
			inBuild = append(inBuild, cmd)
		}
		anywhere = append(anywhere, cmd)
	}
	if len(inBuild) > 0 {
		return inBuild[0], true
	}
	if len(anywhere) > 0 {
		return anywhere[0], true
	}
	return "", false
}

func TestDockerfileGoBuild(t *testing.T) {
	text, _ := readDockerfile(t)
	var builds []string
	for _, in := range parseDockerfile(text) {
		if in.cmd == "RUN" {
			builds = append(builds, goBuildCommand.FindAllString(in.args, -1)...)
		}
	}
	if len(builds) != 1 {
		t.Fatalf("Dockerfile has %d `go build ... ./cmd/keyledger` commands, want 1: %q", len(builds), builds)
	}
	image := normalizeGoBuild(builds[0])
	for _, flag := range []string{"-trimpath", "-ldflags"} {
		if !slices.Contains(image, flag) {
			t.Errorf("Dockerfile go build lacks %s: %q", flag, builds[0])
		}
	}

	t.Run("same as Makefile", func(t *testing.T) {
		makefile, err := os.ReadFile("Makefile")
		if os.IsNotExist(err) {
			t.Skip("no Makefile yet")
		}
		if err != nil {
			t.Fatal(err)
		}
		cmd, ok := makeBuildCommand(string(makefile))
		if !ok {
			t.Skip("Makefile has no `go build ... ./cmd/keyledger` command")
		}
		if got := normalizeGoBuild(cmd); !slices.Equal(got, image) {
			t.Errorf("the image and the Makefile build differently (ignoring -o):\n Dockerfile: %s\n Makefile:   %s", builds[0], cmd)
		}
	})
}

func TestDockerfileNormalizeGoBuild(t *testing.T) {
	want := []string{"go", "build", "-trimpath", "-ldflags", "-s -w", "./cmd/keyledger"}
	for _, cmd := range []string{
		`go build -trimpath -ldflags "-s -w" -o /out/keyledger ./cmd/keyledger`,
		`$(GO) build -trimpath -o bin/keyledger -ldflags='-s -w' ./cmd/keyledger`,
		`go build -trimpath -ldflags="-s -w" -o=bin/keyledger ./cmd/keyledger`,
	} {
		if got := normalizeGoBuild(cmd); !slices.Equal(got, want) {
			t.Errorf("normalizeGoBuild(%q) = %q, want %q", cmd, got, want)
		}
	}

	makefile := "GO ?= go\nLDFLAGS := -s -w\n\n.PHONY: build\nbuild: generate\n\t$(GO) build -trimpath -ldflags \"$(LDFLAGS)\" \\\n\t\t-o bin/keyledger ./cmd/keyledger\n"
	cmd, ok := makeBuildCommand(makefile)
	if !ok || !slices.Equal(normalizeGoBuild(cmd), want) {
		t.Errorf("makeBuildCommand = %q, %v", cmd, ok)
	}
}

// TestDockerfileContextIgnores checks that .dockerignore keeps history and key material
// out of the build context but leaves the sources in.
func TestDockerfileContextIgnores(t *testing.T) {
	b, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for _, p := range []string{".git", "**/*.key", "secrets", "**/.env"} {
		if !slices.Contains(patterns, p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			continue
		}
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "cmd/keyledger/main.go", "migrations", "static", "templates", "web", "store", "crypto"} {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), needed); ok || p == "*" || p == needed {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, needed)
			}
		}
	}
}

// The README's quick start and the compose file's header give the same command.
func TestReadmeAndComposeAgree(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#\s+(docker compose up[^\s]*(?: --build)?)\s{2,}then open`).FindSubmatch(compose)
	if m == nil {
		t.Fatal("docker-compose.yml's header does not say which command starts it")
	}
	if !strings.Contains(string(readme), "```sh\n"+string(m[1])+"\n```") {
		t.Errorf("docker-compose.yml says %q, but the README's quick start does not", m[1])
	}
}
