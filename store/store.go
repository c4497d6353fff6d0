// Package store keeps keyledger's state in Postgres: users, sessions, keys
// and their encrypted versions, and the audit log. Every operation that
// acts on behalf of someone checks the root package's policy, writes its
// audit event and changes state in one transaction, so a handler can neither
// skip the check nor act without a trace.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/riverqueue/river"
)

// Options tune a Store. Zero values pick production defaults.
type Options struct {
	// PasswordParams for new hashes; tests pass cheap ones.
	PasswordParams *crypto.PasswordParams
	// Now replaces the clock in tests.
	Now func() time.Time
	// Logger for internal errors; never receives a secret.
	Logger *slog.Logger
	// Throttle limits failed sign-ins.
	Throttle ThrottleLimits
}

// ThrottleLimits bound failed sign-ins, second factors and step-ups. See
// docs/security.md, "Sign-in throttling", for why these three limits and
// these numbers. A zero field takes its DefaultThrottle value.
type ThrottleLimits struct {
	// Window is how long a failure counts against its (account, address)
	// pair and against its address.
	Window time.Duration
	// PerPair failures for one account from one address within Window
	// refuse that address for that account until the oldest leaves the
	// window. Only the guesser's own address is shut out.
	PerPair int
	// PerIP failures from one address within Window, whatever the
	// accounts, refuse that address (password spraying).
	PerIP int
	// PerAccount failures for one account from all addresses within
	// AccountWindow are free; after them each attempt waits BaseDelay,
	// doubling with every further failure up to MaxDelay. A delay, never
	// a lock: a stranger can slow an account down but not shut it.
	PerAccount    int
	AccountWindow time.Duration
	BaseDelay     time.Duration
	MaxDelay      time.Duration
	// KnownFor: an address the account completed a sign-in from within
	// KnownFor skips the account-wide delay (not its own pair limit), for
	// its first PerPair failures in AccountWindow.
	KnownFor time.Duration
	// AlertAfter failures for an existing account within AccountWindow
	// tell the admins, at most once per account per AccountWindow.
	AlertAfter int
}

// DefaultThrottle allows 5 failures per account and address and 20 per
// address in 15 minutes; per account, 5 failures a day are free, then
// attempts wait 15 s, 30 s, ... up to 15 minutes. Admins hear of an
// account at 10 failures in a day.
func DefaultThrottle() ThrottleLimits {
	return ThrottleLimits{Window: 15 * time.Minute, PerPair: 5, PerIP: 20,
		PerAccount: 5, AccountWindow: 24 * time.Hour, BaseDelay: 15 * time.Second, MaxDelay: 15 * time.Minute,
		KnownFor: 30 * 24 * time.Hour, AlertAfter: 10}
}

// withDefaults fills the zero fields of l from DefaultThrottle.
func (l ThrottleLimits) withDefaults() ThrottleLimits {
	d := DefaultThrottle()
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pickN := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&l.Window, d.Window)
	pick(&l.AccountWindow, d.AccountWindow)
	pick(&l.BaseDelay, d.BaseDelay)
	pick(&l.MaxDelay, d.MaxDelay)
	pick(&l.KnownFor, d.KnownFor)
	pickN(&l.PerPair, d.PerPair)
	pickN(&l.PerIP, d.PerIP)
	pickN(&l.PerAccount, d.PerAccount)
	pickN(&l.AlertAfter, d.AlertAfter)
	return l
}

// Store is keyledger's Postgres state. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	keyring  *crypto.Keyring
	pw       crypto.PasswordParams
	now      func() time.Time
	log      *slog.Logger
	throttle ThrottleLimits

	fingerprintKey []byte
	cookieKey      []byte
	chain          chainKeying
	dummyHash      string

	audit    *batcher[auditEntry, struct{}]
	reads    *batcher[revealRead, revealRow]
	sessions *batcher[[]byte, sessionRow]
	tokens   *tokenCache
	envIDs   sync.Map // environment name → id (environmentID)

	writes     writeHealth   // class-53 write failures, for readiness
	hashSlots  chan struct{} // argon2id hashes running (hashPassword)
	hashes     atomic.Int64  // argon2id hashes started, for PasswordHashes
	dashboards coalescer[Dashboard]
	rotations  coalescer[RotationOverview]
	// What those computed, kept per change epoch (epochcache.go).
	keptDashboards *EpochCache[Dashboard]
	keptRotations  *EpochCache[RotationOverview]
	menus          coalescer[KeyListMenus]
	// The key list's groups in order, by filter and sort.
	keyGroupIndexes keyedCoalescer[groupIndex]
	// jobs inserts background jobs inside the store's transactions
	// (insert-only: serve's NewJobs client works them).
	jobs *river.Client[pgx.Tx]
}

