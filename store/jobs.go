package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Background work runs as River jobs in Postgres. River elects one leader
// among the replicas to enqueue periodic jobs, and each job row is locked by
// the one worker that takes it, so however many replicas run, each piece
// of work happens once.

// JobsConfig wires the background jobs.
type JobsConfig struct {
	Verifier keyledger.Verifier
	// Notifier may be nil: then reminders and account alerts are not
	// sent (alerts stay in the audit log).
	Notifier keyledger.Notifier
	// Links builds the addresses notifications carry (web.NewLinks).
	Links keyledger.Links
	// VerifyInterval is how often each key is checked at most.
	VerifyInterval time.Duration
	// VerifyConcurrency bounds provider calls in flight per replica.
	VerifyConcurrency int
	Logger            *slog.Logger
	// ScanInterval is how often due work is looked for (tests shorten it).
	ScanInterval time.Duration
	// CheckpointInterval is how often the audit chain's head is signed
	// and published (default an hour).
	CheckpointInterval time.Duration
	// Checkpoints may be nil: then checkpoints go to the log only.
	Checkpoints keyledger.CheckpointPublisher
	// ProviderAdmin may be nil: then provider connections are not synced
	// in the background.
	ProviderAdmin keyledger.ProviderAdmin
	// ProviderSyncInterval is how often each provider connection is
	// synced (KEYLEDGER_PROVIDER_SYNC_INTERVAL, default an hour).
	ProviderSyncInterval time.Duration
}

// QueueVerify is the queue of provider checks; its worker count bounds
// concurrent calls to providers.
const QueueVerify = "verify"

// VerifyScanArgs finds keys due for a check and enqueues one job per key.
type VerifyScanArgs struct{}

// Kind names the job in River's tables.
func (VerifyScanArgs) Kind() string { return "keyledger.verify_scan" }

// VerifyKeyArgs checks one key.
type VerifyKeyArgs struct {
	KeyID string `json:"key_id"`
}

// Kind names the job in River's tables.
func (VerifyKeyArgs) Kind() string { return "keyledger.verify_key" }

// InsertOpts puts key checks on their own bounded queue.
func (VerifyKeyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueVerify, MaxAttempts: 3}
}

// DestroyVersionsArgs shreds superseded versions past their grace period.
type DestroyVersionsArgs struct{}

// Kind names the job in River's tables.
func (DestroyVersionsArgs) Kind() string { return "keyledger.destroy_versions" }

// RemindArgs sends rotation and verification reminders.
type RemindArgs struct{}

// Kind names the job in River's tables.
func (RemindArgs) Kind() string { return "keyledger.remind" }

// AccountAlertArgs tells the admins about accounts under attack.
type AccountAlertArgs struct{}

// Kind names the job in River's tables.
func (AccountAlertArgs) Kind() string { return "keyledger.account_alerts" }

// AuditCheckpointArgs signs the audit chain's head and publishes it.
type AuditCheckpointArgs struct{}

// Kind names the job in River's tables.
func (AuditCheckpointArgs) Kind() string { return "keyledger.audit_checkpoint" }

type checkpointWorker struct {
	river.WorkerDefaults[AuditCheckpointArgs]
	s   *Store
	cfg JobsConfig
}

func (w *checkpointWorker) Work(ctx context.Context, job *river.Job[AuditCheckpointArgs]) error {
	_, err := w.s.PublishCheckpoint(ctx, w.cfg.Checkpoints)
	return err
}

type verifyScanWorker struct {
	river.WorkerDefaults[VerifyScanArgs]
	s   *Store
	cfg JobsConfig
}

func (w *verifyScanWorker) Work(ctx context.Context, job *river.Job[VerifyScanArgs]) error {
	ids, err := w.s.KeysToVerify(ctx, w.cfg.Verifier, w.cfg.VerifyInterval, 1000)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	params := make([]river.InsertManyParams, 0, len(ids))
	for _, id := range ids {
		params = append(params, river.InsertManyParams{Args: VerifyKeyArgs{KeyID: id}, InsertOpts: &river.InsertOpts{
			Queue: QueueVerify, MaxAttempts: 3,
			// One pending check per key per interval, however many scans
			// run before it is worked.
			UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: w.cfg.VerifyInterval},
		}})
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue %d key checks: %w", len(ids), err)
	}
	return nil
}

type verifyKeyWorker struct {
	river.WorkerDefaults[VerifyKeyArgs]
	s   *Store
	cfg JobsConfig
}

