package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// connectTimeout bounds one attempt to reach Postgres: a one-shot command
// makes one attempt, so a host that drops packets fails within it.
const connectTimeout = 5 * time.Second

// dbAddr is host:port of a parsed connection string, for messages (never
// the user or password).
func dbAddr(cc *pgconn.Config) string {
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// dbFailure is why Postgres could not be used, as one line for the
// operator: where, what happened, and the fix. permanent failures (a
// wrong password, a missing role or database) do not go away by waiting.
type dbFailure struct {
	addr, cause, fix string
	permanent        bool
	err              error
}

func (f *dbFailure) Error() string {
	return fmt.Sprintf("database at %s: %s; %s", f.addr, f.cause, f.fix)
}

func (f *dbFailure) Unwrap() error { return f.err }

// describeDBError sorts a failure to connect or ping. Postgres error codes
// decide, not message text; the server's message is shown as it names the
// role or database and holds no password.
func describeDBError(cc *pgconn.Config, err error) *dbFailure {
	f := &dbFailure{addr: dbAddr(cc), err: err,
		fix: "check the host and port in KEYLEDGER_DATABASE_URL and that Postgres is running there"}
	var pgErr *pgconn.PgError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "3D000": // invalid_catalog_name
		f.cause = pgErr.Message
		f.fix = "run 'keyledger bootstrap' to create it, or point KEYLEDGER_DATABASE_URL at an existing database"
		f.permanent = true
	case errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000"):
		// invalid_password; invalid_authorization_specification (no such
		// role, or pg_hba.conf refuses it).
		f.cause = pgErr.Message
		f.fix = "check the user and password in KEYLEDGER_DATABASE_URL (not shown)"
		f.permanent = true
	case errors.As(err, &pgErr):
		f.cause = pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &dnsErr):
		f.cause = "no such host"
		if !dnsErr.IsNotFound {
			f.cause = "cannot look up the host: " + dnsErr.Err
		}
		f.fix = "check the host in KEYLEDGER_DATABASE_URL"
		f.permanent = dnsErr.IsNotFound
	case errors.Is(err, syscall.ECONNREFUSED):
		f.cause = "connection refused (nothing listens on that port)"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		f.cause = fmt.Sprintf("no answer within %s (a wrong host, or a firewall dropping the connection)", connectTimeout)
	default:
		f.cause = innermost(err).Error()
	}
	return f
}

// innermost is the last error in err's chain, which names the cause
// without the connection string around it.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
