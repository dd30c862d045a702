package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/system"
)

// retainedOrderPlaced proves the order.placed evolution end to end: the
// order service now publishes v2, but its retained log still holds v1
// events (written before the upgrade, or replayed from history). A v1 row
// and a v2 row describing the same kind of order are written into the
// order service's outbox; its relay publishes both, and every consumer of
// order.placed must give them the same effect. Replaying the retained v1
// event to each consumer afterwards changes nothing: the inbox absorbs it.
func retainedOrderPlaced(t *testing.T, sys *system.System, dbs map[string]*pgxpool.Pool) {
	ctx := context.Background()
	placed, err := contracts.Lookup(contracts.TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contracts.Lookup(contracts.TypeOrderPlacedV2); err != nil {
		t.Fatal(err)
	}
	var consumers []string
	for _, c := range placed.Consumers {
		if dbs[c] != nil {
			consumers = append(consumers, c)
		}
	}

	admin := sys.Admin()
	product := admin.CreateProduct(fmt.Sprintf("RETAINED-%d", time.Now().UnixNano()%1e9), 1500, 10)
	customer, userID := register(t, sys, "retained")
	// The funnel counts placements system-wide: let the earlier fixtures'
	// effects settle first, so that only this test's two orders add to it.
	quiesce(t, sys, dbs)
	funnelBefore := placedInFunnel(t, admin)

	// The same order twice, as v1 (retained from before the upgrade) and as
	// the v2 the order service publishes now.
	address := contracts.Address{Name: "Ada Lovelace", Line1: "1 Analytical Way", City: "London", PostalCode: "N1 9GU", Country: "GB"}
	line := contracts.Line{ProductID: product.ID, SKU: product.SKU, Name: product.Name, Quantity: 2,
		UnitPrice: contracts.Money{AmountMinor: 1500, Currency: "EUR"}}
	v1Order, v2Order := outbox.NewID(), outbox.NewID()
	v1 := contracts.OrderPlacedV1{OrderID: v1Order, UserID: userID, Lines: []contracts.Line{line},
		Total: contracts.Money{AmountMinor: 3000, Currency: "EUR"}, ShippingAddress: address}
	v2 := contracts.OrderPlacedV2{OrderID: v2Order, UserID: userID, Currency: "EUR",
		Lines: []contracts.PricedLine{{ProductID: line.ProductID, SKU: line.SKU, Name: line.Name, Quantity: 2,
			UnitPrice: line.UnitPrice, LineTotal: contracts.Money{AmountMinor: 3000, Currency: "EUR"}}},
		Totals: contracts.OrderTotals{Subtotal: contracts.Money{AmountMinor: 3000, Currency: "EUR"},
			Shipping: contracts.Money{Currency: "EUR"}, Total: contracts.Money{AmountMinor: 3000, Currency: "EUR"}},
		ShippingAddress: address}
	v1ID := outbox.NewID()
	writeOrderOutbox(t, ctx, dbs["order"],
		outbox.Event{ID: v1ID, Type: contracts.TypeOrderPlacedV1, AggregateID: v1Order, OccurredAt: time.Now().Add(-time.Hour), Payload: v1},
		outbox.Event{Type: contracts.TypeOrderPlacedV2, AggregateID: v2Order, Payload: v2})

	for _, c := range consumers {
		waitOutcomeFor(t, ctx, c, dbs[c], v1ID)
	}
	// Same effect for both versions, consumer by consumer.
	effects := map[string]func(){
		"inventory": func() {
			system.Eventually(t, 30*time.Second, "both orders reserved", func() (bool, string) {
				s := admin.Stock(product.ID)
				return s.Reserved == 4 && s.Available == 6, fmt.Sprintf("%+v", s)
			})
		},
		"notification": func() {
			system.Eventually(t, 30*time.Second, "a placement notification per order", func() (bool, string) {
				byOrder := notificationsByOrder(t, customer)
				a, b := byOrder[v1Order], byOrder[v2Order]
				if len(a) != 1 || len(b) != 1 {
					return false, fmt.Sprintf("v1 order: %v, v2 order: %v", a, b)
				}
				same := a[0]["event_type"] == b[0]["event_type"] &&
					strings.ReplaceAll(fmt.Sprint(a[0]["subject"]), v1Order, "ID") == strings.ReplaceAll(fmt.Sprint(b[0]["subject"]), v2Order, "ID") &&
					strings.ReplaceAll(fmt.Sprint(a[0]["body"]), v1Order, "ID") == strings.ReplaceAll(fmt.Sprint(b[0]["body"]), v2Order, "ID")
				return same, fmt.Sprintf("the two notifications differ:\n%v\n%v", a[0], b[0])
			})
		},
		"customer": func() {
			system.Eventually(t, 30*time.Second, "both orders in the history", func() (bool, string) {
				var h struct {
					Items []map[string]any `json:"items"`
				}
				r := customer.Do("GET", "/api/v1/me/history?limit=50", nil)
				if r.Status != http.StatusOK {
					return false, fmt.Sprintf("%d %s", r.Status, trim(r.Body))
				}
				r.JSON(t, &h)
				got := map[string]string{}
				for _, it := range h.Items {
					got[fmt.Sprint(it["order_id"])] = fmt.Sprint(it["status"], " ", it["total"])
				}
				a, b := got[v1Order], got[v2Order]
				return a != "" && a == b && strings.Contains(a, "3000"), fmt.Sprintf("v1 order %q, v2 order %q", a, b)
			})
		},
		"analytics": func() {
			system.Eventually(t, 30*time.Second, "both placements in the funnel", func() (bool, string) {
				n := placedInFunnel(t, admin)
				return n == funnelBefore+2, fmt.Sprintf("placed %d, was %d", n, funnelBefore)
			})
		},
	}
	for _, c := range consumers {
		check, ok := effects[c]
		if !ok {
			t.Errorf("%s consumes order.placed but this test does not check its effect", c)
			continue
		}
		check()
	}

	// History replayed: each consumer gets the retained v1 event again and
	// absorbs it.
	for _, c := range consumers {
		before := duplicates(t, dbs[c])
		out, err := sys.Command("replay", "--consumer", c, "--since", "10m", "--types", contracts.TypeOrderPlacedV1).CombinedOutput()
		if err != nil {
			t.Fatalf("shopmesh replay --consumer %s: %v\n%s", c, err, out)
		}
		if !strings.Contains(string(out), "replayed 1 events") {
			t.Errorf("replay to %s: %s, want the one retained v1 event", c, out)
		}
		system.Eventually(t, 30*time.Second, c+" absorbs the replayed v1 event", func() (bool, string) {
			n := duplicates(t, dbs[c]) - before
			return n == 1, fmt.Sprintf("%d duplicates", n)
		})
	}
	if s := admin.Stock(product.ID); s.Reserved != 4 {
		t.Errorf("stock after the replay = %+v, want the 4 units reserved once", s)
	}
	t.Logf("v1 and v2 placements had the same effect at %v; the replayed v1 event was absorbed by each", consumers)
	if n := placedInFunnel(t, admin); n != funnelBefore+2 {
		t.Errorf("funnel after the replay counts %d placements, want %d", n, funnelBefore+2)
	}
	if byOrder := notificationsByOrder(t, customer); len(byOrder[v1Order]) != 1 {
		t.Errorf("notifications of the v1 order after the replay: %v", byOrder[v1Order])
	}
}

// quiesce waits until no event is on its way: every outbox drained and
// every inbox queue empty, twice in a row.
func quiesce(t *testing.T, sys *system.System, dbs map[string]*pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	idle := 0
	system.Eventually(t, 30*time.Second, "the system to be idle", func() (bool, string) {
		for svc, db := range dbs {
			st, err := outbox.ReadStats(ctx, db)
			if err != nil || st.Pending > 0 {
				idle = 0
				return false, fmt.Sprintf("%s outbox: %+v %v", svc, st, err)
			}
			if !slices.Contains(consumerServices(), svc) {
				continue // no inbox queue
			}
			n, err := outbox.QueueDepth(ctx, sys.AMQPURL, outbox.QueueName(svc, inbox))
			if err != nil || n > 0 {
				idle = 0
				return false, fmt.Sprintf("%s queue: %d %v", svc, n, err)
			}
		}
		idle++
		return idle >= 2, "idle once"
	})
}

// writeOrderOutbox writes events into the order service's outbox, as its
// code would have, and wakes its relay.
func writeOrderOutbox(t *testing.T, ctx context.Context, db *pgxpool.Pool, events ...outbox.Event) {
	t.Helper()
	ob, err := outbox.New("order")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if err := ob.Publish(ctx, tx, events...); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, outbox.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitOutcomeFor fails unless consumer applies the message.
func waitOutcomeFor(t *testing.T, ctx context.Context, consumer string, db *pgxpool.Pool, id string) {
	t.Helper()
	if o := waitOutcome(t, ctx, db, id); !o.accepted {
		t.Errorf("%s dead-lettered the retained v1 event: %s", consumer, o.reason)
	}
}

// register creates a customer and returns a logged-in client and the id.
func register(t *testing.T, sys *system.System, name string) (*system.Client, string) {
	t.Helper()
	c := sys.Client()
	email := fmt.Sprintf("%s.%d@example.com", name, time.Now().UnixNano())
	var u struct {
		ID string `json:"id"`
	}
	c.Expect(http.StatusCreated, &u, "POST", "/api/v1/auth/register", map[string]string{"email": email, "password": "correct horse battery", "name": name})
	var tok struct {
		Token string `json:"token"`
	}
	c.Expect(http.StatusOK, &tok, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "correct horse battery"})
	c.Token = tok.Token
	return c, u.ID
}

func placedInFunnel(t *testing.T, admin *system.Client) int64 {
	t.Helper()
	var f struct {
		Placed int64 `json:"placed"`
	}
	admin.Expect(http.StatusOK, &f, "GET", "/api/v1/admin/reports/funnel", nil)
	return f.Placed
}

// notificationsByOrder lists the customer's notifications about order
// placements, by order id.
func notificationsByOrder(t *testing.T, c *system.Client) map[string][]map[string]any {
	t.Helper()
	var list []map[string]any
	r := c.Expect(http.StatusOK, nil, "GET", "/api/v1/notifications?limit=100", nil)
	if err := json.Unmarshal(r.Body, &list); err != nil {
		t.Fatalf("notifications: %v: %s", err, trim(r.Body))
	}
	out := map[string][]map[string]any{}
	for _, n := range list {
		if typ, _ := n["event_type"].(string); !strings.HasPrefix(typ, "order.placed.") {
			continue
		}
		id, _ := n["order_id"].(string)
		out[id] = append(out[id], n)
	}
	return out
}
