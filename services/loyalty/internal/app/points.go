package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
)

// Paging limits of Points.
const (
	DefaultEntries = 50
	MaxEntries     = 100
)

// ErrUnauthenticated is returned to a caller without an identity.
var ErrUnauthenticated = errors.New("authentication required")

// ErrBadLimit is returned for a page size outside 1..MaxEntries.
var ErrBadLimit = errors.New("limit out of range")

// Summary is a user's loyalty standing.
type Summary struct {
	Enrolled bool
	Balance  int
	// Entries are the newest ledger entries, newest first.
	Entries []domain.Entry
}

// Points returns the caller's own balance and newest ledger entries (limit
// 0 means DefaultEntries). A user who never enrolled has a zero balance and
// no entries.
func (s *Service) Points(ctx context.Context, userID string, limit int) (Summary, error) {
	if userID == "" {
		return Summary{}, ErrUnauthenticated
	}
	if limit == 0 {
		limit = DefaultEntries
	}
	if limit < 1 || limit > MaxEntries {
		return Summary{}, ErrBadLimit
	}
	sum := Summary{Entries: []domain.Entry{}}
	if _, err := uuid.Parse(userID); err != nil {
		return sum, nil // no membership belongs to a malformed id
	}
	m, err := s.members.Member(ctx, userID)
	if errors.Is(err, domain.ErrNotFound) {
		return sum, nil
	}
	if err != nil {
		return Summary{}, fmt.Errorf("points of %s: %w", userID, err)
	}
	sum.Enrolled, sum.Balance = m.Enrolled(), m.Balance()
	if sum.Entries, err = s.members.Entries(ctx, userID, limit); err != nil {
		return Summary{}, fmt.Errorf("points of %s: %w", userID, err)
	}
	return sum, nil
}
