package analytics_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/analytics"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type money = contracts.Money

type salesReport struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Totals []struct {
		Currency        string `json:"currency"`
		OrdersConfirmed int64  `json:"orders_confirmed"`
		Revenue         money  `json:"revenue"`
		Refunds         int64  `json:"refunds"`
		Refunded        money  `json:"refunded"`
		Net             money  `json:"net"`
	} `json:"totals"`
	Days []struct {
		Date            string `json:"date"`
		Currency        string `json:"currency"`
		OrdersConfirmed int64  `json:"orders_confirmed"`
		Revenue         money  `json:"revenue"`
		Refunds         int64  `json:"refunds"`
		Refunded        money  `json:"refunded"`
		Net             money  `json:"net"`
	} `json:"days"`
	Outcomes struct {
		Completed         int64            `json:"completed"`
		Cancelled         int64            `json:"cancelled"`
		CancelledByReason map[string]int64 `json:"cancelled_by_reason"`
	} `json:"outcomes"`
	TopProducts []struct {
		ProductID string `json:"product_id"`
		SKU       string `json:"sku"`
		Name      string `json:"name"`
		Units     int64  `json:"units"`
		Revenue   money  `json:"revenue"`
	} `json:"top_products"`
	Stock []struct {
		ProductID           string `json:"product_id"`
		SKU                 string `json:"sku"`
		Reserved            int64  `json:"reserved"`
		Released            int64  `json:"released"`
		Committed           int64  `json:"committed"`
		Returned            int64  `json:"returned"`
		Adjusted            int64  `json:"adjusted"`
		ReservationFailures int64  `json:"reservation_failures"`
		LowStockAlerts      int64  `json:"low_stock_alerts"`
	} `json:"stock"`
}

type funnelReport struct {
	From         string `json:"from"`
	To           string `json:"to"`
	CartsTouched int64  `json:"carts_touched"`
	Checkouts    int64  `json:"checkouts"`
	Placed       int64  `json:"placed"`
	Confirmed    int64  `json:"confirmed"`
	Delivered    int64  `json:"delivered"`
}

const (
	cup  = "0190d6a2-0f11-7a22-8b33-4c44d55e66f1"
	bowl = "0190d6a2-0f11-7a22-8b33-4c44d55e66f2"
)

var (
	day1 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	day2 = time.Date(2025, 3, 2, 9, 0, 0, 0, time.UTC)
	home = contracts.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}
)

func line(product, sku, name string, qty int, price int64) contracts.Line {
	return contracts.Line{ProductID: product, SKU: sku, Name: name, Quantity: qty, UnitPrice: eur(price)}
}

