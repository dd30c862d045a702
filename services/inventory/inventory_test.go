package inventory_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type levels struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	OnHand    int    `json:"on_hand"`
	Reserved  int    `json:"reserved"`
	Available int    `json:"available"`
}

// createProduct publishes catalog.product_created.v1 and waits for the
// stock it creates.
func (h *harness) createProduct(sku string, initial int) string {
	h.t.Helper()
	id := outbox.NewID()
	h.Publish("", contracts.TypeProductCreatedV1, id, contracts.ProductCreatedV1{
		ProductID: id, SKU: sku, Name: "Product " + sku,
		Price: contracts.Money{AmountMinor: 1250, Currency: "EUR"}, InitialStock: initial,
	})
	h.WaitEvent(contracts.TypeStockLevelChangedV1, nil, servicetest.PayloadHas("product_id", id))
	return id
}

func (h *harness) levels(productID string) levels {
	h.t.Helper()
	r := h.Do(http.MethodGet, "/api/v1/admin/products/"+productID+"/stock", admin, nil)
	if r.Status != http.StatusOK {
		h.t.Fatalf("GET stock: %d %s", r.Status, r.Body)
	}
	var lv levels
	if err := json.Unmarshal(r.Body, &lv); err != nil {
		h.t.Fatal(err)
	}
	return lv
}

func (h *harness) wantLevels(productID string, onHand, reserved int) {
	h.t.Helper()
	got := h.levels(productID)
	if got.OnHand != onHand || got.Reserved != reserved || got.Available != onHand-reserved {
		h.t.Errorf("product %s levels %d/%d/%d, want on hand %d, reserved %d, available %d",
			got.SKU, got.OnHand, got.Reserved, got.Available, onHand, reserved, onHand-reserved)
	}
}

func line(productID string, qty int) contracts.Line {
	return contracts.Line{ProductID: productID, SKU: "SKU", Name: "A product", Quantity: qty,
		UnitPrice: contracts.Money{AmountMinor: 1000, Currency: "EUR"}}
}

var address = contracts.Address{Name: "Ada Lovelace", Line1: "12 Analytical Row", City: "London", PostalCode: "NW1 6XE", Country: "GB"}

const userID = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"

// placed is an order.placed.v1 event, as the retained log still holds them
// (every version upcasts to the one the handler reads).
func placed(orderID string, lines ...contracts.Line) contracts.OrderPlacedV1 {
	var total int64
	for _, l := range lines {
		total += l.UnitPrice.AmountMinor * int64(l.Quantity)
	}
	return contracts.OrderPlacedV1{OrderID: orderID, UserID: userID, Lines: lines,
		Total: contracts.Money{AmountMinor: total, Currency: "EUR"}, ShippingAddress: address}
}

// placedV2 is the order.placed.v2 event the order service publishes now.
func placedV2(orderID string, lines ...contracts.Line) contracts.OrderPlacedV2 {
	e := contracts.OrderPlacedV2{OrderID: orderID, UserID: userID, Currency: "EUR", ShippingAddress: address}
	var total int64
	for _, l := range lines {
		lineTotal := l.UnitPrice.AmountMinor * int64(l.Quantity)
		total += lineTotal
		e.Lines = append(e.Lines, contracts.PricedLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: l.UnitPrice, LineTotal: contracts.Money{AmountMinor: lineTotal, Currency: "EUR"}})
	}
	e.Totals = contracts.OrderTotals{Subtotal: contracts.Money{AmountMinor: total, Currency: "EUR"},
		Shipping: contracts.Money{Currency: "EUR"}, Total: contracts.Money{AmountMinor: total, Currency: "EUR"}}
	return e
}

// Every version of order.placed reserves the same way: v2 as published
// now, v1 as replayed from the retained log.
func TestEveryVersionOfOrderPlacedReserves(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.createProduct("CUP-VER-01", 10)
	for i, typ := range []string{contracts.TypeOrderPlacedV2, contracts.TypeOrderPlacedV1} {
		order := outbox.NewID()
		var payload any = placedV2(order, line(cup, 3))
		if typ == contracts.TypeOrderPlacedV1 {
			payload = placed(order, line(cup, 3))
		}
		h.Publish("", typ, order, payload)
		var reserved contracts.StockReservedV1
		h.WaitEvent(contracts.TypeStockReservedV1, &reserved, servicetest.PayloadHas("order_id", order))
		if want := []contracts.StockLine{{ProductID: cup, Quantity: 3}}; !slices.Equal(reserved.Lines, want) {
			t.Errorf("%s: reserved %+v, want %+v", typ, reserved.Lines, want)
		}
		h.wantLevels(cup, 10, 3*(i+1))
	}
}

