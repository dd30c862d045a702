// Package sysrun starts the whole of shopmesh from its binary on fresh
// infrastructure: it builds the binary, creates databases and a virtual
// host (on the shared platform through its administrator URLs and the
// RabbitMQ management API, or on a private cluster and node), migrates
// with `migrate --skip-provision`, starts `serve` processes, waits until
// they are ready, creates an administrator, and removes everything again.
// The chaos harness, the benchmarks and the system tests run on it. It must
// not know any service's internals: what it knows of them is the binary's
// command line and environment.
package sysrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/localserver"
	"github.com/shopmesh/shopmesh/internal/rabbitmgmt"
)

// Platform holds the shared platform's administrator URLs.
type Platform struct {
	PostgresURL   string // a superuser, database postgres
	AMQPURL       string // an administrator
	ManagementURL string // RabbitMQ's management API, with credentials
}

// Validate reports which URLs are missing.
func (p Platform) Validate() error {
	var missing []string
	if p.PostgresURL == "" {
		missing = append(missing, "SHOPMESH_POSTGRES_URL")
	}
	if p.AMQPURL == "" {
		missing = append(missing, "SHOPMESH_AMQP_URL")
	}
	if p.ManagementURL == "" {
		missing = append(missing, "SHOPMESH_AMQP_MANAGEMENT_URL")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not set: start the local platform with `make up` and load .run/env", strings.Join(missing, ", "))
	}
	return nil
}

// Infra is the PostgreSQL and RabbitMQ one system uses: fresh databases and
// a fresh virtual host on the shared platform, or a private cluster and
// node that the caller may kill and restart. Either way, everything it
// creates it removes again in Close.
type Infra struct {
	// PGAdmin is a superuser URL (database postgres) of the cluster holding
	// the system's databases; AMQPAdmin an administrator AMQP URL of the
	// system's virtual host.
	PGAdmin   string
	AMQPAdmin string
	// PG and Rabbit are the private servers; nil on the shared platform.
	PG     *localserver.Postgres
	Rabbit *localserver.RabbitMQ

	mgmt      *rabbitmgmt.Client
	vhost     string
	databases []string
}

