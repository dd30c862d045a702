// Package platform provisions what each service needs from the shared
// infrastructure: its own PostgreSQL role and database, and its own RabbitMQ
// user confined to the exchanges and queues named after it. Provisioning is
// idempotent, so `shopmesh migrate` and every start of `shopmesh serve` may
// run it.
//
// Service credentials are not stored anywhere: they are derived from the
// platform secret (SHOPMESH_SECRET), so every process holding the secret
// computes the same ones, and rotating the secret and provisioning again
// rotates them all.
//
// This package needs administrator credentials; it must only run in operator
// commands and in wiring, never inside a service's request or message path.
package platform

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Admin holds administrator access to the shared servers, as exported by
// deploy/local/platform.sh (.run/env).
type Admin struct {
	// PostgresURL is a superuser's URL (SHOPMESH_POSTGRES_URL). Service URLs
	// keep its host, port and query parameters.
	PostgresURL string
	// AMQPURL is an administrator's AMQP URL (SHOPMESH_AMQP_URL). Its
	// virtual host is the one services are given permissions in.
	AMQPURL string
	// ManagementURL is the RabbitMQ management API URL with administrator
	// credentials (SHOPMESH_AMQP_MANAGEMENT_URL).
	ManagementURL string
	// Secret is the key service passwords are derived from (SHOPMESH_SECRET).
	Secret string
}

// Validate reports a missing field.
func (a Admin) Validate() error {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"PostgresURL", a.PostgresURL},
		{"AMQPURL", a.AMQPURL},
		{"ManagementURL", a.ManagementURL},
		{"Secret", a.Secret},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("platform admin config: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Service describes one service to provision.
type Service struct {
	// Name is the service name, e.g. "order": lower-case letters, digits and
	// underscores, starting with a letter.
	Name string
	// ReadsFrom names the producer services whose exchanges this service
	// binds its queues to.
	ReadsFrom []string
}

// maxNameLen keeps "shopmesh_<name>" within PostgreSQL's 63-byte identifiers.
const maxNameLen = 40

func validateName(name string) error {
	ok, _ := regexp.MatchString(`^[a-z][a-z0-9_]*$`, name)
	if !ok || len(name) > maxNameLen {
		return fmt.Errorf("invalid service name %q: want lower-case letters, digits and underscores, starting with a letter, at most %d characters", name, maxNameLen)
	}
	return nil
}

// RoleName returns the PostgreSQL role, database and RabbitMQ user name of a
// service.
func RoleName(service string) string { return "shopmesh_" + service }

// password derives a service's password for one kind of server.
func (a Admin) password(kind, service string) string {
	mac := hmac.New(sha256.New, []byte(a.Secret))
	mac.Write([]byte(kind + "/" + service))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// Credentials returns the URLs a service connects with: PostgreSQL as role
// shopmesh_<name> to database shopmesh_<name>, and AMQP as user
// shopmesh_<name> in the virtual host of a.AMQPURL. Passwords are the first
// 32 hex digits of HMAC-SHA256(Secret, "postgres/<name>") and
// HMAC-SHA256(Secret, "amqp/<name>").
func (a Admin) Credentials(name string) (postgresURL, amqpURL string, err error) {
	if err := validateName(name); err != nil {
		return "", "", err
	}
	if a.Secret == "" {
		return "", "", errors.New("credentials: platform secret is empty")
	}
	pg, err := url.Parse(a.PostgresURL)
	if err != nil {
		return "", "", fmt.Errorf("parse admin PostgreSQL URL: %w", err)
	}
	pg.User = url.UserPassword(RoleName(name), a.password("postgres", name))
	pg.Path, pg.RawPath = "/"+RoleName(name), ""
	mq, err := url.Parse(a.AMQPURL)
	if err != nil {
		return "", "", fmt.Errorf("parse admin AMQP URL: %w", err)
	}
	mq.User = url.UserPassword(RoleName(name), a.password("amqp", name))
	return pg.String(), mq.String(), nil
}

// Provision makes sure each service has, creating or correcting what is
// missing or different:
//
//   - a PostgreSQL LOGIN role shopmesh_<name> (no other attributes) with the
//     derived password, owning database shopmesh_<name>, on which PUBLIC has
//     no CONNECT or TEMPORARY privilege, so no other service's role can
//     connect to it;
//   - a RabbitMQ user shopmesh_<name> without tags and with the derived
//     password, allowed in the virtual host of a.AMQPURL to configure and
//     write `shopmesh.<name>` and `shopmesh.<name>.*` (its exchange and its
//     queues) and to read those plus the exchanges `shopmesh.<producer>` of
//     the services it reads from. Publishing to the default exchange is not
//     granted.
//
// Concurrent calls are serialised by a PostgreSQL advisory lock.
func Provision(ctx context.Context, a Admin, services []Service) error {
	if err := a.Validate(); err != nil {
		return err
	}
	for _, s := range services {
		if err := validateName(s.Name); err != nil {
			return err
		}
		for _, p := range s.ReadsFrom {
			if err := validateName(p); err != nil {
				return fmt.Errorf("service %s reads from: %w", s.Name, err)
			}
		}
	}
	if err := provisionPostgres(ctx, a, services); err != nil {
		return fmt.Errorf("provision PostgreSQL: %w", err)
	}
	if err := provisionRabbitMQ(ctx, a, services); err != nil {
		return fmt.Errorf("provision RabbitMQ: %w", err)
	}
	return nil
}

// Permissions returns the RabbitMQ configure, write and read patterns of s.
func Permissions(s Service) (configure, write, read string) {
	own := `shopmesh\.` + s.Name + `(\..*)?`
	configure = "^" + own + "$"
	producers := slices.Clone(s.ReadsFrom)
	slices.Sort(producers)
	producers = slices.Compact(producers)
	if len(producers) == 0 {
		return configure, configure, configure
	}
	read = `^(` + own + `|shopmesh\.(` + strings.Join(producers, "|") + `))$`
	return configure, configure, read
}
