package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
)

// loadPassword is every seeded user's password: the load database is
// throw-away and only this tool signs in to it.
const loadPassword = "load-test-password-not-secret"

// cheapPasswords keep seeding fast. The server re-hashes each password with
// its own (argon2id, 64 MiB) parameters at the first sign-in, as it would
// after a parameter change, so sign-ins cost what they cost in production.
var cheapPasswords = crypto.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

var environments = []string{"development", "staging", "production"}

var projects = []string{"checkout", "billing", "search", "mobile-api", "web", "data-pipeline", "notifications", "auth",
	"reporting", "support-bot", "ml-ranking", "inventory", "shipping", "analytics", "partner-api", "internal-tools",
	"growth", "payments", "catalog", "edge"}

// Providers keyledger cannot verify, so the server's background checks
// never try to reach a provider.
var providers = []string{"aws", "other"}

type devKey struct {
	id    string
	value string
}

type seedData struct {
	totalKeys  int
	totalUsers int
	devKeys    []devKey
	leads      []string // emails
	members    []string
	tokens     []string // one per API client
	devPages   int      // pages of GET /keys?environment=development (50 a page)
}

func generateMasterKey() (string, error) { return crypto.GenerateKEK() }

func keyring(masterKey string) (*crypto.Keyring, error) {
	k, err := crypto.ParseKEK(masterKey)
	if err != nil {
		return nil, err
	}
	return crypto.NewKeyring(k)
}

var dbNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// recreateDatabase drops and creates the load database and returns its URL.
// The name must contain "load" so that a slip of the flag cannot drop a
// real database.
func recreateDatabase(ctx context.Context, adminURL, name string) (string, error) {
	if !dbNamePattern.MatchString(name) || !strings.Contains(name, "load") {
		return "", fmt.Errorf("-db: want a lower-case identifier containing \"load\" (it is dropped), got %q", name)
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-admin-url: want a URL like postgres://postgres@127.0.0.1:5432/postgres")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to Postgres (-admin-url): %w", err)
	}
	defer conn.Close(context.Background())
	id := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(cctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+id); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func openPool(ctx context.Context, dbURL string, conns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	return pgxpool.NewWithConfig(ctx, cfg)
}

// seedDatabase migrates the database and fills it through the store, the
// same code path the app uses: users, keys (sealed, fingerprinted,
// audited) and access tokens.
func seedDatabase(ctx context.Context, dbURL, masterKey string, o options, logf func(string, ...any)) (*seedData, error) {
	pool, err := openPool(ctx, dbURL, 16)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	kr, err := keyring(masterKey)
	if err != nil {
		return nil, err
	}
	st, err := store.New(ctx, pool, kr, store.Options{PasswordParams: &cheapPasswords})
	if err != nil {
		return nil, err
	}
	// A second store whose clock lies up to 200 days in the past, so keys
	// get a spread of creation and rotate-by dates: some overdue, some due
	// soon, most fine. The rotation page and dashboard then have real work.
	aged, err := store.New(ctx, pool, kr, store.Options{PasswordParams: &cheapPasswords,
		Now: func() time.Time { return time.Now().Add(-time.Duration(mrand.Int64N(int64(200 * 24 * time.Hour)))) }})
	if err != nil {
		return nil, err
	}

	sd := &seedData{}
	system := keyledger.SystemActor("keyledger-load")
	admin, err := st.CreateUser(ctx, system, keyledger.NewUser{Email: "admin@example.com", Name: "Load Admin", Role: keyledger.RoleAdmin, Password: loadPassword})
	if err != nil {
		return nil, fmt.Errorf("seed admin: %w", err)
	}
	owners := []string{admin.Email}
	nLeads := max(1, o.users/5)
	for i := 1; i < o.users; i++ {
		role, email := keyledger.RoleMember, fmt.Sprintf("member%03d@example.com", i)
		if i <= nLeads {
			role, email = keyledger.RoleLead, fmt.Sprintf("lead%03d@example.com", i)
		}
		u, err := st.CreateUser(ctx, system, keyledger.NewUser{Email: email, Name: strings.TrimSuffix(email, "@example.com"), Role: role, Password: loadPassword})
		if err != nil {
			return nil, fmt.Errorf("seed user %s: %w", email, err)
		}
		owners = append(owners, u.Email)
		if role == keyledger.RoleLead {
			sd.leads = append(sd.leads, u.Email)
		} else {
			sd.members = append(sd.members, u.Email)
		}
	}
	sd.totalUsers = len(owners)
	if len(sd.members) == 0 {
		sd.members = sd.leads
	}

	// Keys, in parallel: each CreateKey is a transaction of its own.
	as := keyledger.Actor{User: admin, Name: "keyledger-load"}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		errOnce sync.Once
		firstEr error
		wg      sync.WaitGroup
	)
	t0 := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.keys || ctx.Err() != nil {
					return
				}
				raw := make([]byte, 24)
				_, _ = rand.Read(raw)
				value := "ldv_" + hex.EncodeToString(raw)
				env := environments[i%len(environments)]
				// Each name and project has a key in every environment,
				// as teams register them: the key list groups them in one row.
				in := keyledger.KeyInput{
					Name:        fmt.Sprintf("load-key-%05d", i/len(environments)),
					Provider:    providers[i%len(providers)],
					Project:     projects[(i/len(environments))%len(projects)],
					Environment: env,
					OwnerEmail:  owners[mrand.IntN(len(owners))],
					Value:       value,
					Description: "seeded by keyledger-load",
				}
				res, err := aged.CreateKey(ctx, as, in)
				if err != nil {
					errOnce.Do(func() { firstEr = fmt.Errorf("seed key %d: %w", i, err) })
					next.Store(int64(o.keys))
					return
				}
				if env == "development" {
					mu.Lock()
					sd.devKeys = append(sd.devKeys, devKey{id: res.Key.ID, value: value})
					mu.Unlock()
				}
				if n := i + 1; n%2500 == 0 {
					logf("  %d keys seeded (%.0f/s)", n, float64(n)/time.Since(t0).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sd.totalKeys = o.keys
	sd.devPages = (len(sd.devKeys) + 49) / 50

	// One access token per API client, spread over the members.
	for i := 0; i < maxClients(o); i++ {
		email := sd.members[i%len(sd.members)]
		secret, _, err := st.CreateToken(ctx, system, email, keyledger.TokenInput{Name: fmt.Sprintf("load client %d", i),
			Scopes: []string{keyledger.ScopeRead, keyledger.ScopeReveal}, Expires: "1d"})
		if err != nil {
			return nil, fmt.Errorf("seed token for %s: %w", email, err)
		}
		sd.tokens = append(sd.tokens, secret)
	}
	// This Postgres may run with autovacuum off (the development machines
	// do): without statistics the planner takes 10,000 fresh rows for one
	// and picks nested loops and full sorts. A real instance would have
	// analyzed by now, so do what autovacuum would have done.
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	return sd, nil
}