func (w *verifyKeyWorker) Work(ctx context.Context, job *river.Job[VerifyKeyArgs]) error {
	_, err := w.s.VerifyKey(ctx, keyledger.SystemActor("scheduler"), job.Args.KeyID, w.cfg.Verifier)
	if keyledger.ErrorCode(err) == keyledger.ECONFLICT {
		// Rotated while being checked: check the new version now rather
		// than an interval later.
		_, err = w.s.VerifyKey(ctx, keyledger.SystemActor("scheduler"), job.Args.KeyID, w.cfg.Verifier)
	}
	if code := keyledger.ErrorCode(err); code == keyledger.ENOTFOUND || code == keyledger.ECONFLICT || code == keyledger.EINVALID {
		// Archived, gone or no longer checkable since it was enqueued.
		return nil
	}
	return err
}

// Timeout leaves room for the provider's own 10 s timeout.
func (w *verifyKeyWorker) Timeout(*river.Job[VerifyKeyArgs]) time.Duration { return 30 * time.Second }

type destroyWorker struct {
	river.WorkerDefaults[DestroyVersionsArgs]
	s *Store
}

func (w *destroyWorker) Work(ctx context.Context, job *river.Job[DestroyVersionsArgs]) error {
	_, err := w.s.DestroyExpiredVersions(ctx)
	return err
}

// ProviderSyncScanArgs finds provider connections due for a sync and
// enqueues one job per connection.
type ProviderSyncScanArgs struct{}

// Kind names the job in River's tables.
func (ProviderSyncScanArgs) Kind() string { return "keyledger.provider_sync_scan" }

// ProviderSyncArgs syncs one provider connection.
type ProviderSyncArgs struct {
	ConnectionID string `json:"connection_id"`
}

// Kind names the job in River's tables.
func (ProviderSyncArgs) Kind() string { return "keyledger.provider_sync" }

type providerSyncScanWorker struct {
	river.WorkerDefaults[ProviderSyncScanArgs]
	s   *Store
	cfg JobsConfig
}

