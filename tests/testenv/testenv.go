// Package testenv gives adapter, component and end-to-end tests real
// infrastructure: a fresh PostgreSQL database or RabbitMQ virtual host on the
// shared local platform, or a private PostgreSQL cluster or RabbitMQ node that
// a test may stop, kill and restart without disturbing tests running beside it.
//
// The shared servers are found through, in order,
// SHOPMESH_TEST_POSTGRES_URL / SHOPMESH_POSTGRES_URL,
// SHOPMESH_TEST_AMQP_URL / SHOPMESH_AMQP_URL and SHOPMESH_AMQP_MANAGEMENT_URL,
// and, for any of them unset, <repo root>/.run/env as written by
// deploy/local/platform.sh. All URLs carry administrator credentials.
//
// A test whose infrastructure is missing or unreachable fails with a message
// saying how to start it (`make up`); it is never skipped, so a green run
// always means the tests ran. Every wait is a poll bounded by a deadline.
// This package is for tests only: production code must not import it.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startHint ends every message about missing infrastructure.
const startHint = "start the local platform with `make up` (or deploy/local/platform.sh up), " +
	"or point SHOPMESH_POSTGRES_URL, SHOPMESH_AMQP_URL and SHOPMESH_AMQP_MANAGEMENT_URL at running servers"

// opTimeout bounds each single administrative operation (connect, create,
// drop, one HTTP call).
const opTimeout = 30 * time.Second

// config holds the administrator URLs of the shared servers.
type config struct {
	postgresURL   string
	amqpURL       string
	managementURL string
}

// loadConfig reads the environment and, for what it lacks, <root>/.run/env.
func loadConfig() config {
	var file map[string]string
	lookup := func(names ...string) string {
		for _, n := range names {
			if v := os.Getenv(n); v != "" {
				return v
			}
		}
		if file == nil {
			file = readEnvFile()
		}
		return file[names[len(names)-1]]
	}
	return config{
		postgresURL:   lookup("SHOPMESH_TEST_POSTGRES_URL", "SHOPMESH_POSTGRES_URL"),
		amqpURL:       lookup("SHOPMESH_TEST_AMQP_URL", "SHOPMESH_AMQP_URL"),
		managementURL: lookup("SHOPMESH_AMQP_MANAGEMENT_URL"),
	}
}

// readEnvFile parses <repo root>/.run/env, or returns an empty map.
func readEnvFile() map[string]string {
	vars := map[string]string{}
	root, err := RepoRoot()
	if err != nil {
		return vars
	}
	f, err := os.Open(filepath.Join(root, ".run", "env"))
	if err != nil {
		return vars
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vars[strings.TrimSpace(name)] = unquote(value)
	}
	return vars
}

// unquote undoes the shell quoting platform.sh writes: single-quoted
// segments, double-quoted segments and backslash escapes, concatenated.
func unquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				b.WriteString(s[i+1:])
				return b.String()
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// AdminPostgresURL returns the URL of the shared PostgreSQL cluster's
// administrator (a superuser), connected to database postgres. It fails the
// test when the cluster is not configured or does not answer.
func AdminPostgresURL(t testing.TB) string {
	t.Helper()
	u := configuredPostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn := connectPostgres(ctx, t, u)
	_ = conn.Close(ctx)
	return u
}

func configuredPostgresURL(t testing.TB) string {
	t.Helper()
	u := loadConfig().postgresURL
	if u == "" {
		t.Fatalf("testenv: no PostgreSQL configured (SHOPMESH_POSTGRES_URL, .run/env); %s", startHint)
	}
	return u
}

// connectPostgres opens an administrative connection or fails the test.
func connectPostgres(ctx context.Context, t testing.TB, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL at %s is not reachable: %v; %s", redact(u), err, startHint)
	}
	return conn
}

// NewDatabase creates an empty database named after the test (t_<name>_<random>)
// on the shared cluster and returns an administrator URL for it. The database
// is dropped, with any connections still open, when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := configuredPostgresURL(t)
	name := UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn := connectPostgres(ctx, t, admin)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: parse PostgreSQL URL: %v", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// UniqueName is a name for a server object the test creates (a role, a
// database, a vhost): t_<test name>_<random>, at most 63 characters of
// [a-z0-9_], so it needs no quoting in SQL and says which test left it.
func UniqueName(t testing.TB) string {
	return uniqueName(t.Name())
}

// maxNameLen is PostgreSQL's identifier limit (NAMEDATALEN-1).
const maxNameLen = 63

// uniqueName turns a test name into t_<sanitized name>_<8 random hex digits>,
// at most 63 characters of [a-z0-9_], usable as a database or vhost name.
func uniqueName(testName string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(testName) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	suffix := "_" + randomHex(4)
	s := strings.Trim(b.String(), "_")
	if limit := maxNameLen - len("t_") - len(suffix); len(s) > limit {
		s = strings.TrimRight(s[:limit], "_")
	}
	return "t_" + s + suffix
}

// randomHex returns n random bytes as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// redact hides the password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