// scenario is a small day of trading over two days: three orders (one
// completed, one refunded after a failed delivery, one out of stock), cart
// activity, stock movements and a few events analytics only counts.
func scenario() []outbox.Event {
	ada, bob := newID(), newID()
	orderA, orderB, orderC := newID(), newID(), newID()
	shipA, shipB, payA, payB := newID(), newID(), newID(), newID()
	cupLine, bowlLine := line(cup, "CUP-1", "Espresso cup", 1, 1250), line(bowl, "BOWL-1", "Bowl", 1, 700)
	linesA := []contracts.Line{line(cup, "CUP-1", "Espresso cup", 2, 1250)}
	linesB := []contracts.Line{bowlLine, cupLine}
	var out []outbox.Event
	add := func(typ, aggregate string, at time.Time, payload any) {
		out = append(out, outbox.Event{ID: newID(), Type: typ, AggregateID: aggregate, OccurredAt: at.Add(time.Duration(len(out)) * time.Second), Payload: payload})
	}
	add(contracts.TypeUserRegisteredV1, ada, day1, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	add(contracts.TypeProductCreatedV1, cup, day1, contracts.ProductCreatedV1{ProductID: cup, SKU: "CUP-1", Name: "Espresso cup", Price: eur(1250), InitialStock: 10})
	add(contracts.TypeProductCreatedV1, bowl, day1, contracts.ProductCreatedV1{ProductID: bowl, SKU: "BOWL-1", Name: "Bowl", Price: eur(700), InitialStock: 1})
	add(contracts.TypeStockAdjustedV1, cup, day1, contracts.StockAdjustedV1{ProductID: cup, SKU: "CUP-1", Delta: 10, Reason: contracts.AdjustInitial, OnHand: 10, Available: 10})
	add(contracts.TypeCartLineUpdatedV1, ada, day1, contracts.CartLineUpdatedV1{UserID: ada, ProductID: cup, SKU: "CUP-1", Quantity: 1, UnitPrice: eur(1250)})
	add(contracts.TypeCartLineRemovedV1, ada, day1, contracts.CartLineRemovedV1{UserID: ada, ProductID: cup, PreviousQuantity: 1})
	add(contracts.TypeCartLineUpdatedV1, ada, day1, contracts.CartLineUpdatedV1{UserID: ada, ProductID: cup, SKU: "CUP-1", Quantity: 2, UnitPrice: eur(1250)})
	add(contracts.TypeCartLineUpdatedV1, bob, day1, contracts.CartLineUpdatedV1{UserID: bob, ProductID: bowl, SKU: "BOWL-1", Quantity: 1, UnitPrice: eur(700)})
	add(contracts.TypeCartCheckedOutV1, ada, day1, contracts.CartCheckedOutV1{OrderID: orderA, UserID: ada, Lines: linesA, Total: eur(2500),
		ShippingAddress: home, PaymentToken: "tok_ok", IdempotencyKey: "k1"})

	add(contracts.TypeOrderPlacedV1, orderA, day1, contracts.OrderPlacedV1{OrderID: orderA, UserID: ada, Lines: linesA, Total: eur(2500), ShippingAddress: home})
	add(contracts.TypeStockReservedV1, orderA, day1, contracts.StockReservedV1{OrderID: orderA, Lines: []contracts.StockLine{{ProductID: cup, Quantity: 2}}})
	add(contracts.TypePaymentAuthorizedV1, orderA, day1, contracts.PaymentAuthorizedV1{PaymentID: payA, OrderID: orderA, UserID: ada, Amount: eur(2500), ProviderReference: "ref-a"})
	add(contracts.TypeOrderConfirmedV1, orderA, day1, contracts.OrderConfirmedV1{OrderID: orderA, UserID: ada, PaymentID: payA, Lines: linesA, Total: eur(2500), ShippingAddress: home})
	add(contracts.TypeStockCommittedV1, orderA, day1, contracts.StockCommittedV1{OrderID: orderA, Lines: []contracts.StockLine{{ProductID: cup, Quantity: 2}}})

	add(contracts.TypeOrderPlacedV1, orderB, day1, contracts.OrderPlacedV1{OrderID: orderB, UserID: bob, Lines: linesB, Total: eur(1950), ShippingAddress: home})
	add(contracts.TypeOrderConfirmedV1, orderB, day1, contracts.OrderConfirmedV1{OrderID: orderB, UserID: bob, PaymentID: payB, Lines: linesB, Total: eur(1950), ShippingAddress: home})

	add(contracts.TypeOrderShippedV1, orderA, day2, contracts.OrderShippedV1{OrderID: orderA, UserID: ada, ShipmentID: shipA, Carrier: "simpost", TrackingNumber: "SP1"})
	add(contracts.TypeOrderDeliveredV1, orderA, day2, contracts.OrderDeliveredV1{OrderID: orderA, UserID: ada, ShipmentID: shipA})
	add(contracts.TypeOrderCompletedV1, orderA, day2, contracts.OrderCompletedV1{OrderID: orderA, UserID: ada, Total: eur(2500)})
	add(contracts.TypeShipmentFailedV1, shipB, day2, contracts.ShipmentFailedV1{ShipmentID: shipB, OrderID: orderB, UserID: bob, Reason: contracts.FailureUndeliverable})
	add(contracts.TypeOrderCancelledV1, orderB, day2, contracts.OrderCancelledV1{OrderID: orderB, UserID: bob, Reason: contracts.ReasonUndeliverable, Lines: linesB, Total: eur(1950),
		Compensations: []contracts.Compensation{contracts.CompensateReturnStock, contracts.CompensateRefundPayment}})
	add(contracts.TypeStockReturnedV1, orderB, day2, contracts.StockReturnedV1{OrderID: orderB, Lines: []contracts.StockLine{{ProductID: bowl, Quantity: 1}, {ProductID: cup, Quantity: 1}}})
	add(contracts.TypePaymentRefundedV1, orderB, day2, contracts.PaymentRefundedV1{RefundID: newID(), PaymentID: payB, OrderID: orderB, UserID: bob, Amount: eur(1950), Reason: contracts.ReasonUndeliverable})

	add(contracts.TypeOrderPlacedV1, orderC, day2, contracts.OrderPlacedV1{OrderID: orderC, UserID: bob, Lines: []contracts.Line{bowlLine}, Total: eur(700), ShippingAddress: home})
	add(contracts.TypeStockReservationFailedV1, orderC, day2, contracts.StockReservationFailedV1{OrderID: orderC, Shortages: []contracts.Shortage{{ProductID: bowl, Requested: 1, Available: 0}}})
	add(contracts.TypeOrderCancelledV1, orderC, day2, contracts.OrderCancelledV1{OrderID: orderC, UserID: bob, Reason: contracts.ReasonOutOfStock, Lines: []contracts.Line{bowlLine}, Total: eur(700)})
	add(contracts.TypeLowStockV1, cup, day2, contracts.LowStockV1{ProductID: cup, SKU: "CUP-1", Available: 1, Threshold: 2})
	add(contracts.TypePointsAwardedV1, ada, day2, contracts.PointsAwardedV1{UserID: ada, Points: 25, Balance: 125, Reason: contracts.PointsOrderCompleted, OrderID: orderA})
	add(contracts.TypeNotificationSentV1, ada, day2, contracts.NotificationSentV1{NotificationID: newID(), Channel: contracts.ChannelEmail, Audience: contracts.AudienceCustomer,
		UserID: ada, Template: "order_delivered", TriggerType: contracts.TypeOrderDeliveredV1, TriggerID: newID()})
	return out
}

// checkScenario asserts the reports of the scenario's aggregates.
func checkScenario(t *testing.T, h *harness) {
	t.Helper()
	var s salesReport
	h.getJSON("/api/v1/admin/reports/sales?from=2025-03-01&to=2025-03-02", &s)
	if s.From != "2025-03-01" || s.To != "2025-03-02" || len(s.Totals) != 1 || len(s.Days) != 2 {
		t.Fatalf("sales report = %+v", s)
	}
	tot := s.Totals[0]
	if tot.Currency != "EUR" || tot.OrdersConfirmed != 2 || tot.Revenue != eur(4450) || tot.Refunds != 1 || tot.Refunded != eur(1950) || tot.Net != eur(2500) {
		t.Errorf("totals = %+v", tot)
	}
	if d := s.Days[0]; d.Date != "2025-03-01" || d.OrdersConfirmed != 2 || d.Revenue != eur(4450) || d.Refunds != 0 || d.Net != eur(4450) {
		t.Errorf("day 1 = %+v", d)
	}
	if d := s.Days[1]; d.Date != "2025-03-02" || d.OrdersConfirmed != 0 || d.Refunds != 1 || d.Net != eur(-1950) {
		t.Errorf("day 2 = %+v", d)
	}
	o := s.Outcomes
	if o.Completed != 1 || o.Cancelled != 2 || o.CancelledByReason["undeliverable"] != 1 || o.CancelledByReason["out_of_stock"] != 1 {
		t.Errorf("outcomes = %+v", o)
	}
	if len(s.TopProducts) != 2 {
		t.Fatalf("top products = %+v", s.TopProducts)
	}
	if p := s.TopProducts[0]; p.ProductID != cup || p.SKU != "CUP-1" || p.Name != "Espresso cup" || p.Units != 3 || p.Revenue != eur(3750) {
		t.Errorf("top product = %+v", p)
	}
	if p := s.TopProducts[1]; p.ProductID != bowl || p.Units != 1 || p.Revenue != eur(700) {
		t.Errorf("second product = %+v", p)
	}
	if len(s.Stock) != 2 {
		t.Fatalf("stock = %+v", s.Stock)
	}
	if c := s.Stock[0]; c.ProductID != cup || c.SKU != "CUP-1" || c.Reserved != 2 || c.Committed != 2 || c.Returned != 1 ||
		c.Adjusted != 10 || c.LowStockAlerts != 1 || c.ReservationFailures != 0 {
		t.Errorf("cup stock = %+v", c)
	}
	if b := s.Stock[1]; b.ProductID != bowl || b.Returned != 1 || b.ReservationFailures != 1 || b.Committed != 0 {
		t.Errorf("bowl stock = %+v", b)
	}

	var f funnelReport
	h.getJSON("/api/v1/admin/reports/funnel?from=2025-03-01&to=2025-03-02", &f)
	if want := (funnelReport{From: "2025-03-01", To: "2025-03-02", CartsTouched: 2, Checkouts: 1, Placed: 3, Confirmed: 2, Delivered: 1}); f != want {
		t.Errorf("funnel = %+v, want %+v", f, want)
	}
	// The second day alone: a refund, no sales, no carts.
	h.getJSON("/api/v1/admin/reports/sales?from=2025-03-02&to=2025-03-02", &s)
	if len(s.Days) != 1 || s.Totals[0].OrdersConfirmed != 0 || s.Totals[0].Refunds != 1 || len(s.TopProducts) != 0 {
		t.Errorf("day 2 report = %+v", s)
	}
	h.getJSON("/api/v1/admin/reports/funnel?from=2025-03-02&to=2025-03-02", &f)
	if f.CartsTouched != 0 || f.Placed != 1 || f.Delivered != 1 || f.Confirmed != 0 {
		t.Errorf("day 2 funnel = %+v", f)
	}
}

func TestReportsCountEveryEventOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	events := scenario()
	for i, e := range events {
		h.PublishAt(e.ID, e.Type, e.AggregateID, e.OccurredAt, e.Payload)
		if i%5 == 0 { // redelivered
			h.PublishAt(e.ID, e.Type, e.AggregateID, e.OccurredAt, e.Payload)
		}
	}
	dups := (len(events) + 4) / 5
	h.Eventually("every event applied", func() bool {
		return h.Applied() == len(events) &&
			h.Query(`SELECT COALESCE((SELECT count FROM inbox_duplicates WHERE consumer = 'inbox'), 0)`) == dups
	})
	if n := h.Query(`SELECT sum(events)::int FROM event_counts`); n != len(events) {
		t.Errorf("events counted = %d, want %d", n, len(events))
	}
	checkScenario(t, h)
	// Outside the period nothing shows.
	var s salesReport
	h.getJSON("/api/v1/admin/reports/sales?from=2025-02-01&to=2025-02-28", &s)
	if len(s.Days) != 0 || len(s.Totals) != 0 || s.Outcomes.Completed != 0 || len(s.TopProducts) != 0 || s.Outcomes.CancelledByReason == nil {
		t.Errorf("february = %+v", s)
	}
	// Without a period: the last 30 days up to today.
	h.getJSON("/api/v1/admin/reports/sales", &s)
	if today := time.Now().UTC().Format(time.DateOnly); s.To != today || s.From != time.Now().UTC().AddDate(0, 0, -29).Format(time.DateOnly) {
		t.Errorf("default period %s..%s", s.From, s.To)
	}
}