func confirmed(orderID string, lines ...contracts.Line) contracts.OrderConfirmedV1 {
	return contracts.OrderConfirmedV1{OrderID: orderID, UserID: userID, PaymentID: outbox.NewID(), Lines: lines,
		Total: contracts.Money{AmountMinor: 1000, Currency: "EUR"}, ShippingAddress: address}
}

func cancelled(orderID string, reason contracts.CancellationReason, comp []contracts.Compensation, lines ...contracts.Line) contracts.OrderCancelledV1 {
	return contracts.OrderCancelledV1{OrderID: orderID, UserID: userID, Reason: reason, Compensations: comp, Lines: lines,
		Total: contracts.Money{AmountMinor: 1000, Currency: "EUR"}}
}

func TestStockIsCreatedFromTheCatalogueAndAdjustedByAdministrators(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	id := h.createProduct("CUP-ESP-01", 10)

	var adjusted contracts.StockAdjustedV1
	h.WaitEvent(contracts.TypeStockAdjustedV1, &adjusted, servicetest.PayloadHas("product_id", id))
	if adjusted.Reason != contracts.AdjustInitial || adjusted.Delta != 10 || adjusted.OnHand != 10 || adjusted.SKU != "CUP-ESP-01" {
		t.Errorf("initial adjustment %+v", adjusted)
	}
	h.wantLevels(id, 10, 0)

	r := h.Do(http.MethodPost, "/api/v1/admin/products/"+id+"/stock", admin, []byte(`{"adjust": 5}`))
	if r.Status != http.StatusOK {
		t.Fatalf("restock: %d %s", r.Status, r.Body)
	}
	var lv levels
	if err := json.Unmarshal(r.Body, &lv); err != nil {
		t.Fatal(err)
	}
	if lv.OnHand != 15 || lv.Available != 15 || lv.ProductID != id {
		t.Errorf("restock answered %+v", lv)
	}
	h.WaitEvent(contracts.TypeStockAdjustedV1, &adjusted, func(p json.RawMessage) bool {
		return servicetest.PayloadHas("product_id", id)(p) && strings.Contains(string(p), `"manual"`)
	})
	if adjusted.Delta != 5 || adjusted.OnHand != 15 || adjusted.Available != 15 {
		t.Errorf("manual adjustment %+v", adjusted)
	}
	var level contracts.StockLevelChangedV1
	h.WaitEvent(contracts.TypeStockLevelChangedV1, &level, func(p json.RawMessage) bool {
		return servicetest.PayloadHas("product_id", id)(p) && strings.Contains(string(p), `"on_hand":15`)
	})

	r = h.Do(http.MethodPost, "/api/v1/admin/products/"+id+"/stock", admin, []byte(`{"adjust": -15}`))
	if r.Status != http.StatusOK {
		t.Fatalf("write off everything: %d %s", r.Status, r.Body)
	}
	h.wantLevels(id, 0, 0)
	// Below zero is a conflict with the current stock, not a bad request.
	before := h.OutboxCount("")
	r = h.Do(http.MethodPost, "/api/v1/admin/products/"+id+"/stock", admin, []byte(`{"adjust": -1}`))
	if r.Status != http.StatusConflict {
		t.Fatalf("below zero: %d %s", r.Status, r.Body)
	}
	if p := r.Problem(t); !strings.HasSuffix(p.Type, "/insufficient-stock") || p.Detail != "cannot remove 1 units, only 0 on hand are not reserved for orders" {
		t.Errorf("problem %+v", p)
	}
	h.wantLevels(id, 0, 0)
	if got := h.OutboxCount(""); got != before {
		t.Errorf("a refused adjustment published %d events", got-before)
	}
	// A product created with no stock is low from the start (threshold 5).
	h.WaitEvent(contracts.TypeLowStockV1, nil, servicetest.PayloadHas("product_id", id))
}

