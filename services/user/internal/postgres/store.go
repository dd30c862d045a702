// Package postgres stores the user service's accounts in PostgreSQL. It owns
// the transactions: each method writes the account and the events the use
// case returned to the outbox in one transaction, then wakes the relay.
// It must not decide anything about accounts.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/app"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// Store is the user service's Repository on PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
	now    func() time.Time
}

var _ app.Repository = (*Store)(nil)

// New returns a Store writing events through ob.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *Store {
	return &Store{pool: pool, outbox: ob, now: time.Now}
}

// uniqueViolation is PostgreSQL's SQLSTATE for a unique constraint.
const uniqueViolation = "23505"

// Add inserts a new account and publishes events with it.
func (s *Store) Add(ctx context.Context, u *domain.User, events ...outbox.Event) error {
	err := s.outbox.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		row := toRow(u)
		_, err := tx.Exec(ctx, `
			INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at, deactivated_at, deactivation_reason)
			VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)`,
			row.id, row.email, row.name, row.passwordHash, row.role, row.createdAt, row.deactivatedAt, row.reason)
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == "users_email_key" {
				return domain.ErrEmailTaken
			}
			return fmt.Errorf("insert user: %w", err)
		}
		if err := writeAddress(ctx, tx, u, s.now()); err != nil {
			return err
		}
		return s.outbox.Publish(ctx, tx, events...)
	})
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.ID(), err)
	}
	return nil
}

// Update loads the account by id for update, applies fn and stores the
// result with fn's events.
func (s *Store) Update(ctx context.Context, id domain.UserID, fn app.UpdateFunc) error {
	return s.update(ctx, "u.id = $1", id.String(), fn)
}

// UpdateByEmail loads the account by email for update, applies fn and stores
// the result with fn's events.
func (s *Store) UpdateByEmail(ctx context.Context, email domain.Email, fn app.UpdateFunc) error {
	return s.update(ctx, "u.email = $1", email.String(), fn)
}

func (s *Store) update(ctx context.Context, where string, key string, fn app.UpdateFunc) error {
	err := s.outbox.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, selectUser+" WHERE "+where+" FOR UPDATE OF u", key))
		if err != nil {
			return err
		}
		events, err := fn(u)
		if err != nil {
			return err
		}
		row := toRow(u)
		now := s.now()
		if _, err := tx.Exec(ctx, `
			UPDATE users SET name = $2, password_hash = $3, role = $4, deactivated_at = $5,
			       deactivation_reason = $6, updated_at = $7
			WHERE id = $1`,
			row.id, row.name, row.passwordHash, row.role, row.deactivatedAt, row.reason, now); err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if err := writeAddress(ctx, tx, u, now); err != nil {
			return err
		}
		return s.outbox.Publish(ctx, tx, events...)
	})
	if err != nil {
		return fmt.Errorf("update user %s: %w", key, err)
	}
	return nil
}

// ByEmail returns the account with the login email.
func (s *Store) ByEmail(ctx context.Context, email domain.Email) (*domain.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, selectUser+" WHERE u.email = $1", email.String()))
	if err != nil {
		return nil, fmt.Errorf("user by email: %w", err)
	}
	return u, nil
}

// ByID returns the account.
func (s *Store) ByID(ctx context.Context, id domain.UserID) (*domain.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, selectUser+" WHERE u.id = $1", id.String()))
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

const selectUser = `
	SELECT u.id::text, u.email, u.name, u.password_hash, u.role, u.created_at, u.deactivated_at, u.deactivation_reason,
	       a.name, a.line1, a.line2, a.city, a.postal_code, a.country
	FROM users u LEFT JOIN user_addresses a ON a.user_id = u.id`

// row is the users table's view of a domain.User.
type row struct {
	id, email, name, passwordHash, role, reason string
	createdAt                                   time.Time
	deactivatedAt                               *time.Time
}

func toRow(u *domain.User) row {
	r := row{
		id: u.ID().String(), email: u.Email().String(), name: u.Name().String(),
		passwordHash: string(u.PasswordHash()), role: u.Role().String(),
		reason: u.DeactivationReason(), createdAt: u.CreatedAt(),
	}
	if !u.Active() {
		t := u.DeactivatedAt()
		r.deactivatedAt = &t
	}
	return r
}

func scanUser(r pgx.Row) (*domain.User, error) {
	var (
		ur                                              row
		aName, aLine1, aLine2, aCity, aPostal, aCountry *string
	)
	err := r.Scan(&ur.id, &ur.email, &ur.name, &ur.passwordHash, &ur.role, &ur.createdAt, &ur.deactivatedAt, &ur.reason,
		&aName, &aLine1, &aLine2, &aCity, &aPostal, &aCountry)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	return toDomain(ur, aName, aLine1, aLine2, aCity, aPostal, aCountry)
}

func toDomain(r row, aName, aLine1, aLine2, aCity, aPostal, aCountry *string) (*domain.User, error) {
	var addr *domain.Address
	if aName != nil {
		a, err := domain.NewAddress(*aName, *aLine1, *aLine2, *aCity, *aPostal, *aCountry)
		if err != nil {
			return nil, fmt.Errorf("stored address of user %s: %w", r.id, err)
		}
		addr = &a
	}
	var deactivatedAt time.Time
	if r.deactivatedAt != nil {
		deactivatedAt = *r.deactivatedAt
	}
	return domain.UserFromDatabase(r.id, r.email, r.name, r.passwordHash, r.role, addr, r.createdAt, deactivatedAt, r.reason)
}

// writeAddress stores the account's default address, if it has one.
func writeAddress(ctx context.Context, tx pgx.Tx, u *domain.User, now time.Time) error {
	a, ok := u.Address()
	if !ok {
		return nil
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO user_addresses (user_id, name, line1, line2, city, postal_code, country, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (user_id) DO UPDATE SET name = $2, line1 = $3, line2 = $4, city = $5,
			postal_code = $6, country = $7, updated_at = $8
		WHERE (user_addresses.name, user_addresses.line1, user_addresses.line2, user_addresses.city,
		       user_addresses.postal_code, user_addresses.country) IS DISTINCT FROM ($2, $3, $4, $5, $6, $7)`,
		u.ID().String(), a.Name(), a.Line1(), a.Line2(), a.City(), a.PostalCode(), a.Country(), now)
	if err != nil {
		return fmt.Errorf("store address: %w", err)
	}
	return nil
}
