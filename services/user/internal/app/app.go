// Package app holds the user service's use cases (register, log in, change
// the default address, deactivate, create an administrator), one per file.
// It checks who may do what, drives the domain, and decides which events each
// change publishes; storage and transactions belong to the Repository.
// It must not know HTTP or SQL.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// Errors about the caller; the transport maps them to 401 and 403.
var (
	ErrUnauthenticated = errors.New("authentication required")
	ErrForbidden       = errors.New("administrator role required")
	ErrSelfDeactivate  = errors.New("administrators cannot deactivate their own account")
)

// UpdateFunc changes a loaded user and returns the events to publish with
// the change. Returning an error stores nothing.
type UpdateFunc func(u *domain.User) ([]outbox.Event, error)

// Repository stores accounts. Each method is one transaction that writes the
// account and its events to the outbox together.
type Repository interface {
	// Add stores a new account and events; ErrEmailTaken when the email is
	// already registered.
	Add(ctx context.Context, u *domain.User, events ...outbox.Event) error
	// Update loads the account (ErrNotFound), calls fn, and stores the
	// result with the events fn returns.
	Update(ctx context.Context, id domain.UserID, fn UpdateFunc) error
	// UpdateByEmail is Update by login email.
	UpdateByEmail(ctx context.Context, email domain.Email, fn UpdateFunc) error
	// ByEmail returns the account with the email, or ErrNotFound.
	ByEmail(ctx context.Context, email domain.Email) (*domain.User, error)
	// ByID returns the account, or ErrNotFound.
	ByID(ctx context.Context, id domain.UserID) (*domain.User, error)
}

// TokenIssuer signs access tokens (auth.Issuer).
type TokenIssuer interface {
	Issue(userID, role string, now time.Time) (token string, expiresAt time.Time, err error)
}

// Caller is who makes a request, as the gateway authenticated them. A zero
// Caller is anonymous.
type Caller struct {
	UserID string
	Role   string
}

// Service is the user service's use cases.
type Service struct {
	repo   Repository
	hasher *domain.Hasher
	tokens TokenIssuer
	now    func() time.Time
	newID  func() string
}

// NewService wires the use cases. now and newID default to time.Now and
// outbox.NewID.
func NewService(repo Repository, hasher *domain.Hasher, tokens TokenIssuer, now func() time.Time, newID func() string) (*Service, error) {
	if repo == nil || hasher == nil || tokens == nil {
		return nil, errors.New("user service: repository, hasher and token issuer are required")
	}
	if now == nil {
		now = time.Now
	}
	if newID == nil {
		newID = outbox.NewID
	}
	return &Service{repo: repo, hasher: hasher, tokens: tokens, now: now, newID: newID}, nil
}

// authenticated returns the caller's user id, or ErrUnauthenticated.
func authenticated(c Caller) (domain.UserID, error) {
	if c.UserID == "" {
		return "", ErrUnauthenticated
	}
	id, err := domain.ParseUserID(c.UserID)
	if err != nil {
		// The gateway only forwards ids it issued tokens for; anything else
		// is not an identity this service knows.
		return "", fmt.Errorf("%w: malformed user id", ErrUnauthenticated)
	}
	return id, nil
}

// admin returns the caller's id if they are an administrator.
func admin(c Caller) (domain.UserID, error) {
	id, err := authenticated(c)
	if err != nil {
		return "", err
	}
	if c.Role != string(domain.RoleAdmin) {
		return "", ErrForbidden
	}
	return id, nil
}
