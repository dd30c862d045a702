package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/services/order"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
	"github.com/shopmesh/shopmesh/services/order/internal/postgres"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// A change of an order is written with its transaction's COMMIT, too late
// for a check on the client; the server refuses it when the stored
// revision is no longer the one the change was made from, and the whole
// transaction (state, timeline, events) is rolled back. Without the
// interference the same change commits.
func TestAnUpdateFromAStaleRevisionFailsOnTheServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, ob := servicetest.StoreDatabase(ctx, t, "order", order.Migrations)
	store, err := postgres.NewStore(pool, ob)
	if err != nil {
		t.Fatal(err)
	}
	saga, err := domain.NewSaga(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	o, events, err := saga.Place(domain.Placement{
		ID: "5f0c6f55-2d0a-4c59-9d0e-7a4c3e1d2b01", UserID: "0b1d3c4e-5f60-4718-8293-a4b5c6d7e8f9",
		Lines: []domain.Line{{ProductID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", SKU: "SKU-1", Name: "Kettle", Quantity: 2,
			UnitPrice: domain.Money{AmountMinor: 1500, Currency: "EUR"}}},
		Total:           domain.Money{AmountMinor: 3000, Currency: "EUR"},
		ShippingAddress: domain.Address{Name: "A", Line1: "1 Road", City: "Town", PostalCode: "1000", Country: "BE"},
		PaymentToken:    "tok_ok",
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := store.Create(ctx, o, events); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	eventsBefore := count(ctx, t, pool, `SELECT count(*) FROM watermill_outbox`)
	cancelOrder := func(interfere bool) error {
		return ob.WithTx(ctx, pool, func(tx pgx.Tx) error {
			return store.InTx(tx).Update(ctx, o.ID(), func(o *domain.Order) ([]domain.Event, error) {
				if interfere { // another write of the row after it was read, as a lost update would be
					if _, err := tx.Exec(ctx, `UPDATE orders SET revision = revision + 1 WHERE id = $1`, string(o.ID())); err != nil {
						return nil, err
					}
				}
				return saga.Cancel(o, now.Add(time.Second))
			})
		})
	}
	err = cancelOrder(true)
	if err == nil || !strings.Contains(err.Error(), "changed underneath") {
		t.Fatalf("an update from a stale revision: %v, want it refused", err)
	}
	if got := count(ctx, t, pool, `SELECT count(*) FROM orders WHERE state = 'awaiting_stock' AND revision = 1`); got != 1 {
		t.Errorf("the refused update changed the order")
	}
	if got := count(ctx, t, pool, `SELECT count(*) FROM order_timeline`); got != 1 {
		t.Errorf("%d timeline entries after the refused update, want the 1 of the placement", got)
	}
	if got := count(ctx, t, pool, `SELECT count(*) FROM watermill_outbox`); got != eventsBefore {
		t.Errorf("%d events after the refused update, want %d", got, eventsBefore)
	}
	if err := cancelOrder(false); err != nil {
		t.Fatalf("the same update from the stored revision: %v", err)
	}
	if got := count(ctx, t, pool, `SELECT count(*) FROM orders WHERE state = 'cancelled'`); got != 1 {
		t.Errorf("the update was not written")
	}
	if got := count(ctx, t, pool, `SELECT count(*) FROM watermill_outbox`); got <= eventsBefore {
		t.Errorf("the update wrote no events")
	}
}

func count(ctx context.Context, t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
