package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

// Paging limits of List.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Caller is who asks, as the gateway authenticated them.
type Caller struct {
	UserID string
	Role   string
}

// ListQuery pages through a customer's notifications.
type ListQuery struct {
	// Limit is the page size (0: DefaultPageSize).
	Limit int
	// Before is the id of the last notification of the previous page.
	Before string
}

// ListResult is one page, newest first. Next is the Before of the next page,
// empty on the last page.
type ListResult struct {
	Items []*domain.Notification
	Next  string
}

// InvalidQueryError names a bad paging parameter.
type InvalidQueryError struct{ Field, Message string }

func (e *InvalidQueryError) Error() string { return e.Field + ": " + e.Message }

// List returns the caller's own notifications, newest first. Staff alerts
// belong to no customer and never appear.
func (s *Service) List(ctx context.Context, c Caller, q ListQuery) (ListResult, error) {
	if c.UserID == "" {
		return ListResult{}, ErrUnauthenticated
	}
	if q.Limit == 0 {
		q.Limit = DefaultPageSize
	}
	if q.Limit < 1 || q.Limit > MaxPageSize {
		return ListResult{}, &InvalidQueryError{"limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize)}
	}
	if q.Before != "" {
		if _, err := uuid.Parse(q.Before); err != nil {
			return ListResult{}, &InvalidQueryError{"before", "must be a notification id"}
		}
	}
	if _, err := uuid.Parse(c.UserID); err != nil {
		return ListResult{}, nil // no notification belongs to a malformed id
	}
	items, err := s.store.List(ctx, c.UserID, q.Before, q.Limit+1)
	if err != nil {
		return ListResult{}, fmt.Errorf("list notifications of %s: %w", c.UserID, err)
	}
	res := ListResult{Items: items}
	if len(items) > q.Limit {
		res.Items = items[:q.Limit]
		res.Next = res.Items[q.Limit-1].ID()
	}
	return res, nil
}