// dump returns every aggregate table's rows as sorted text.
func (h *harness) dump() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, table := range []string{"event_counts", "cart_touches", "daily_sales", "order_outcomes", "product_sales", "products", "stock_movements"} {
		var rows *string
		if err := h.pool.QueryRow(h.ctx, `SELECT string_agg(x::text, E'\n' ORDER BY x::text) FROM `+table+` AS x`).Scan(&rows); err != nil {
			h.t.Fatalf("dump %s: %v", table, err)
		}
		if rows != nil {
			out[table] = *rows
		}
	}
	return out
}

func TestAggregatesRebuildFromReplay(t *testing.T) {
	t.Parallel()
	h := start(t)
	events := scenario()
	producers := map[string]*servicetest.Producer{}
	var order []string
	for _, e := range events {
		p, err := outbox.ProducerOf(e.Type)
		if err != nil {
			t.Fatal(err)
		}
		if producers[p] == nil {
			producers[p] = h.Producer(p)
			producers[p].Relay()
			order = append(order, p)
		}
		producers[p].Emit(e)
	}
	h.Eventually("the relayed history applied", func() bool { return h.Applied() == len(events) })
	checkScenario(t, h)
	before := h.dump()

	forgotten, err := analytics.ResetReadModel(context.Background(), h.pool)
	if err != nil {
		t.Fatal(err)
	}
	if forgotten != int64(len(events)) {
		t.Errorf("forgot %d inbox keys, want %d", forgotten, len(events))
	}
	if d := h.dump(); len(d) != 0 {
		t.Fatalf("aggregates after the reset: %v", d)
	}

	// `shopmesh replay --consumer analytics` from every producer it reads,
	// one producer after another (so in another order than they happened).
	replayed := 0
	for i := len(order) - 1; i >= 0; i-- {
		replayed += producers[order[i]].Replay()
	}
	if replayed != len(events) {
		t.Errorf("replayed %d events, want %d", replayed, len(events))
	}
	h.Eventually("the replayed history applied", func() bool { return h.Applied() == len(events) })
	if after := h.dump(); !reflect.DeepEqual(after, before) {
		t.Errorf("rebuilt aggregates differ:\nbefore %v\nafter  %v", before, after)
	}
	checkScenario(t, h)

	// The same history again, without a reset, changes nothing.
	for _, p := range order {
		producers[p].Replay()
	}
	h.Eventually("the second replay absorbed", func() bool {
		return h.Query(`SELECT COALESCE((SELECT count FROM inbox_duplicates WHERE consumer = 'inbox'), 0)`) == len(events)
	})
	if after := h.dump(); !reflect.DeepEqual(after, before) {
		t.Errorf("a second replay changed the aggregates")
	}
}

func TestInvalidEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	h := start(t)
	order := newID()
	noTime, badPayload := newID(), newID()
	h.PublishAt(noTime, contracts.TypeOrderCompletedV1, order, time.Time{}, contracts.OrderCompletedV1{OrderID: order, UserID: newID(), Total: eur(100)})
	h.PublishAt(badPayload, contracts.TypeOrderConfirmedV1, order, day1, []byte(`{"order_id":"`+order+`","total":{"amount_minor":"ten","currency":"EUR"}}`))
	good := newID()
	h.PublishAt(good, contracts.TypeOrderCompletedV1, order, day1, contracts.OrderCompletedV1{OrderID: order, UserID: newID(), Total: eur(100)})
	var dead []string
	h.Poll("two dead letters", func() (bool, string) {
		dls, err := outbox.ListDeadLetters(context.Background(), h.pool, false)
		if err != nil {
			return false, err.Error()
		}
		dead = dead[:0]
		for _, d := range dls {
			dead = append(dead, d.MessageID)
		}
		return len(dls) == 2, fmt.Sprint(dead)
	})
	if !slices.Contains(dead, noTime) || !slices.Contains(dead, badPayload) {
		t.Errorf("dead letters %v, want the event without a time (%s) and the bad payload (%s)", dead, noTime, badPayload)
	}
	h.Eventually("the good event applied", func() bool { return h.Query(`SELECT count(*) FROM inbox WHERE message_id = $1`, good) == 1 })
	if n := h.Query(`SELECT coalesce(sum(events), 0)::int FROM event_counts`); n != 1 {
		t.Errorf("events counted = %d, want only the valid one", n)
	}
}

