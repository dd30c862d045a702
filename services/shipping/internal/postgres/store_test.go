package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
	"github.com/shopmesh/shopmesh/services/shipping/internal/postgres"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// A pass over due shipments applies each under its own savepoint: the one
// whose step fails is rolled back alone and stays due, the others are
// written, and the pass commits.
func TestADueShipmentThatFailsIsRolledBackAlone(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, ob := servicetest.StoreDatabase(ctx, t, "shipping", shipping.Migrations)
	store := postgres.NewStore(pool, ob)
	now := time.Now().UTC().Truncate(time.Microsecond)
	orders := []string{
		"0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c01", "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c02", "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c03",
	}
	for i, orderID := range orders {
		err := store.Update(ctx, orderID, func(*domain.Shipment) (*domain.Shipment, []outbox.Event, error) {
			s, err := domain.NewShipment(fmt.Sprintf("0190d6a5-8a41-7c52-b3d4-2e5f6a7b8d0%d", i), orderID,
				"0b1d3c4e-5f60-4718-8293-a4b5c6d7e8f9", "simpost",
				domain.Address{Name: "A", Line1: "1 Road", City: "Town", PostalCode: "1000", Country: "BE"},
				[]domain.Line{{ProductID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", Quantity: 1}}, now, now)
			return s, nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The second shipment's step fails on the server, after its read: a
	// shipment under a new id for the first order breaks the one shipment
	// per order rule; the transaction goes on only if that is rolled back.
	n, err := store.UpdateDue(ctx, now.Add(time.Second), 10, func(s *domain.Shipment) (*domain.Shipment, []outbox.Event, error) {
		if s.OrderID() == orders[1] {
			clash, err := domain.NewShipment("0190d6a5-8a41-7c52-b3d4-2e5f6a7b8eee", orders[0], s.UserID(), s.Carrier(),
				s.Address(), s.Lines(), now, now)
			return clash, nil, err
		}
		if err := s.Dispatch("SP-"+s.OrderID()[len(s.OrderID())-2:], now, now.Add(time.Hour)); err != nil {
			return nil, nil, err
		}
		return s, nil, nil
	})
	var pgErr *pgconn.PgError
	if n != 2 || !errors.As(err, &pgErr) || pgErr.Code != "23505" || !strings.Contains(err.Error(), orders[1]) {
		t.Fatalf("UpdateDue = %d, %v; want 2 advanced and the unique violation of %s", n, err, orders[1])
	}
	for i, orderID := range orders {
		s, err := store.Shipment(ctx, orderID)
		if err != nil {
			t.Fatal(err)
		}
		want := domain.StatusDispatched
		if i == 1 {
			want = domain.StatusCreated
		}
		if s.Status() != want {
			t.Errorf("shipment of %s is %s, want %s", orderID, s.Status(), want)
		}
	}
}
