package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// cpuMeter reads, from /proc, the CPU time (user + system) of the server
// and of the Postgres backends connected to the load database. On a
// machine shared with other work, latency swings with the neighbours'
// load, but the CPU a request costs barely does; it is what decides how
// many requests two quiet cores can answer.
type cpuMeter struct {
	serverPID int
	conn      *pgx.Conn // lists the backends; its own backend is left out
	db        string
}

// cpuSample is CPU time by process id (-1: the server).
type cpuSample map[int]time.Duration

func newCPUMeter(ctx context.Context, dbURL, db string, serverPID int) (*cpuMeter, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", serverPID)); err != nil {
		return nil, fmt.Errorf("no /proc here: %w", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{serverPID: serverPID, conn: conn, db: db}, nil
}

func (m *cpuMeter) close() { _ = m.conn.Close(context.Background()) }

func (m *cpuMeter) sample(ctx context.Context) cpuSample {
	s := cpuSample{}
	if d, ok := procCPU(m.serverPID); ok {
		s[-1] = d
	}
	rows, err := m.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", m.db)
	if err != nil {
		return s
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return s
	}
	for _, pid := range pids {
		if d, ok := procCPU(int(pid)); ok {
			s[int(pid)] = d
		}
	}
	return s
}

// since is the server's and the backends' CPU between before and s; a
// backend that started in between counts from zero.
func (s cpuSample) since(before cpuSample) (server, pg time.Duration) {
	for pid, d := range s {
		if pid == -1 {
			server = d - before[-1]
			continue
		}
		pg += d - before[pid]
	}
	return server, pg
}

// procCPU is utime + stime of a process, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from after the last ')'. utime and stime are fields 14 and
	// 15, in clock ticks (USER_HZ, 100 on Linux).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}