// NewShared creates the virtual host vhost on the shared node and grants
// the management user and the AMQP URL's user every permission on it;
// databases are created by CreateDatabase.
func NewShared(ctx context.Context, p Platform, vhost string) (*Infra, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := pingPostgres(ctx, p.PostgresURL); err != nil {
		return nil, fmt.Errorf("shared PostgreSQL at %s: %w (is the platform up? `make up`)", Redact(p.PostgresURL), err)
	}
	m, err := rabbitmgmt.New(p.ManagementURL)
	if err != nil {
		return nil, err
	}
	in := &Infra{PGAdmin: p.PostgresURL, mgmt: m}
	if err := m.CreateVHost(ctx, vhost); err != nil {
		return nil, fmt.Errorf("on the shared RabbitMQ (is the platform up? `make up`): %w", err)
	}
	in.vhost = vhost
	base, err := url.Parse(p.AMQPURL)
	if err != nil {
		in.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("parse SHOPMESH_AMQP_URL: %w", err)
	}
	users := []string{m.User()}
	if u := base.User.Username(); u != "" && u != m.User() {
		users = append(users, u)
	}
	for _, u := range users {
		if err := m.SetPermissions(ctx, vhost, u, rabbitmgmt.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
			in.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	v := *base
	v.Path = "/" + vhost
	v.RawPath = "/" + url.PathEscape(vhost)
	in.AMQPAdmin = v.String()
	return in, nil
}

// PrivateOptions name and tune private servers.
type PrivateOptions struct {
	// Name goes into the temporary directories' names
	// (shopmesh-<Name>-pg-*, shopmesh-<Name>-rabbitmq-*).
	Name string
	// NodePrefix is the RabbitMQ node name's prefix.
	NodePrefix string
	// PostgresSettings are postgresql.conf lines.
	PostgresSettings []string
	// StartTimeout bounds each server's start.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// NewPrivate starts a private PostgreSQL cluster and RabbitMQ node, side
// by side, each in a new temporary directory (not under a run directory:
// the cluster's user must be able to reach it).
func NewPrivate(ctx context.Context, opts PrivateOptions) (*Infra, error) {
	type pgResult struct {
		s   *localserver.Postgres
		err error
	}
	pgc := make(chan pgResult, 1)
	go func() {
		o := localserver.PostgresOptions{Settings: opts.PostgresSettings, StartTimeout: opts.StartTimeout}
		s, err := startPrivate("shopmesh-"+opts.Name+"-pg-", func(dir string) (*localserver.Postgres, error) {
			return localserver.StartPostgres(ctx, dir, o)
		})
		pgc <- pgResult{s, err}
	}()
	o := localserver.RabbitMQOptions{NodePrefix: opts.NodePrefix, LogLevel: "warning", StartTimeout: opts.StartTimeout, Logger: opts.Logger}
	rabbit, rerr := startPrivate("shopmesh-"+opts.Name+"-rabbitmq-", func(dir string) (*localserver.RabbitMQ, error) {
		return localserver.StartRabbitMQ(ctx, dir, o)
	})
	pg := <-pgc
	if rerr != nil || pg.err != nil {
		if rabbit != nil {
			_ = rabbit.Close()
		}
		if pg.s != nil {
			_ = pg.s.Close()
		}
		return nil, errors.Join(rerr, pg.err)
	}
	return &Infra{PG: pg.s, Rabbit: rabbit, PGAdmin: pg.s.URL(), AMQPAdmin: rabbit.URL()}, nil
}

// startPrivate makes a temporary directory and starts a private server in
// it with start.
func startPrivate[S any](prefix string, start func(dir string) (S, error)) (S, error) {
	var zero S
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return zero, err
	}
	s, err := start(dir)
	if errors.Is(err, localserver.ErrNotInstalled) {
		return zero, fmt.Errorf("%w; run `make up` once to install the platform", err)
	}
	return s, err
}

// Private reports whether the servers are the system's own.
func (in *Infra) Private() bool { return in.PG != nil }

// CreateDatabase creates an empty database and returns its administrator
// URL (sslmode=disable: the chaos harness's PostgreSQL taps read the plain
// protocol).
func (in *Infra) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, in.PGAdmin)
	if err != nil {
		return "", fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	in.databases = append(in.databases, name)
	u, err := url.Parse(in.PGAdmin)
	if err != nil {
		return "", err
	}
	u.Path, u.RawPath = "/"+name, ""
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Close drops what the system created, with its own deadline so that a
// cancelled run still cleans up; private servers are killed and their
// files removed.
func (in *Infra) Close(ctx context.Context) error {
	var errs []error
	if in.Private() {
		if in.Rabbit != nil {
			errs = append(errs, in.Rabbit.Close())
		}
		errs = append(errs, in.PG.Close())
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute) // a starved node can take more than 30 s to delete a vhost
	defer cancel()
	if len(in.databases) > 0 {
		conn, err := pgx.Connect(ctx, in.PGAdmin)
		if err != nil {
			errs = append(errs, fmt.Errorf("drop databases: %w", err))
		} else {
			for _, db := range in.databases {
				if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
					errs = append(errs, fmt.Errorf("drop database %s: %w", db, err))
				}
			}
			conn.Close(ctx)
		}
	}
	if in.vhost != "" && in.mgmt != nil {
		if err := in.mgmt.DeleteVHost(ctx, in.vhost); err != nil && !errors.Is(err, rabbitmgmt.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete vhost %s: %w", in.vhost, err))
		}
	}
	return errors.Join(errs...)
}

func pingPostgres(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Redact returns raw with its password hidden.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