// New checks the master keys against the database (refusing a wrong one),
// loads the instance secrets, and returns a Store. Migrations must already
// be applied.
func New(ctx context.Context, pool *pgxpool.Pool, keyring *crypto.Keyring, opts Options) (*Store, error) {
	s := &Store{
		pool:     pool,
		keyring:  keyring,
		pw:       crypto.DefaultPasswordParams(),
		now:      time.Now,
		log:      opts.Logger,
		throttle: opts.Throttle,
		reads:    newBatcher(batchFlights(), 256, readRevealBatch(pool)),
		sessions: newBatcher(batchFlights(), 256, readSessionBatch(pool)),
		tokens:   newTokenCache(),
		// One overview each: everyone who may see it sees the same.
		keptDashboards: NewEpochCache[Dashboard](1, time.Minute),
		keptRotations:  NewEpochCache[RotationOverview](1, time.Minute),
	}
	s.audit = newBatcher(batchFlights(), 256, writeAuditBatch(pool, &s.writes))
	if opts.PasswordParams != nil {
		s.pw = *opts.PasswordParams
	}
	s.hashSlots = make(chan struct{}, passwordSlots(s.pw))
	if opts.Now != nil {
		s.now = opts.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.throttle = s.throttle.withDefaults()
	var err error
	if s.jobs, err = newJobInserter(s); err != nil {
		return nil, err
	}
	if err := s.checkKeyring(ctx); err != nil {
		return nil, err
	}
	if s.fingerprintKey, err = s.instanceSecret(ctx, "fingerprint"); err != nil {
		return nil, err
	}
	if s.cookieKey, err = s.instanceSecret(ctx, "cookie"); err != nil {
		return nil, err
	}
	if err := s.ensureAuditEpoch(ctx); err != nil {
		return nil, err
	}
	if err := s.loadChainKeying(ctx); err != nil {
		return nil, err
	}
	// A hash of a random password, verified when the account does not
	// exist, so an unknown email takes as long as a wrong password.
	pw, err := crypto.RandomToken(24)
	if err != nil {
		return nil, err
	}
	if s.dummyHash, err = s.hashPassword(ctx, pw); err != nil {
		return nil, fmt.Errorf("hash dummy password: %w", err)
	}
	return s, nil
}

// Pool exposes the connection pool for health checks and metrics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// CookieKey is the secret that signs session cookies. It is kept sealed in
// the database so that every replica signs alike.
func (s *Store) CookieKey() []byte { return s.cookieKey }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// tx runs fn in a transaction and retries on serialization failures and
// deadlocks, which are safe to retry by definition.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil {
			s.writes.succeeded()
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
			continue
		}
		return err
	}
	return err
}

