// Package user runs the user service: accounts, credentials, default
// addresses and roles. It registers customers, logs them in by issuing the
// access tokens the gateway verifies, keeps each customer's default address,
// and lets administrators deactivate accounts, publishing user.registered.v1,
// user.address_changed.v1 and user.deactivated.v1 through its outbox. It owns
// the user database and nothing else, and consumes no events.
package user

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/auth"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/app"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
	"github.com/shopmesh/shopmesh/services/user/internal/postgres"
	"github.com/shopmesh/shopmesh/services/user/internal/transport"
)

// Name is the service's name: event source, queue prefix, version table.
const Name = "user"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the service's goose migrations, at the root of the FS.
var Migrations = servicekit.MigrationsDir(migrationFiles)

// PasswordHashing are the argon2id costs of new password hashes.
type PasswordHashing struct {
	// MemoryKiB is the memory cost. Default 19456 (19 MiB).
	MemoryKiB uint32
	// Iterations is the time cost. Default 2.
	Iterations uint32
	// Parallelism is the number of lanes. Default 1.
	Parallelism uint8
}

// Config configures the user service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// TokenSecret signs access tokens (HS256); at least 32 bytes, the same
	// secret the gateway verifies with. Required.
	TokenSecret []byte
	// TokenTTL is how long an access token is valid. Default 1h.
	TokenTTL time.Duration
	// PasswordHashing are the costs of new password hashes; zero fields take
	// the defaults.
	PasswordHashing PasswordHashing
	// MaxBodyBytes bounds a request body. Default 16 KiB.
	MaxBodyBytes int64
}

func (c Config) withDefaults() Config {
	c.Kit.Name = Name
	c.Kit.Migrations = Migrations
	if c.TokenTTL == 0 {
		c.TokenTTL = time.Hour
	}
	def := domain.DefaultHashParams()
	if c.PasswordHashing.MemoryKiB == 0 {
		c.PasswordHashing.MemoryKiB = def.MemoryKiB
	}
	if c.PasswordHashing.Iterations == 0 {
		c.PasswordHashing.Iterations = def.Iterations
	}
	if c.PasswordHashing.Parallelism == 0 {
		c.PasswordHashing.Parallelism = def.Parallelism
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 10
	}
	return c
}

func (p PasswordHashing) params() domain.HashParams {
	return domain.HashParams{MemoryKiB: p.MemoryKiB, Iterations: p.Iterations, Parallelism: p.Parallelism}
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := c.Kit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.TokenSecret) < auth.MinSecretLen {
		errs = append(errs, fmt.Errorf("user: token secret must be at least %d bytes", auth.MinSecretLen))
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("user: token TTL %s must be within [1m, 720h]", c.TokenTTL))
	}
	if err := c.PasswordHashing.params().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("user: %w", err))
	}
	if c.MaxBodyBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("user: max body %d bytes is below 1 KiB", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	logger = cfg.Kit.ServiceLogger(logger)
	logger.Info("starting", "http", cfg.Kit.HTTPAddr, "token_ttl", cfg.TokenTTL, "token_secret", "[masked]",
		"argon2_memory_kib", cfg.PasswordHashing.MemoryKiB, "argon2_iterations", cfg.PasswordHashing.Iterations)

	issuer, err := auth.NewIssuer(cfg.TokenSecret, cfg.TokenTTL)
	if err != nil {
		return err
	}
	hasher, err := domain.NewHasher(cfg.PasswordHashing.params())
	if err != nil {
		return err
	}
	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		svc, err := app.NewService(postgres.New(node.Pool, node.Outbox), hasher, issuer, time.Now, outbox.NewID)
		if err != nil {
			return nil, nil, err
		}
		return transport.NewHandler(transport.MakeEndpoints(svc), cfg.MaxBodyBytes, logger), nil, nil
	})
}

// AdminRequest asks for an administrator account.
type AdminRequest struct {
	Email, Password string
	// Name is used for a new account. Default "Administrator".
	Name string
	// PasswordHashing as in Config; zero fields take the defaults.
	PasswordHashing PasswordHashing
}

// AdminResult says what CreateAdmin did.
type AdminResult struct {
	UserID, Email string
	// Created is true for a new account (user.registered.v1 was published),
	// Promoted for an existing account that was not an administrator, and
	// PasswordReset when the existing account's password was different.
	Created, Promoted, PasswordReset bool
}

// CreateAdmin makes sure an active administrator with the given email and
// password exists in the user database at pool, which must be migrated. It
// is idempotent: a new account is created (and user.registered.v1 written
// to the outbox, which the service's relay forwards), an existing one is
// promoted and given the password; a deactivated account is refused.
func CreateAdmin(ctx context.Context, pool *pgxpool.Pool, req AdminRequest) (AdminResult, error) {
	if req.Name == "" {
		req.Name = "Administrator"
	}
	def := Config{PasswordHashing: req.PasswordHashing}.withDefaults()
	hasher, err := domain.NewHasher(def.PasswordHashing.params())
	if err != nil {
		return AdminResult{}, err
	}
	ob, err := outbox.New(Name)
	if err != nil {
		return AdminResult{}, err
	}
	// No tokens are issued here; the issuer only satisfies the dependency.
	svc, err := app.NewService(postgres.New(pool, ob), hasher, noTokens{}, time.Now, outbox.NewID)
	if err != nil {
		return AdminResult{}, err
	}
	res, err := svc.CreateAdmin(ctx, app.RegisterInput{Email: req.Email, Password: req.Password, Name: req.Name})
	if err != nil {
		return AdminResult{}, fmt.Errorf("create admin: %w", err)
	}
	if res.Created {
		// Wake a relay running in another process (LISTEN/NOTIFY).
		if _, err := pool.Exec(ctx, "SELECT pg_notify($1, '')", outbox.NotifyChannel); err != nil {
			return AdminResult{}, fmt.Errorf("create admin: wake relay: %w", err)
		}
	}
	return AdminResult{UserID: res.User.ID().String(), Email: res.User.Email().String(),
		Created: res.Created, Promoted: res.Promoted, PasswordReset: res.PasswordReset}, nil
}

type noTokens struct{}

func (noTokens) Issue(string, string, time.Time) (string, time.Time, error) {
	return "", time.Time{}, errors.New("no token issuer configured")
}