func (w *providerSyncScanWorker) Work(ctx context.Context, job *river.Job[ProviderSyncScanArgs]) error {
	if w.cfg.ProviderAdmin == nil {
		return nil
	}
	ids, err := w.s.ConnectionsToSync(ctx, w.cfg.ProviderSyncInterval)
	if err != nil || len(ids) == 0 {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	params := make([]river.InsertManyParams, 0, len(ids))
	for _, id := range ids {
		params = append(params, river.InsertManyParams{Args: ProviderSyncArgs{ConnectionID: id}, InsertOpts: &river.InsertOpts{
			// A failed sync is recorded on the connection and retried at
			// the next interval, not hammered.
			MaxAttempts: 1,
			UniqueOpts:  river.UniqueOpts{ByArgs: true, ByPeriod: w.cfg.ProviderSyncInterval},
		}})
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue %d provider syncs: %w", len(ids), err)
	}
	return nil
}

type providerSyncWorker struct {
	river.WorkerDefaults[ProviderSyncArgs]
	s   *Store
	cfg JobsConfig
}

func (w *providerSyncWorker) Work(ctx context.Context, job *river.Job[ProviderSyncArgs]) error {
	if w.cfg.ProviderAdmin == nil {
		return nil
	}
	_, err := w.s.SyncProviderConnection(ctx, keyledger.SystemActor("scheduler"), w.cfg.ProviderAdmin, job.Args.ConnectionID)
	if err == nil {
		err = w.s.afterProviderSync(ctx, w.cfg, job.Args.ConnectionID)
	}
	switch {
	case keyledger.ErrorCode(err) == keyledger.ENOTFOUND:
		return nil // removed since it was enqueued
	case keyledger.ProviderAdminErrorKindOf(err) != "":
		// The provider's answer is on the connection and in the audit
		// log; River's error list would only repeat it.
		w.cfg.Logger.WarnContext(ctx, "provider sync failed", "connection", job.Args.ConnectionID, "kind", keyledger.ProviderAdminErrorKindOf(err))
		return nil
	}
	return err
}

// Timeout leaves room for paging through a large organization.
func (w *providerSyncWorker) Timeout(*river.Job[ProviderSyncArgs]) time.Duration {
	return 10 * time.Minute
}

// ProviderRotateScanArgs ends rotations at the provider whose grace
// period is over (revoking the old key there) and enqueues one automated
// rotation per key that is due.
type ProviderRotateScanArgs struct{}

// Kind names the job in River's tables.
func (ProviderRotateScanArgs) Kind() string { return "keyledger.provider_rotate_scan" }

// ProviderRotateArgs rotates one key at its provider.
type ProviderRotateArgs struct {
	KeyID string `json:"key_id"`
}

// Kind names the job in River's tables.
func (ProviderRotateArgs) Kind() string { return "keyledger.provider_rotate" }

type providerRotateScanWorker struct {
	river.WorkerDefaults[ProviderRotateScanArgs]
	s   *Store
	cfg JobsConfig
}

func (w *providerRotateScanWorker) Work(ctx context.Context, job *river.Job[ProviderRotateScanArgs]) error {
	if w.cfg.ProviderAdmin == nil {
		return nil
	}
	// A failed revoke is audited and on the key's page; it is tried again
	// at the next scan, so the scan itself goes on.
	if _, err := w.s.RevokeRotatedAway(ctx, w.cfg.ProviderAdmin); err != nil {
		w.cfg.Logger.WarnContext(ctx, "revoke after rotation at provider", "error", err)
	}
	ids, err := w.s.KeysToRotateAtProvider(ctx, 100)
	if err != nil || len(ids) == 0 {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	params := make([]river.InsertManyParams, 0, len(ids))
	for _, id := range ids {
		params = append(params, river.InsertManyParams{Args: ProviderRotateArgs{KeyID: id}, InsertOpts: &river.InsertOpts{
			// A failure is recorded on the key and tried again after
			// ProviderRotateRetry: never two rotations of a key at once,
			// never River's quick retries against a provider that said 429.
			MaxAttempts: 1,
			UniqueOpts:  river.UniqueOpts{ByArgs: true, ByPeriod: ProviderRotateRetry},
		}})
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue %d rotations at provider: %w", len(ids), err)
	}
	return nil
}

type providerRotateWorker struct {
	river.WorkerDefaults[ProviderRotateArgs]
	s   *Store
	cfg JobsConfig
}

func (w *providerRotateWorker) Work(ctx context.Context, job *river.Job[ProviderRotateArgs]) error {
	if w.cfg.ProviderAdmin == nil {
		return nil
	}
	_, err := w.s.AutoRotateKey(ctx, w.cfg.ProviderAdmin, job.Args.KeyID)
	if code := keyledger.ErrorCode(err); err != nil && code != keyledger.EINTERNAL {
		// Recorded on the key's page and in the audit log (or the key is
		// gone, or rotation was turned off since): nothing for River.
		w.cfg.Logger.WarnContext(ctx, "rotation at provider did not happen", "key", job.Args.KeyID, "code", code)
		return nil
	}
	return err
}

// Timeout leaves room for the provider's own 20 s.
func (w *providerRotateWorker) Timeout(*river.Job[ProviderRotateArgs]) time.Duration {
	return time.Minute
}

// ValueAlertsArgs sends pending value alerts (see SendValueAlerts): a
// key's value offered by someone outside its reveal policy. Every minute,
// not with the daily reminders: it is news about a possible leak.
type ValueAlertsArgs struct{}

// Kind names the job.
func (ValueAlertsArgs) Kind() string { return "keyledger.value_alerts" }

// notifyWorker runs one of the store's senders (reminders, account
// alerts, value alerts). Without a notifier configured there is no
// channel: what would have been sent stays in the audit log.
type notifyWorker[A river.JobArgs] struct {
	river.WorkerDefaults[A]
	cfg  JobsConfig
	send func(context.Context, keyledger.Notifier, keyledger.Links) (int, error)
}

func (w *notifyWorker[A]) Work(ctx context.Context, _ *river.Job[A]) error {
	if w.cfg.Notifier == nil {
		return nil
	}
	_, err := w.send(ctx, w.cfg.Notifier, w.cfg.Links)
	return err
}

// NewJobs returns a River client with keyledger's workers and periodic
// jobs. Start it with Start and stop it with Stop.
func (s *Store) NewJobs(cfg JobsConfig) (*river.Client[pgx.Tx], error) {
	if cfg.VerifyInterval <= 0 {
		cfg.VerifyInterval = 24 * time.Hour
	}
	if cfg.VerifyConcurrency <= 0 {
		cfg.VerifyConcurrency = 4
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = 15 * time.Minute
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Hour
	}
	if cfg.ProviderSyncInterval <= 0 {
		cfg.ProviderSyncInterval = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &verifyScanWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &verifyKeyWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &destroyWorker{s: s})
	river.AddWorker(workers, &notifyWorker[RemindArgs]{cfg: cfg, send: s.SendReminders})
	river.AddWorker(workers, &notifyWorker[AccountAlertArgs]{cfg: cfg, send: s.SendAccountAlerts})
	river.AddWorker(workers, &checkpointWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &notifyWorker[ValueAlertsArgs]{cfg: cfg, send: s.SendValueAlerts})
	river.AddWorker(workers, &providerSyncScanWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &providerSyncWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &providerRotateScanWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &providerRotateWorker{s: s, cfg: cfg})
	river.AddWorker(workers, &notifyWorker[LeakAlertsArgs]{cfg: cfg, send: s.SendLeakAlerts})
	periodic := func(every time.Duration, args river.JobArgs) *river.PeriodicJob {
		return river.NewPeriodicJob(river.PeriodicInterval(every),
			func() (river.JobArgs, *river.InsertOpts) { return args, nil },
			&river.PeriodicJobOpts{RunOnStart: true})
	}
	client, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{
		Logger: cfg.Logger,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 2},
			QueueVerify:        {MaxWorkers: cfg.VerifyConcurrency},
		},
		Workers: workers,
		PeriodicJobs: []*river.PeriodicJob{
			periodic(cfg.ScanInterval, VerifyScanArgs{}),
			periodic(min(cfg.ScanInterval, 10*time.Minute), DestroyVersionsArgs{}),
			periodic(min(cfg.ScanInterval, time.Hour), RemindArgs{}),
			// An attack is news for minutes, not hours.
			periodic(min(cfg.ScanInterval, time.Minute), AccountAlertArgs{}),
			periodic(cfg.CheckpointInterval, AuditCheckpointArgs{}),
			periodic(min(cfg.ScanInterval, time.Minute), ValueAlertsArgs{}),
			// Scanned more often than the interval, so a new connection
			// or a shortened interval is picked up soon.
			periodic(min(cfg.ScanInterval, cfg.ProviderSyncInterval, 10*time.Minute), ProviderSyncScanArgs{}),
			// Rotations at the provider that are due, and old keys there
			// whose grace period is over.
			periodic(min(cfg.ScanInterval, 10*time.Minute), ProviderRotateScanArgs{}),
			// Opening an incident enqueues its alert at once; this retries
			// sends that failed.
			periodic(min(cfg.ScanInterval, time.Minute), LeakAlertsArgs{}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	return client, nil
}

// JobCount is how many jobs of a kind are in a state.
type JobCount struct {
	Kind  string
	State string
	Count int
	Last  *time.Time
}

// JobFailure is a recent failed attempt.
type JobFailure struct {
	ID      int64
	Kind    string
	State   string
	Attempt int
	At      *time.Time
	Error   string
}

// JobStatus summarises River's job table for `keyledger jobs`.
func (s *Store) JobStatus(ctx context.Context) ([]JobCount, []JobFailure, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, state::text, count(*), max(coalesce(finalized_at, attempted_at, scheduled_at))
		FROM river_job GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, nil, fmt.Errorf("job status: %w", err)
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobCount, error) {
		var c JobCount
		err := r.Scan(&c.Kind, &c.State, &c.Count, &c.Last)
		return c, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("job status: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT id, kind, state::text, attempt, attempted_at, coalesce(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE state IN ('retryable', 'discarded') OR (errors IS NOT NULL AND state <> 'completed')
		ORDER BY id DESC LIMIT 10`)
	if err != nil {
		return nil, nil, fmt.Errorf("job failures: %w", err)
	}
	fails, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobFailure, error) {
		var f JobFailure
		err := r.Scan(&f.ID, &f.Kind, &f.State, &f.Attempt, &f.At, &f.Error)
		return f, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("job failures: %w", err)
	}
	return counts, fails, nil
}

// JobQueueCount is how many jobs of a kind sit in a queue in a state.
type JobQueueCount struct {
	Queue string
	Kind  string
	State string
	Count int64
}

// JobQueueCounts groups River's job table by queue, kind and state, for
// the metrics endpoint.
func (s *Store) JobQueueCounts(ctx context.Context) ([]JobQueueCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT queue, kind, state::text, count(*) FROM river_job GROUP BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobQueueCount, error) {
		var c JobQueueCount
		err := r.Scan(&c.Queue, &c.Kind, &c.State, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}