// internal wraps an unexpected error with context and logs it; the user
// sees a generic message. Errors that say the database is unreachable,
// busy or out of resources become EUNAVAILABLE (503 with Retry-After),
// each with its own message and the database's error kept for the log.
func (s *Store) internal(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var de *keyledger.Error
	if errors.As(err, &de) {
		return err
	}
	// The request was stopped for a reason it carries (the web front door
	// gives its deadline "busy" and a shutdown "shutting down" as causes):
	// whatever the database said after that is a consequence.
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &de) {
		return fmt.Errorf("%s: %w (%w)", op, de, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch dbTrouble(err) {
	case troubleResources:
		s.writes.failed(err)
		return fmt.Errorf("%s: %w (%w)", op, errOutOfResources, err)
	case troubleUnreachable:
		return fmt.Errorf("%s: %w (%w)", op, errUnreachable, err)
	case troubleBusy:
		return fmt.Errorf("%s: %w (%w)", op, errBusy, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

// noToken refuses account, admin and lead actions to API tokens: those
// are for people in a browser session, where step-up and 2FA apply.
func noToken(actor keyledger.Actor) error {
	if actor.Token != nil {
		return keyledger.Errorf(keyledger.EFORBIDDEN, "Access tokens cannot do this; use the browser.")
	}
	return nil
}

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// freshActor re-reads the acting user's status and role, inside the
// caller's transaction where there is one: a deactivation or demotion a
// moment ago counts, whatever the session loaded at the request's start.
func freshActor(ctx context.Context, q rowQuerier, actor keyledger.Actor) (keyledger.Actor, error) {
	if actor.User == nil {
		return actor, nil
	}
	var status, role string
	err := q.QueryRow(ctx, "SELECT status, role FROM users WHERE id = $1", actor.User.ID).Scan(&status, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return actor, keyledger.Errorf(keyledger.EUNAUTHORIZED, "Please sign in.")
	}
	if err != nil {
		return actor, fmt.Errorf("re-read actor: %w", err)
	}
	u := *actor.User
	u.Status, u.Role = keyledger.UserStatus(status), keyledger.Role(role)
	actor.User = &u
	return actor, nil
}

// freshActorMay is freshActor followed by a permission check (one of the
// root package's Can… functions) on the re-read user.
func freshActorMay(ctx context.Context, q rowQuerier, actor keyledger.Actor, may func(*keyledger.User) error) (keyledger.Actor, error) {
	actor, err := freshActor(ctx, q, actor)
	if err != nil {
		return actor, err
	}
	return actor, may(actor.User)
}

// hashPassword and verifyPassword run argon2id with at most hashSlots
// hashes at a time. Each takes PasswordParams.MemoryKiB (64 MiB by
// default) while it runs; a burst of sign-ins at nine o'clock would
// otherwise hold that much per request at once, and the CPU cannot run
// them faster in parallel anyway (each already uses Threads cores).
//
// After each hash the collector runs before the slot is given back: the
// hash's memory is garbage the moment it returns, and Go's pacing would
// otherwise let several such blocks pile up before collecting (measured:
// 216 MiB of RSS for a burst of 42 sign-ins, 88 MiB of it at rest). A
// collection of keyledger's small live heap costs about a millisecond; a
// hash costs fifty.
//
// A hash waiting for a slot gives up when ctx ends: a sign-in queued
// behind a burst whose client went away (or whose deadline passed) must
// not hold its request, and then a slot, for nobody.
func (s *Store) hashPassword(ctx context.Context, password string) (string, error) {
	if err := s.takeHashSlot(ctx); err != nil {
		return "", err
	}
	defer s.releaseHashSlot()
	return crypto.HashPassword(password, s.pw)
}

func (s *Store) verifyPassword(ctx context.Context, password, phc string) (ok, needsRehash bool, err error) {
	if err := s.takeHashSlot(ctx); err != nil {
		return false, false, err
	}
	defer s.releaseHashSlot()
	return crypto.VerifyPassword(password, phc, s.pw)
}

// takeHashSlot waits for a free slot or the end of ctx, whichever comes
// first; a hash is counted as started only once it has its slot.
func (s *Store) takeHashSlot(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.hashSlots <- struct{}{}:
		s.hashes.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PasswordHashes is how many argon2id hashes this store has started.
// Tests read it to prove that a refused request hashed nothing: every
// hash costs ~20 ms of CPU and 64 MiB, so an unauthenticated request must
// pass the throttle before it may start one.
func (s *Store) PasswordHashes() int64 { return s.hashes.Load() }

func (s *Store) releaseHashSlot() {
	if s.pw.MemoryKiB >= 8*1024 {
		runtime.GC()
	}
	<-s.hashSlots
}

// passwordSlots is how many argon2id hashes may run at once: enough to
// keep every core busy.
func passwordSlots(p crypto.PasswordParams) int {
	return max(1, runtime.GOMAXPROCS(0)/max(1, int(p.Threads)))
}

// PasswordMemory is the most memory argon2id can hold at once: the hashes
// allowed to run together times the memory of each. serve sizes Go's soft
// memory limit from it.
func (s *Store) PasswordMemory() int64 {
	return int64(cap(s.hashSlots)) * int64(s.pw.MemoryKiB) * 1024
}

// batchFlights is how many batches of one kind may run at once: one per
// core, at least two. More only splits the same work into smaller batches
// (make loadtest on 2 cores: 4 in flight gave 4,000-4,200 API reveals/s at
// 32 clients, 2 gave 4,300-5,500, at some cost at 8 clients: 2,400 against
// 2,700).
func batchFlights() int { return max(2, runtime.GOMAXPROCS(0)) }

// Now is the store's clock (injectable for tests). Web handlers take the
// time from here for every decision the store also makes (step-up
// windows, due dates), so the two never disagree.
func (s *Store) Now() time.Time { return s.now() }
