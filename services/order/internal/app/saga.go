package app

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Saga applies what the other services tell the order service. Each call is
// one inbox-guarded transaction: the store it is given is bound to the
// transaction that claimed the message.
type Saga struct {
	orders  Orders
	machine domain.Saga
	now     func() time.Time
}

// NewSaga returns the saga's use cases on orders.
func NewSaga(orders Orders, machine domain.Saga, now func() time.Time) *Saga {
	return &Saga{orders: orders, machine: machine, now: now}
}

// Place creates the order of a checkout and announces it. The order id was
// chosen at checkout, so a checkout delivered again finds its order and
// changes nothing.
func (s *Saga) Place(ctx context.Context, p domain.Placement) error {
	o, events, err := s.machine.Place(p, s.now())
	if err != nil {
		return fmt.Errorf("place order %s: %w", p.ID, err)
	}
	if _, err := s.orders.Create(ctx, o, events); err != nil {
		return fmt.Errorf("place order %s: %w", p.ID, err)
	}
	return nil
}

// Apply moves the order as the reply demands. A reply that does not apply
// to the order's state is accepted without effect.
func (s *Saga) Apply(ctx context.Context, id domain.OrderID, r domain.Reply) error {
	err := s.orders.Update(ctx, id, func(o *domain.Order) ([]domain.Event, error) {
		return s.machine.Apply(o, r, s.now()), nil
	})
	if err != nil {
		return fmt.Errorf("apply %T to order %s: %w", r, id, err)
	}
	return nil
}
