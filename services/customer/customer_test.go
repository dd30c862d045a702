package customer_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/customer"
)

type meView struct {
	ID          string             `json:"id"`
	Email       string             `json:"email"`
	Name        string             `json:"name"`
	Address     *contracts.Address `json:"address"`
	OrdersCount int                `json:"orders_count"`
}

type historyView struct {
	Items []struct {
		OrderID            string           `json:"order_id"`
		Status             string           `json:"status"`
		Total              *contracts.Money `json:"total"`
		CancellationReason *string          `json:"cancellation_reason"`
		PlacedAt           time.Time        `json:"placed_at"`
		UpdatedAt          time.Time        `json:"updated_at"`
		Timeline           []struct {
			Type string    `json:"type"`
			At   time.Time `json:"at"`
		} `json:"timeline"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

var (
	t0    = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	lines = []contracts.Line{{ProductID: "0190d6a2-0f11-7a22-8b33-4c44d55e66f7", SKU: "CUP-1", Name: "Espresso cup", Quantity: 2, UnitPrice: eur(1250)}}
	home  = contracts.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}
)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// lifecycle returns the events of an order that ends delivered (cancelled
// empty) or cancelled for the given reason after confirmation.
func lifecycle(orderID, userID string, start int, cancelled contracts.CancellationReason) []outbox.Event {
	ev := func(typ string, at int, payload any) outbox.Event {
		return outbox.Event{ID: newID(), Type: typ, AggregateID: orderID, OccurredAt: sec(start + at), Payload: payload}
	}
	out := []outbox.Event{
		ev(contracts.TypeOrderPlacedV1, 0, contracts.OrderPlacedV1{OrderID: orderID, UserID: userID, Lines: lines, Total: eur(2500), ShippingAddress: home}),
		ev(contracts.TypeOrderConfirmedV1, 1, contracts.OrderConfirmedV1{OrderID: orderID, UserID: userID, PaymentID: newID(), Lines: lines, Total: eur(2500), ShippingAddress: home}),
	}
	if cancelled != "" {
		return append(out, ev(contracts.TypeOrderCancelledV1, 2, contracts.OrderCancelledV1{OrderID: orderID, UserID: userID, Reason: cancelled,
			Compensations: []contracts.Compensation{contracts.CompensateReturnStock, contracts.CompensateRefundPayment}, Lines: lines, Total: eur(2500)}))
	}
	shipment := newID()
	return append(out,
		ev(contracts.TypeOrderShippedV1, 2, contracts.OrderShippedV1{OrderID: orderID, UserID: userID, ShipmentID: shipment, Carrier: "simpost", TrackingNumber: "SP1"}),
		ev(contracts.TypeOrderDeliveredV1, 3, contracts.OrderDeliveredV1{OrderID: orderID, UserID: userID, ShipmentID: shipment}),
		ev(contracts.TypeOrderCompletedV1, 3, contracts.OrderCompletedV1{OrderID: orderID, UserID: userID, Total: eur(2500)}),
	)
}

func (h *harness) publishEvents(events []outbox.Event) {
	h.t.Helper()
	for _, e := range events {
		h.PublishAt(e.ID, e.Type, e.AggregateID, e.OccurredAt, e.Payload)
	}
}

func TestProfileAndOrderHistoryFromEvents(t *testing.T) {
	t.Parallel()
	h := start(t)
	ada, bob := newID(), newID()
	regID := newID()
	reg := contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada Lovelace"}
	h.PublishAt(regID, contracts.TypeUserRegisteredV1, ada, sec(0), reg)
	h.PublishAt(regID, contracts.TypeUserRegisteredV1, ada, sec(0), reg) // redelivered
	h.PublishAt(newID(), contracts.TypeUserAddressChangedV1, ada, sec(1), contracts.UserAddressChangedV1{UserID: ada, Address: home})

	delivered, cancelled := newID(), newID()
	happy := lifecycle(delivered, ada, 10, "")
	h.publishEvents(happy)
	h.PublishAt(happy[2].ID, happy[2].Type, delivered, happy[2].OccurredAt, happy[2].Payload) // shipped, redelivered
	h.publishEvents(lifecycle(cancelled, ada, 20, contracts.ReasonUndeliverable))
	h.Eventually("every event applied and both redeliveries absorbed", func() bool {
		return h.Applied() == 10 && h.Query(`SELECT coalesce(sum(count), 0) FROM inbox_duplicates WHERE consumer = 'inbox'`) == 2
	})

	var me meView
	h.getJSON("/api/v1/me", ada, &me)
	if me.ID != ada || me.Email != "ada@example.com" || me.Name != "Ada Lovelace" || me.OrdersCount != 2 ||
		me.Address == nil || *me.Address != home {
		t.Errorf("me = %+v", me)
	}
	var hist historyView
	h.getJSON("/api/v1/me/history", ada, &hist)
	if len(hist.Items) != 2 || hist.NextCursor != "" {
		t.Fatalf("history = %+v", hist)
	}
	c, d := hist.Items[0], hist.Items[1] // newest first
	if c.OrderID != cancelled || c.Status != "cancelled" || c.CancellationReason == nil || *c.CancellationReason != "undeliverable" ||
		c.Total == nil || *c.Total != eur(2500) || !c.PlacedAt.Equal(sec(20)) || !c.UpdatedAt.Equal(sec(22)) {
		t.Errorf("cancelled order = %+v", c)
	}
	if d.OrderID != delivered || d.Status != "delivered" || d.CancellationReason != nil || !d.UpdatedAt.Equal(sec(13)) {
		t.Errorf("delivered order = %+v", d)
	}
	var steps []string
	for _, e := range d.Timeline {
		steps = append(steps, e.Type)
	}
	if want := []string{"placed", "confirmed", "shipped", "delivered", "completed"}; !reflect.DeepEqual(steps, want) {
		t.Errorf("timeline = %v, want %v", steps, want)
	}

	// Paging walks the same orders.
	var first, second historyView
	h.getJSON("/api/v1/me/history?limit=1", ada, &first)
	if len(first.Items) != 1 || first.NextCursor == "" {
		t.Fatalf("first page = %+v", first)
	}
	h.getJSON("/api/v1/me/history?limit=1&cursor="+first.NextCursor, ada, &second)
	if len(second.Items) != 1 || second.Items[0].OrderID != delivered || second.NextCursor != "" {
		t.Errorf("second page = %+v", second)
	}

	// Own data only: bob has no profile yet and no history, and ada's cursor
	// shows him nothing.
	if res := h.do(http.MethodGet, "/api/v1/me", bob, nil); res.Status != http.StatusNotFound || res.ContentType != "application/problem+json" {
		t.Errorf("bob's profile: %d %s", res.Status, res.Body)
	}
	h.getJSON("/api/v1/me/history?cursor="+first.NextCursor, bob, &hist)
	if len(hist.Items) != 0 {
		t.Errorf("bob sees %d orders", len(hist.Items))
	}
}

func TestReorderedEventsNeverMoveAnOrderBackwards(t *testing.T) {
	t.Parallel()
	h := start(t)
	ada := newID()
	h.PublishAt(newID(), contracts.TypeUserRegisteredV1, ada, sec(0), contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	// Address changes in reverse order: the newer one wins.
	work := contracts.Address{Name: "Ada", Line1: "2 Work Rd", City: "Hamburg", PostalCode: "20095", Country: "DE"}
	h.PublishAt(newID(), contracts.TypeUserAddressChangedV1, ada, sec(5), contracts.UserAddressChangedV1{UserID: ada, Address: work})
	h.PublishAt(newID(), contracts.TypeUserAddressChangedV1, ada, sec(1), contracts.UserAddressChangedV1{UserID: ada, Address: home})

	// A delivered order whose events arrive newest first, and a cancelled
	// one whose confirmation arrives after the cancellation.
	delivered, cancelled := newID(), newID()
	happy := lifecycle(delivered, ada, 10, "")
	for i := len(happy) - 1; i >= 0; i-- {
		e := happy[i]
		h.PublishAt(e.ID, e.Type, e.AggregateID, e.OccurredAt, e.Payload)
	}
	gone := lifecycle(cancelled, ada, 20, contracts.ReasonCustomerRequest)
	h.publishEvents([]outbox.Event{gone[2], gone[1], gone[0]})
	h.Eventually("every event applied", func() bool { return h.Applied() == 11 })

	var me meView
	h.getJSON("/api/v1/me", ada, &me)
	if me.Address == nil || *me.Address != work {
		t.Errorf("address = %+v, want the newer one", me.Address)
	}
	var hist historyView
	h.getJSON("/api/v1/me/history", ada, &hist)
	if len(hist.Items) != 2 {
		t.Fatalf("history = %+v", hist)
	}
	c, d := hist.Items[0], hist.Items[1]
	if c.OrderID != cancelled || c.Status != "cancelled" || *c.CancellationReason != "customer_request" || !c.PlacedAt.Equal(sec(20)) {
		t.Errorf("cancelled order = %+v", c)
	}
	if d.Status != "delivered" || !d.PlacedAt.Equal(sec(10)) || !d.UpdatedAt.Equal(sec(13)) || d.Total == nil {
		t.Errorf("delivered order = %+v", d)
	}
	for i := 1; i < len(d.Timeline); i++ {
		if d.Timeline[i].At.Before(d.Timeline[i-1].At) {
			t.Errorf("timeline out of order: %+v", d.Timeline)
		}
	}
	if len(d.Timeline) != 5 || d.Timeline[0].Type != "placed" {
		t.Errorf("timeline = %+v", d.Timeline)
	}
}

func TestReadModelRebuildsFromReplay(t *testing.T) {
	t.Parallel()
	h := start(t)
	users, orders := h.Producer("user"), h.Producer("order")
	users.Relay()
	orders.Relay()

	ada, bob := newID(), newID()
	users.Emit(
		outbox.Event{Type: contracts.TypeUserRegisteredV1, AggregateID: ada, OccurredAt: sec(0), Payload: contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"}},
		outbox.Event{Type: contracts.TypeUserRegisteredV1, AggregateID: bob, OccurredAt: sec(1), Payload: contracts.UserRegisteredV1{UserID: bob, Email: "bob@example.com", Name: "Bob"}},
		outbox.Event{Type: contracts.TypeUserAddressChangedV1, AggregateID: ada, OccurredAt: sec(2), Payload: contracts.UserAddressChangedV1{UserID: ada, Address: home}},
		outbox.Event{Type: contracts.TypeUserDeactivatedV1, AggregateID: bob, OccurredAt: sec(3), Payload: contracts.UserDeactivatedV1{UserID: bob}},
	)
	var history []outbox.Event
	history = append(history, lifecycle(newID(), ada, 10, "")...)
	history = append(history, lifecycle(newID(), ada, 20, contracts.ReasonPaymentDeclined)...)
	history = append(history, lifecycle(newID(), bob, 30, "")...)
	orders.Emit(history...)
	total := 4 + len(history)
	h.Eventually("the relayed history applied", func() bool { return h.Applied() == total })

	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, u := range []string{ada, bob} {
			for _, path := range []string{"/api/v1/me", "/api/v1/me/history?limit=100"} {
				res := h.do(http.MethodGet, path, u, nil)
				out[u+path] = string(res.Body)
			}
		}
		return out
	}
	before := snapshot()

	forgotten, err := customer.ResetReadModel(context.Background(), h.pool)
	if err != nil {
		t.Fatal(err)
	}
	if forgotten != int64(total) {
		t.Errorf("forgot %d inbox keys, want %d", forgotten, total)
	}
	if res := h.do(http.MethodGet, "/api/v1/me", ada, nil); res.Status != http.StatusNotFound {
		t.Fatalf("profile after reset: %d %s", res.Status, res.Body)
	}

	// `shopmesh replay --consumer customer` from every producer it reads.
	if n := users.Replay() + orders.Replay(); n != total {
		t.Errorf("replayed %d events, want %d", n, total)
	}
	h.Eventually("the replayed history applied", func() bool { return h.Applied() == total })
	after := snapshot()
	if !reflect.DeepEqual(after, before) {
		t.Errorf("rebuilt model differs:\nbefore %v\nafter  %v", before, after)
	}
	var me meView
	h.getJSON("/api/v1/me", ada, &me)
	if me.OrdersCount != 2 || me.Address == nil {
		t.Errorf("rebuilt profile = %+v", me)
	}

	// Replaying again without a reset changes nothing: the inbox absorbs it.
	users.Replay()
	h.Eventually("the second replay absorbed", func() bool {
		return h.Query(`SELECT COALESCE((SELECT count FROM inbox_duplicates WHERE consumer = 'inbox'), 0)`) == 4
	})
	if again := snapshot(); !reflect.DeepEqual(again, before) {
		t.Errorf("a second replay changed the model")
	}
}

func TestInvalidEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	h := start(t)
	ada, mallory, order := newID(), newID(), newID()
	placed := lifecycle(order, ada, 0, "")[0]
	h.PublishAt(placed.ID, placed.Type, order, placed.OccurredAt, placed.Payload)
	// Another customer's event for the same order, and an event without an
	// occurrence time.
	wrongOwner := newID()
	h.PublishAt(wrongOwner, contracts.TypeOrderShippedV1, order, sec(5), contracts.OrderShippedV1{OrderID: order, UserID: mallory,
		ShipmentID: newID(), Carrier: "simpost", TrackingNumber: "SP1"})
	noTime := newID()
	h.PublishAt(noTime, contracts.TypeUserRegisteredV1, ada, time.Time{}, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	badPayload := newID()
	h.PublishAt(badPayload, contracts.TypeOrderDeliveredV1, order, sec(6), []byte(`{"order_id":"`+order+`"}`))
	h.Eventually("three dead letters", func() bool {
		dls, err := outbox.ListDeadLetters(context.Background(), h.pool, false)
		return err == nil && len(dls) == 3
	})
	dls, _ := outbox.ListDeadLetters(context.Background(), h.pool, false)
	ids := map[string]bool{}
	for _, d := range dls {
		ids[d.MessageID] = true
	}
	if !ids[wrongOwner] || !ids[noTime] || !ids[badPayload] {
		t.Errorf("dead letters = %+v", dls)
	}
	var hist historyView
	h.getJSON("/api/v1/me/history", ada, &hist)
	if len(hist.Items) != 1 || hist.Items[0].Status != "pending" || len(hist.Items[0].Timeline) != 1 {
		t.Errorf("history = %+v", hist)
	}
	h.getJSON("/api/v1/me/history", mallory, &hist)
	if len(hist.Items) != 0 {
		t.Errorf("mallory sees %d orders", len(hist.Items))
	}
}

func TestAPIRejectsBadRequests(t *testing.T) {
	t.Parallel()
	h := start(t)
	user := newID()
	cases := []struct {
		name, method, path, user string
		want                     int
	}{
		{"me without identity", http.MethodGet, "/api/v1/me", "", http.StatusUnauthorized},
		{"history without identity", http.MethodGet, "/api/v1/me/history", "", http.StatusUnauthorized},
		{"unknown profile", http.MethodGet, "/api/v1/me", user, http.StatusNotFound},
		{"malformed identity", http.MethodGet, "/api/v1/me", "not-a-uuid", http.StatusNotFound},
		{"me with a parameter", http.MethodGet, "/api/v1/me?x=1", user, http.StatusUnprocessableEntity},
		{"limit not a number", http.MethodGet, "/api/v1/me/history?limit=ten", user, http.StatusUnprocessableEntity},
		{"limit zero", http.MethodGet, "/api/v1/me/history?limit=0", user, http.StatusUnprocessableEntity},
		{"limit negative", http.MethodGet, "/api/v1/me/history?limit=-1", user, http.StatusUnprocessableEntity},
		{"limit absurd", http.MethodGet, "/api/v1/me/history?limit=1000000", user, http.StatusUnprocessableEntity},
		{"limit twice", http.MethodGet, "/api/v1/me/history?limit=1&limit=2", user, http.StatusUnprocessableEntity},
		{"cursor garbage", http.MethodGet, "/api/v1/me/history?cursor=%%%", user, http.StatusBadRequest},
		{"cursor not base64", http.MethodGet, "/api/v1/me/history?cursor=not*base64", user, http.StatusUnprocessableEntity},
		{"cursor without id", http.MethodGet, "/api/v1/me/history?cursor=MTIz", user, http.StatusUnprocessableEntity},
		{"unknown parameter", http.MethodGet, "/api/v1/me/history?page=2", user, http.StatusUnprocessableEntity},
		{"write to me", http.MethodPut, "/api/v1/me", user, http.StatusMethodNotAllowed},
		{"write to history", http.MethodPost, "/api/v1/me/history", user, http.StatusMethodNotAllowed},
		{"unknown route", http.MethodGet, "/api/v1/me/orders", user, http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := h.For(t).do(c.method, c.path, c.user, []byte(`{"email": "evil@example.com"}`))
			if res.Status != c.want || res.ContentType != "application/problem+json" {
				t.Errorf("%s %s: %d %s %s, want %d problem+json", c.method, c.path, res.Status, res.ContentType, res.Body, c.want)
			}
		})
	}
	if n := h.Query(`SELECT count(*) FROM profiles`); n != 0 {
		t.Errorf("requests created %d profiles", n)
	}
}

// Events of several orders' whole lives that queued while the service was
// down are applied together: each order's entry is read once for the
// transaction and changed by one handler after another (a later handler
// sees what an earlier one wrote), and the batch commits without being
// split, every order ending delivered with each step once.
func TestQueuedOrderLivesApplyTogether(t *testing.T) {
	t.Parallel()
	h := start(t)
	ada := newID()
	h.PublishAt(newID(), contracts.TypeUserRegisteredV1, ada, sec(0), contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	h.Eventually("the registration applied", func() bool { return h.Applied() == 1 })
	h.Stop()
	orders := []string{newID(), newID(), newID()}
	for i, o := range orders {
		h.publishEvents(lifecycle(o, ada, 10*(i+1), ""))
	}
	h.Restart()
	h.Eventually("every event applied", func() bool { return h.Applied() == 16 })

	var hist historyView
	h.getJSON("/api/v1/me/history", ada, &hist)
	if len(hist.Items) != len(orders) {
		t.Fatalf("history = %+v", hist)
	}
	for _, item := range hist.Items {
		if item.Status != "delivered" || len(item.Timeline) != 5 || !item.UpdatedAt.Equal(item.PlacedAt.Add(3*time.Second)) {
			t.Errorf("order %s = %+v", item.OrderID, item)
		}
	}
	metrics := h.Metrics()
	if splits := metrics["shopmesh_consumer_batch_splits_total"]; splits != 0 {
		t.Errorf("%v batches split: a handler's write failed against another's in the same transaction", splits)
	}
	if txs, msgs := metrics["shopmesh_consumer_batch_messages_count"], metrics["shopmesh_consumer_batch_messages_sum"]; !(msgs > txs) {
		t.Errorf("%v messages in %v transactions since the restart: no batch to apply together", msgs, txs)
	}
}