func TestAdminRoutesRejectBadInputAndChangeNothing(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	id := h.createProduct("GRD-HND-02", 7)
	path := "/api/v1/admin/products/" + id + "/stock"
	unknown := "/api/v1/admin/products/" + outbox.NewID() + "/stock"
	eventsBefore := h.OutboxCount("")

	tests := []struct {
		name        string
		method      string
		path        string
		who         caller
		body        string
		contentType string
		status      int
	}{
		{"no identity", http.MethodPost, path, anonymous, `{"adjust": 1}`, "", http.StatusUnauthorized},
		{"no identity reading", http.MethodGet, path, anonymous, "", "", http.StatusUnauthorized},
		{"customer", http.MethodPost, path, customer, `{"adjust": 1}`, "", http.StatusForbidden},
		{"customer reading", http.MethodGet, path, customer, "", "", http.StatusForbidden},
		{"malformed JSON", http.MethodPost, path, admin, `{"adjust": `, "", http.StatusBadRequest},
		{"empty body", http.MethodPost, path, admin, ``, "", http.StatusBadRequest},
		{"two values", http.MethodPost, path, admin, `{"adjust": 1} {"adjust": 1}`, "", http.StatusBadRequest},
		{"duplicate key", http.MethodPost, path, admin, `{"adjust": 1, "adjust": 2}`, "", http.StatusBadRequest},
		{"case variant key", http.MethodPost, path, admin, `{"adjust": 1, "Adjust": 2}`, "", http.StatusBadRequest},
		{"unknown field", http.MethodPost, path, admin, `{"adjust": 1, "reason": "gift"}`, "", http.StatusUnprocessableEntity},
		{"missing adjust", http.MethodPost, path, admin, `{}`, "", http.StatusUnprocessableEntity},
		{"null adjust", http.MethodPost, path, admin, `{"adjust": null}`, "", http.StatusUnprocessableEntity},
		{"string adjust", http.MethodPost, path, admin, `{"adjust": "5"}`, "", http.StatusUnprocessableEntity},
		{"fractional adjust", http.MethodPost, path, admin, `{"adjust": 1.5}`, "", http.StatusUnprocessableEntity},
		{"array body", http.MethodPost, path, admin, `[1]`, "", http.StatusUnprocessableEntity},
		{"zero adjust", http.MethodPost, path, admin, `{"adjust": 0}`, "", http.StatusUnprocessableEntity},
		{"absurd adjust", http.MethodPost, path, admin, `{"adjust": 1000000001}`, "", http.StatusUnprocessableEntity},
		{"absurd negative adjust", http.MethodPost, path, admin, `{"adjust": -1000000001}`, "", http.StatusUnprocessableEntity},
		{"overflowing adjust", http.MethodPost, path, admin, `{"adjust": 99999999999999999999999}`, "", http.StatusUnprocessableEntity},
		{"below reserved", http.MethodPost, path, admin, `{"adjust": -8}`, "", http.StatusConflict},
		{"oversized body", http.MethodPost, path, admin, `{"adjust": 1, "pad": "` + strings.Repeat("x", 1<<20) + `"}`, "", http.StatusRequestEntityTooLarge},
		{"wrong content type", http.MethodPost, path, admin, `{"adjust": 1}`, "text/plain", http.StatusUnsupportedMediaType},
		{"unknown product", http.MethodPost, unknown, admin, `{"adjust": 1}`, "", http.StatusNotFound},
		{"unknown product reading", http.MethodGet, unknown, admin, "", "", http.StatusNotFound},
		{"malformed product id", http.MethodPost, "/api/v1/admin/products/not-a-uuid/stock", admin, `{"adjust": 1}`, "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != "" || tt.method == http.MethodPost {
				body = []byte(tt.body)
			}
			var headers []string
			if tt.contentType != "" {
				headers = []string{"Content-Type", tt.contentType}
			}
			r := h.For(t).Do(tt.method, tt.path, tt.who, body, headers...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			if p := r.Problem(t); p.Status != tt.status || p.Title == "" {
				t.Errorf("problem %+v", p)
			}
		})
	}
	h.wantLevels(id, 7, 0)
	if got := h.OutboxCount(""); got != eventsBefore {
		t.Errorf("bad requests published %d events", got-eventsBefore)
	}
}

