package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shopmesh/shopmesh/internal/localserver"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// infra is the PostgreSQL and RabbitMQ one run uses: fresh databases and a
// fresh virtual host on the shared platform, or a private cluster and node
// that the run may kill and restart. Either way, everything it creates it
// removes again in close.
type infra struct {
	private bool
	// pgAdmin is a superuser URL (database postgres) of the cluster holding
	// the run's databases; amqpAdmin an administrator AMQP URL of the run's
	// virtual host.
	pgAdmin   string
	amqpAdmin string
	pg        *localserver.Postgres
	rabbit    *localserver.RabbitMQ
	mgmt      *management
	vhost     string
	databases []string
}

// platform holds the shared platform's administrator URLs.
type platform struct {
	PostgresURL   string
	AMQPURL       string
	ManagementURL string
}

func (p platform) validate() error {
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

// newSharedInfra creates a virtual host on the shared node; databases are
// created by createDatabase.
func newSharedInfra(ctx context.Context, p platform, runID string) (*infra, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if err := pingPostgres(ctx, p.PostgresURL); err != nil {
		return nil, fmt.Errorf("shared PostgreSQL at %s: %w (is the platform up? `make up`)", redact(p.PostgresURL), err)
	}
	m, err := newManagement(p.ManagementURL)
	if err != nil {
		return nil, err
	}
	in := &infra{pgAdmin: p.PostgresURL, mgmt: m, vhost: "chaos_" + runID}
	if err := m.do(ctx, http.MethodPut, "/api/vhosts/"+url.PathEscape(in.vhost), struct{}{}); err != nil {
		return nil, fmt.Errorf("create vhost %s on the shared RabbitMQ (is the platform up? `make up`): %w", in.vhost, err)
	}
	base, err := url.Parse(p.AMQPURL)
	if err != nil {
		in.close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("parse SHOPMESH_AMQP_URL: %w", err)
	}
	users := []string{m.user}
	if u := base.User.Username(); u != "" && u != m.user {
		users = append(users, u)
	}
	for _, u := range users {
		perms := map[string]string{"configure": ".*", "write": ".*", "read": ".*"}
		if err := m.do(ctx, http.MethodPut, "/api/permissions/"+url.PathEscape(in.vhost)+"/"+url.PathEscape(u), perms); err != nil {
			in.close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("permissions on vhost %s: %w", in.vhost, err)
		}
	}
	v := *base
	v.Path = "/" + in.vhost
	v.RawPath = "/" + url.PathEscape(in.vhost)
	in.amqpAdmin = v.String()
	return in, nil
}

// newPrivateInfra starts a private PostgreSQL cluster and RabbitMQ node,
// side by side, each in a new temporary directory (not under the run
// directory: the cluster's user must be able to reach it).
func newPrivateInfra(ctx context.Context, logger *slog.Logger) (*infra, error) {
	type pgResult struct {
		s   *localserver.Postgres
		err error
	}
	pgc := make(chan pgResult, 1)
	go func() {
		// Every service keeps a pool of up to 10 connections, some run twice.
		opts := localserver.PostgresOptions{
			Settings:     []string{"max_connections = 300", "shared_buffers = 64MB"},
			StartTimeout: serverStartTimeout,
		}
		s, err := startPrivate("shopmesh-chaos-pg-", func(dir string) (*localserver.Postgres, error) {
			return localserver.StartPostgres(ctx, dir, opts)
		})
		pgc <- pgResult{s, err}
	}()
	opts := localserver.RabbitMQOptions{NodePrefix: "shopmesh-c", LogLevel: "warning", StartTimeout: serverStartTimeout, Logger: logger}
	rabbit, rerr := startPrivate("shopmesh-chaos-rabbitmq-", func(dir string) (*localserver.RabbitMQ, error) {
		return localserver.StartRabbitMQ(ctx, dir, opts)
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
	return &infra{private: true, pg: pg.s, rabbit: rabbit, pgAdmin: pg.s.URL(), amqpAdmin: rabbit.URL()}, nil
}

// serverStartTimeout bounds how long a private server may take to become
// ready: longer than tests allow, as the harness boots them beside a build.
const serverStartTimeout = 90 * time.Second

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

// createDatabase creates an empty database and returns its admin URL.
func (in *infra) createDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, in.pgAdmin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	in.databases = append(in.databases, name)
	u, err := url.Parse(in.pgAdmin)
	if err != nil {
		return "", err
	}
	u.Path, u.RawPath = "/"+name, ""
	q := u.Query()
	q.Set("sslmode", "disable") // the PostgreSQL taps read the plain protocol
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pgAddr and amqpAddr are the upstream addresses the proxies forward to.
func (in *infra) pgAddr() string   { return hostOf(in.pgAdmin) }
func (in *infra) amqpAddr() string { return hostOf(in.amqpAdmin) }

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// withHost returns raw with its host replaced (a proxy's listen address).
func withHost(raw, host string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = host
	return u.String()
}

// close drops what the run created; private servers are killed and their
// files removed.
func (in *infra) close(ctx context.Context) error {
	var errs []error
	if in.private {
		if in.rabbit != nil {
			errs = append(errs, in.rabbit.Close())
		}
		if in.pg != nil {
			errs = append(errs, in.pg.Close())
		}
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if len(in.databases) > 0 {
		conn, err := pgx.Connect(ctx, in.pgAdmin)
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
		if err := in.mgmt.do(ctx, http.MethodDelete, "/api/vhosts/"+url.PathEscape(in.vhost), nil); err != nil && !errors.Is(err, errNotFound) {
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

var errNotFound = errors.New("not found")

// management is the smallest client of the RabbitMQ management API the
// harness needs: virtual hosts and permissions.
type management struct {
	base     string
	user     string
	password string
	http     *http.Client
}

func newManagement(raw string) (*management, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse management URL: %w", err)
	}
	if u.User == nil {
		return nil, fmt.Errorf("management URL %s has no credentials", u.Redacted())
	}
	pw, _ := u.User.Password()
	return &management{base: u.Scheme + "://" + u.Host, user: u.User.Username(), password: pw, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (m *management) do(ctx context.Context, method, path string, in any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(m.user, m.password)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode >= 300:
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// randomHex returns n random bytes as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