func TestReportsRequireAdminAndAValidPeriod(t *testing.T) {
	t.Parallel()
	h := start(t)
	user := newID()
	for _, path := range []string{"/api/v1/admin/reports/sales", "/api/v1/admin/reports/funnel"} {
		cases := []struct {
			name, method, query, user, role string
			want                            int
		}{
			{"no identity", http.MethodGet, "", "", "", http.StatusUnauthorized},
			{"customer", http.MethodGet, "", user, "customer", http.StatusForbidden},
			{"role without user", http.MethodGet, "", "", "admin", http.StatusUnauthorized},
			{"not a date", http.MethodGet, "?from=yesterday", user, "admin", http.StatusUnprocessableEntity},
			{"impossible date", http.MethodGet, "?to=2025-02-30", user, "admin", http.StatusUnprocessableEntity},
			{"date with time", http.MethodGet, "?from=2025-03-01T00:00:00Z", user, "admin", http.StatusUnprocessableEntity},
			{"reversed", http.MethodGet, "?from=2025-03-02&to=2025-03-01", user, "admin", http.StatusUnprocessableEntity},
			{"too long", http.MethodGet, "?from=2020-01-01&to=2025-01-01", user, "admin", http.StatusUnprocessableEntity},
			{"twice", http.MethodGet, "?from=2025-03-01&from=2025-03-02", user, "admin", http.StatusUnprocessableEntity},
			{"unknown parameter", http.MethodGet, "?currency=EUR", user, "admin", http.StatusUnprocessableEntity},
			{"malformed query", http.MethodGet, "?from=%zz", user, "admin", http.StatusBadRequest},
			{"wrong method", http.MethodPost, "", user, "admin", http.StatusMethodNotAllowed},
		}
		for _, c := range cases {
			t.Run(path+" "+c.name, func(t *testing.T) {
				res := h.For(t).do(c.method, path+c.query, c.user, c.role, []byte(`{"orders": -1}`))
				if res.Status != c.want || res.ContentType != "application/problem+json" {
					t.Errorf("%s %s%s as %q/%q: %d %s %s, want %d problem+json", c.method, path, c.query, c.user, c.role,
						res.Status, res.ContentType, res.Body, c.want)
				}
			})
		}
	}
	if res := h.do(http.MethodGet, "/api/v1/admin/reports/refunds", user, "admin", nil); res.Status != http.StatusNotFound {
		t.Errorf("unknown report: %d", res.Status)
	}
	var f funnelReport
	h.getJSON("/api/v1/admin/reports/funnel?from=2024-03-01&to=2025-03-01", &f)
	if f.From != "2024-03-01" || f.Placed != 0 {
		t.Errorf("a year's empty funnel = %+v", f)
	}
}

// Events counted under an older version of a type before an upgrade still
// count in the funnel after it: stages are matched by type family.
func TestFunnelCountsOlderVersionsOfAStage(t *testing.T) {
	t.Parallel()
	h := start(t)
	// What a build that read order.placed.v1 as its latest version recorded.
	if _, err := h.pool.Exec(h.ctx, `INSERT INTO event_counts (day, event_type, events) VALUES ('2025-06-01', 'order.placed.v1', 3)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `INSERT INTO event_counts (day, event_type, events) VALUES ('2025-06-01', 'order.placed.v2', 2)`); err != nil {
		t.Fatal(err)
	}
	var f funnelReport
	h.getJSON("/api/v1/admin/reports/funnel?from=2025-06-01&to=2025-06-01", &f)
	if f.Placed != 5 {
		t.Errorf("placed = %d, want 5 (3 counted as v1 before the upgrade, 2 as v2)", f.Placed)
	}
}