func TestOrdersReserveCommitAndCompensate(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *inventory.Config) { c.LowStockThreshold = 2 })
	cup := h.createProduct("CUP-ESP-01", 5)
	grinder := h.createProduct("GRD-HND-02", 2)

	t.Log("a placed order is reserved all at once")
	order1 := outbox.NewID()
	msg := h.Publish("", contracts.TypeOrderPlacedV1, order1, placed(order1, line(cup, 2), line(grinder, 1), line(cup, 1)))
	var reserved contracts.StockReservedV1
	ev := h.WaitEvent(contracts.TypeStockReservedV1, &reserved, servicetest.PayloadHas("order_id", order1))
	want := []contracts.StockLine{{ProductID: min(cup, grinder), Quantity: 0}, {ProductID: max(cup, grinder), Quantity: 0}}
	for i := range want {
		want[i].Quantity = map[string]int{cup: 3, grinder: 1}[want[i].ProductID]
	}
	if !slices.Equal(reserved.Lines, want) {
		t.Errorf("reserved %+v, want %+v", reserved.Lines, want)
	}
	if ev.AggregateID != order1 || ev.CausationID != msg {
		t.Errorf("reserved event aggregate %s cause %s, want %s and %s", ev.AggregateID, ev.CausationID, order1, msg)
	}
	h.wantLevels(cup, 5, 3)
	h.wantLevels(grinder, 2, 1)
	var low contracts.LowStockV1
	h.WaitEvent(contracts.TypeLowStockV1, &low, servicetest.PayloadHas("product_id", cup))
	if low.Available != 2 || low.Threshold != 2 {
		t.Errorf("low stock %+v", low)
	}

	t.Log("an order that cannot be covered reserves nothing and names what is short")
	order2 := outbox.NewID()
	h.Publish("", contracts.TypeOrderPlacedV1, order2, placed(order2, line(cup, 1), line(grinder, 2)))
	var failed contracts.StockReservationFailedV1
	h.WaitEvent(contracts.TypeStockReservationFailedV1, &failed, servicetest.PayloadHas("order_id", order2))
	if len(failed.Shortages) != 1 || failed.Shortages[0] != (contracts.Shortage{ProductID: grinder, Requested: 2, Available: 1}) {
		t.Errorf("shortages %+v", failed.Shortages)
	}
	h.wantLevels(cup, 5, 3)
	h.wantLevels(grinder, 2, 1)

	t.Log("confirmation commits: units leave on hand and reserved")
	h.Publish("", contracts.TypeOrderConfirmedV1, order1, confirmed(order1, line(cup, 3), line(grinder, 1)))
	var committed contracts.StockCommittedV1
	h.WaitEvent(contracts.TypeStockCommittedV1, &committed, servicetest.PayloadHas("order_id", order1))
	if !slices.Equal(committed.Lines, want) {
		t.Errorf("committed %+v, want %+v", committed.Lines, want)
	}
	h.wantLevels(cup, 2, 0)
	h.wantLevels(grinder, 1, 0)

	t.Log("cancelling a committed order returns exactly what was committed")
	h.Publish("", contracts.TypeOrderCancelledV1, order1, cancelled(order1, contracts.ReasonUndeliverable,
		[]contracts.Compensation{contracts.CompensateReturnStock, contracts.CompensateRefundPayment}, line(cup, 3), line(grinder, 1)))
	var returned contracts.StockReturnedV1
	h.WaitEvent(contracts.TypeStockReturnedV1, &returned, servicetest.PayloadHas("order_id", order1))
	if !slices.Equal(returned.Lines, want) {
		t.Errorf("returned %+v, want %+v", returned.Lines, want)
	}
	h.wantLevels(cup, 5, 0)
	h.wantLevels(grinder, 2, 0)

	t.Log("a customer cancel while the reservation reply is in flight still releases")
	order3 := outbox.NewID()
	h.Publish("", contracts.TypeOrderPlacedV1, order3, placed(order3, line(grinder, 2)))
	h.WaitEvent(contracts.TypeStockReservedV1, nil, servicetest.PayloadHas("order_id", order3))
	h.wantLevels(grinder, 2, 2)
	h.Publish("", contracts.TypeOrderCancelledV1, order3, cancelled(order3, contracts.ReasonCustomerRequest, nil, line(grinder, 2)))
	var released contracts.StockReleasedV1
	h.WaitEvent(contracts.TypeStockReleasedV1, &released, servicetest.PayloadHas("order_id", order3))
	if len(released.Lines) != 1 || released.Lines[0] != (contracts.StockLine{ProductID: grinder, Quantity: 2}) {
		t.Errorf("released %+v", released.Lines)
	}
	h.wantLevels(grinder, 2, 0)

	t.Log("a late confirmation of a cancelled order changes nothing")
	lateConfirm := h.Publish("", contracts.TypeOrderConfirmedV1, order3, confirmed(order3, line(grinder, 2)))
	h.WaitApplied(lateConfirm)
	h.wantLevels(grinder, 2, 0)

	t.Log("a cancel of an order never reserved does nothing, and its late placement reserves nothing")
	order4 := outbox.NewID()
	before := h.OutboxCount("")
	cancel4 := h.Publish("", contracts.TypeOrderCancelledV1, order4, cancelled(order4, contracts.ReasonCustomerRequest,
		[]contracts.Compensation{contracts.CompensateReleaseStock}, line(cup, 1)))
	h.WaitApplied(cancel4)
	place4 := h.Publish("", contracts.TypeOrderPlacedV1, order4, placed(order4, line(cup, 1)))
	h.WaitApplied(place4)
	if got := h.OutboxCount(""); got != before {
		t.Errorf("order4 published %d events", got-before)
	}
	h.wantLevels(cup, 5, 0)

	t.Log("an out-of-stock order's cancel changes nothing")
	cancel2 := h.Publish("", contracts.TypeOrderCancelledV1, order2, cancelled(order2, contracts.ReasonOutOfStock, nil, line(cup, 1), line(grinder, 2)))
	h.WaitApplied(cancel2)
	if got := h.OutboxCountFor(contracts.TypeStockReleasedV1, "order_id", order2); got != 0 {
		t.Errorf("released stock of an order that never reserved")
	}
	h.wantLevels(cup, 5, 0)
	h.wantLevels(grinder, 2, 0)
	if n := h.Query(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

func TestDuplicateDeliveriesApplyOnce(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.createProduct("CUP-ESP-01", 10)

	order := outbox.NewID()
	msg := outbox.NewID()
	h.Publish(msg, contracts.TypeOrderPlacedV1, order, placed(order, line(cup, 4)))
	h.Publish(msg, contracts.TypeOrderPlacedV1, order, placed(order, line(cup, 4)))
	// The same order placed again under a new message id: still one reservation.
	again := h.Publish("", contracts.TypeOrderPlacedV1, order, placed(order, line(cup, 4)))
	h.WaitApplied(again)
	h.Poll("the duplicate delivery absorbed", func() (bool, string) { return h.Duplicates() >= 1, "" })
	h.wantLevels(cup, 10, 4)
	if got := h.OutboxCountFor(contracts.TypeStockReservedV1, "order_id", order); got != 1 {
		t.Errorf("%d reservations published, want 1", got)
	}

	cancel := outbox.NewID()
	c := cancelled(order, contracts.ReasonPaymentDeclined, []contracts.Compensation{contracts.CompensateReleaseStock}, line(cup, 4))
	h.Publish(cancel, contracts.TypeOrderCancelledV1, order, c)
	h.Publish(cancel, contracts.TypeOrderCancelledV1, order, c)
	h.Publish("", contracts.TypeOrderCancelledV1, order, c)
	h.Poll("the duplicate cancel absorbed", func() (bool, string) { return h.Duplicates() >= 2, "" })
	h.WaitEvent(contracts.TypeStockReleasedV1, nil, servicetest.PayloadHas("order_id", order))
	h.wantLevels(cup, 10, 0)
	if got := h.OutboxCountFor(contracts.TypeStockReleasedV1, "order_id", order); got != 1 {
		t.Errorf("%d releases published, want 1", got)
	}

	created := outbox.NewID()
	product := outbox.NewID()
	pc := contracts.ProductCreatedV1{ProductID: product, SKU: "KTL-01", Name: "Kettle", Price: contracts.Money{AmountMinor: 3000, Currency: "EUR"}, InitialStock: 3}
	h.Publish(created, contracts.TypeProductCreatedV1, product, pc)
	h.Publish(created, contracts.TypeProductCreatedV1, product, pc)
	pc.InitialStock = 99 // a replayed creation never resets stock
	h.Publish("", contracts.TypeProductCreatedV1, product, pc)
	h.Poll("the duplicate creation absorbed", func() (bool, string) { return h.Duplicates() >= 3, "" })
	h.wantLevels(product, 3, 0)
	if got := h.OutboxCountFor(contracts.TypeStockAdjustedV1, "product_id", product); got != 1 {
		t.Errorf("%d initial adjustments published, want 1", got)
	}
}

func TestLowStockTriggersOneAutomaticRestock(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *inventory.Config) {
		c.AutoRestock = true
		c.LowStockThreshold = 3
		c.RestockQuantity = 10
	})
	cup := h.createProduct("CUP-ESP-01", 5)
	order := outbox.NewID()
	h.Publish("", contracts.TypeOrderPlacedV1, order, placed(order, line(cup, 3)))
	h.WaitEvent(contracts.TypeLowStockV1, nil, servicetest.PayloadHas("product_id", cup))
	var restock contracts.StockAdjustedV1
	h.WaitEvent(contracts.TypeStockAdjustedV1, &restock, func(p json.RawMessage) bool {
		return servicetest.PayloadHas("product_id", cup)(p) && strings.Contains(string(p), `"auto_restock"`)
	})
	if restock.Delta != 10 || restock.OnHand != 15 || restock.Reserved != 3 || restock.Available != 12 {
		t.Errorf("restock %+v", restock)
	}
	h.wantLevels(cup, 15, 3)
	if got := h.OutboxCountFor(contracts.TypeLowStockV1, "product_id", cup); got != 1 {
		t.Errorf("%d low-stock alerts, want 1", got)
	}
}

