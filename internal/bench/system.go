package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/sysrun"
)

// system is the whole of shopmesh started from the real binary for the
// orders and memory scenarios (see sysrun): fresh databases
// (bench_<id>_<label>_<svc>) and a fresh vhost (bench_<id>_<label>) on the
// shared platform, and either one OS process per service plus the gateway,
// or one `serve all` process. Unlike the chaos harness it puts no proxy in
// between: what is measured is the system, not the harness.
type system struct {
	*sysrun.System
	label string
	admin *apiclient.Client // the administrator's, after createAdmin
}

// startSystem starts a system; together runs it as one `serve all`
// process. On error everything started is removed again.
func startSystem(ctx context.Context, cfg Config, id, label string, together bool) (*system, error) {
	s, err := sysrun.Start(ctx, sysrun.Config{
		Binary:   cfg.Binary,
		Platform: sysrun.Platform{PostgresURL: cfg.PostgresURL, AMQPURL: cfg.AMQPURL, ManagementURL: cfg.ManagementURL},
		Name:     "bench_" + id + "_" + label,
		Together: together,
		Vars: map[string]string{
			"SHOPMESH_JWT_SECRET":              "bench-" + id + "-" + label + "-secret-0123456789",
			"SHOPMESH_LOG_LEVEL":               "warn",
			"SHOPMESH_GATEWAY_RATE_LIMIT":      "100000",
			"SHOPMESH_GATEWAY_RATE_BURST":      "100000",
			"SHOPMESH_INVENTORY_AUTO_RESTOCK":  "false",
			"SHOPMESH_GATEWAY_REQUEST_TIMEOUT": "10s",
		},
	})
	if err != nil {
		return nil, err
	}
	return &system{System: s, label: label}, nil
}

// createAdmin creates an administrator and logs it in: products are
// seeded through the admin API. The login is the user service's first
// password hash, whose memory stays resident: idle RSS is sampled before.
func (s *system) createAdmin(ctx context.Context, id string) (err error) {
	s.admin, err = s.Admin(ctx, "admin."+id+"."+s.label+"@bench.example.com", "bench admin password")
	return err
}

// waitQuiet waits, at most timeout, until the system has nothing left to
// do: every order ended (delivered or cancelled; shipping picks up and
// delivers on timers, seconds after confirmation) and no backlog
// (sysrun.Backlog), seen twice in a row. A load phase that starts while the
// previous one's work still drains would measure that work too. It reports
// whether the system went quiet in time; only a failure to look is an error.
func (s *system) waitQuiet(ctx context.Context, timeout time.Duration) (bool, error) {
	pools := map[string]*pgxpool.Pool{}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for svc, url := range s.Databases {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			return false, fmt.Errorf("connect to %s's database: %w", svc, err)
		}
		pools[svc] = p
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := sysrun.WaitQuiet(wctx, pools, s.AMQPURL, 250*time.Millisecond, func(ctx context.Context) (string, error) {
		var open int
		if err := pools["order"].QueryRow(ctx, `SELECT count(*) FROM orders WHERE state NOT IN ('delivered', 'cancelled')`).Scan(&open); err != nil {
			return "", fmt.Errorf("open orders: %w", err)
		}
		if open > 0 {
			return fmt.Sprintf("%d orders open", open), nil
		}
		return "", nil
	})
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return false, nil // still busy after timeout: the caller measures anyway
	}
	return err == nil, err
}

// pids returns the running processes' IDs by name.
func (s *system) pids() map[string]int { return s.PIDs() }

// close stops the processes, drops the databases and deletes the vhost.
func (s *system) close() error { return s.Close() }
