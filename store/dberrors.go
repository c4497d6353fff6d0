package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyledger/keyledger"
)

// What a failed database call tells the user. All three are 503 with
// Retry-After; they differ because the operator's fix differs: start or
// reach Postgres, find what holds the lock, free disk or memory.
var (
	errUnreachable = &keyledger.Error{Code: keyledger.EUNAVAILABLE,
		Message: "The database is not reachable right now. Please try again in a moment."}
	errBusy = &keyledger.Error{Code: keyledger.EUNAVAILABLE,
		Message: "The database is busy right now (this request waited too long for it). Please try again in a moment."}
	errOutOfResources = &keyledger.Error{Code: keyledger.EUNAVAILABLE,
		Message: "The database is out of resources (disk space, memory or connections), so nothing could be saved. Please try again later; an administrator has to free them."}
)

type trouble int

const (
	troubleNone trouble = iota
	troubleUnreachable
	troubleBusy
	troubleResources
)

// dbTrouble sorts a failed database call: out of resources (SQLSTATE class
// 53, also when connecting), unreachable (no connection, or it broke), or
// busy (it waited too long: a lock, a statement timeout, a deadline, a
// pool with no free connection). Anything else is a plain failure.
func dbTrouble(err error) trouble {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code[:2] == "53":
			// 53100 disk_full, 53200 out_of_memory, 53300
			// too_many_connections, 53400 configuration_limit_exceeded.
			return troubleResources
		case pgErr.Code[:2] == "08", pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			// Class 08: connection exception; 57P01-03: admin shutdown,
			// crash shutdown, cannot connect now.
			return troubleUnreachable
		case pgErr.Code == "55P03", pgErr.Code == "57014":
			// lock_not_available (lock_timeout), query_canceled
			// (statement_timeout, or a cancel sent when a deadline passed).
			return troubleBusy
		}
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return troubleUnreachable
	}
	// A connection that died under a query (Postgres crashed or was
	// killed, a network cut): the pool drops it and the next request gets
	// a fresh one. Whether a COMMIT in flight took effect is unknown to us,
	// as it always is when a connection breaks; the audit row is written in
	// the same transaction, so an unanswered reveal may be audited but an
	// answered one never goes unaudited.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return troubleUnreachable
	}
	// A deadline that passed on a connection that worked (connecting
	// failed above): the database answered, only not in time.
	if errors.Is(err, context.DeadlineExceeded) {
		return troubleBusy
	}
	if pgconn.SafeToRetry(err) {
		return troubleUnreachable
	}
	return troubleNone
}

// writeHealth remembers whether writes keep failing for want of resources
// (SQLSTATE class 53, e.g. a full disk), so that /readyz can say so while
// Ping still succeeds. It is fed by the requests themselves: a readiness
// probe that wrote would itself need the disk it checks, and would cost a
// write every few seconds on every replica.
type writeHealth struct {
	mu       sync.Mutex
	failures int       // class-53 failures since the last successful write
	last     time.Time // of the latest one
	cause    string
}

// Failing takes the replica out of rotation after this many class-53
// failures in a row, for failingFor after the latest: a replica that
// gets no traffic then tries again rather than staying out for good.
const (
	failingAfter = 3
	failingFor   = 30 * time.Second
)

func (w *writeHealth) failed(err error) {
	cause := "SQLSTATE class 53"
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		cause = "SQLSTATE " + pgErr.Code
		switch pgErr.Code {
		case "53100":
			cause += " disk full"
		case "53200":
			cause += " out of memory"
		case "53300":
			cause += " too many connections"
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures++
	w.last = time.Now()
	w.cause = cause
}

func (w *writeHealth) succeeded() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = 0
}

// WriteHealth is nil unless the last writes failed because the database
// is out of resources (disk, memory, connections); then it says so, for
// /readyz. It costs no query.
func (s *Store) WriteHealth() error {
	w := &s.writes
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failures < failingAfter || time.Since(w.last) > failingFor {
		return nil
	}
	// Counted are requests (mostly writes: a full disk spares reads)
	// since the last write that succeeded.
	return fmt.Errorf("database out of resources: %d requests in a row failed (%s) and no write has succeeded since", w.failures, w.cause)
}