func TestInvalidEventsAreDeadLetteredWithoutEffect(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.createProduct("CUP-ESP-01", 5)
	order := outbox.NewID()
	bad := outbox.NewID()
	// Quantity 0 breaks the contract (minimum 1).
	h.Publish(bad, contracts.TypeOrderPlacedV1, order,
		[]byte(`{"order_id":"`+order+`","user_id":"`+userID+`","lines":[{"product_id":"`+cup+`","sku":"S","name":"N","quantity":0,"unit_price":{"amount_minor":1,"currency":"EUR"}}],"total":{"amount_minor":0,"currency":"EUR"},"shipping_address":{"name":"A","line1":"B","city":"C","postal_code":"D","country":"GB"}}`))
	h.Poll("the invalid event dead-lettered", func() (bool, string) {
		return h.Query(`SELECT count(*) FROM dead_letters WHERE message_id = $1`, bad) == 1, ""
	})
	// A confirmation of an order never placed is a saga fault an operator must see.
	never := outbox.NewID()
	confirm := h.Publish("", contracts.TypeOrderConfirmedV1, never, confirmed(never, line(cup, 1)))
	h.Poll("the unreserved confirmation dead-lettered", func() (bool, string) {
		return h.Query(`SELECT count(*) FROM dead_letters WHERE message_id = $1`, confirm) == 1, ""
	})
	h.wantLevels(cup, 5, 0)
	if n := h.Query(`SELECT count(*) FROM reservations`); n != 0 {
		t.Errorf("%d reservations stored", n)
	}
}

func TestStockInvariantsHoldInTheDatabase(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.createProduct("CUP-ESP-01", 5)
	for name, stmt := range map[string]string{
		"negative on hand":       `UPDATE stock SET on_hand = -1, reserved = 0 WHERE product_id = $1`,
		"negative reserved":      `UPDATE stock SET reserved = -1 WHERE product_id = $1`,
		"reserved above on hand": `UPDATE stock SET reserved = on_hand + 1 WHERE product_id = $1`,
	} {
		_, err := h.Pool.Exec(t.Context(), stmt, cup)
		if err == nil || !strings.Contains(err.Error(), "23514") {
			t.Errorf("%s: got %v, want a check violation", name, err)
		}
	}
	h.wantLevels(cup, 5, 0)
}
