package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Page limits.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// ErrBadPageSize is a page size outside 1..MaxPageSize.
var ErrBadPageSize = errors.New("page size out of range")

// ListQuery asks for one page of a customer's orders.
type ListQuery struct {
	// Limit is the page size, 1 to MaxPageSize (0 means DefaultPageSize).
	Limit int
	// After continues from the previous page's Next; nil starts at the newest.
	After *Cursor
}

// ListResult is one page, newest first. Next is nil on the last page.
type ListResult struct {
	Orders []*domain.Order
	Next   *Cursor
}

// List returns a page of the user's own orders, newest first.
func (s *Service) List(ctx context.Context, user domain.UserID, q ListQuery) (ListResult, error) {
	limit := q.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return ListResult{}, fmt.Errorf("page size %d: %w", q.Limit, ErrBadPageSize)
	}
	// One more than asked tells whether another page follows.
	orders, err := s.reader.ListByUser(ctx, user, q.After, limit+1)
	if err != nil {
		return ListResult{}, fmt.Errorf("list orders of %s: %w", user, err)
	}
	res := ListResult{Orders: orders}
	if len(orders) > limit {
		res.Orders = orders[:limit]
		last := res.Orders[limit-1]
		res.Next = &Cursor{PlacedAt: last.PlacedAt(), ID: last.ID()}
	}
	return res, nil
}
