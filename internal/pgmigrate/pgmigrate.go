// Package pgmigrate applies embedded goose migrations to a PostgreSQL
// database through a pgx pool. Each owner of migrations (the outbox library,
// every service) keeps its own version table, so they evolve independently in
// one database. It must not contain migrations itself.
package pgmigrate

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Up applies every pending migration in fsys (files at its root) and records
// them in versionTable. A session-level advisory lock makes concurrent callers
// (several replicas starting at once) take turns.
func Up(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, versionTable string, logger *slog.Logger) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(versionTable)))
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrations for %s: %w", versionTable, err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations for %s: %w", versionTable, err)
	}
	for _, r := range results {
		if logger != nil {
			logger.Info("migration applied", "table", versionTable, "version", r.Source.Version, "duration", r.Duration)
		}
	}
	return nil
}

// lockID derives a stable advisory lock id per version table (FNV-1a, made
// non-negative).
func lockID(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name)) // never fails
	return int64(h.Sum64() >> 1)
}
