package platform

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// provisionLockKey is the advisory lock key serialising provisioning runs
// (role DDL run concurrently fails with "tuple concurrently updated").
const provisionLockKey = 0x73686f706d657368 // "shopmesh"

func provisionPostgres(ctx context.Context, a Admin, services []Service) error {
	conn, err := pgx.Connect(ctx, a.PostgresURL)
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer func() {
		// Closing the connection releases the advisory lock as well.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(provisionLockKey)); err != nil {
		return fmt.Errorf("take provisioning lock: %w", err)
	}
	for _, s := range services {
		if err := ensureRole(ctx, conn, RoleName(s.Name), a.password("postgres", s.Name)); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		if err := ensureDatabase(ctx, conn, RoleName(s.Name)); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	return nil
}

// ensureRole creates role as a plain LOGIN role with password, or brings an
// existing one back to that.
func ensureRole(ctx context.Context, conn *pgx.Conn, role, password string) error {
	var (
		stored  *string
		special bool
	)
	err := conn.QueryRow(ctx, `
		SELECT rolpassword,
		       rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin
		FROM pg_authid WHERE rolname = $1`, role).Scan(&stored, &special)
	ident := pgx.Identifier{role}.Sanitize()
	// DDL takes no parameters; the password is hex, quoted all the same.
	attrs := "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD " + quoteLiteral(password)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, "CREATE ROLE "+ident+" "+attrs); err != nil {
			return fmt.Errorf("create role %s: %w", role, err)
		}
	case err != nil:
		return fmt.Errorf("look up role %s: %w", role, err)
	case special || stored == nil || !scramMatches(*stored, password):
		if _, err := conn.Exec(ctx, "ALTER ROLE "+ident+" "+attrs); err != nil {
			return fmt.Errorf("alter role %s: %w", role, err)
		}
	}
	return nil
}

// ensureDatabase creates database name owned by the role of the same name,
// or hands an existing one to it, and takes PUBLIC's CONNECT and TEMPORARY
// privileges away so only its owner (and superusers) can use it.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var owner string
	var public bool
	err := conn.QueryRow(ctx, `
		SELECT pg_get_userbyid(datdba),
		       has_database_privilege('public', oid, 'CONNECT') OR has_database_privilege('public', oid, 'TEMPORARY')
		FROM pg_database WHERE datname = $1`, name).Scan(&owner, &public)
	ident := pgx.Identifier{name}.Sanitize()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" OWNER "+ident); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
		public = true // new databases grant PUBLIC both
	case err != nil:
		return fmt.Errorf("look up database %s: %w", name, err)
	case owner != name:
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" OWNER TO "+ident); err != nil {
			return fmt.Errorf("change owner of database %s: %w", name, err)
		}
	}
	if public {
		if _, err := conn.Exec(ctx, "REVOKE CONNECT, TEMPORARY ON DATABASE "+ident+" FROM PUBLIC"); err != nil {
			return fmt.Errorf("revoke public access to database %s: %w", name, err)
		}
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// scramMatches reports whether a pg_authid.rolpassword SCRAM-SHA-256 verifier
// ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>") was made from
// password (RFC 5802). Any other format does not match, so it gets replaced.
func scramMatches(verifier, password string) bool {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return false
	}
	storedText, _, ok := strings.Cut(keys, ":")
	if !ok {
		return false
	}
	iter, err := strconv.Atoi(iterText)
	if err != nil || iter <= 0 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil {
		return false
	}
	stored, err := base64.StdEncoding.DecodeString(storedText)
	if err != nil {
		return false
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, salted)
	mac.Write([]byte("Client Key"))
	clientKey := sha256.Sum256(mac.Sum(nil))
	return hmac.Equal(clientKey[:], stored)
}
