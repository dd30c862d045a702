package order_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
	"github.com/shopmesh/shopmesh/services/order/internal/postgres"
)

// scheduledTimeout is the payment timeout while it waits in the outbox's
// schedule: a durable delayed message, not a timer.
const scheduledTimeout = contracts.TypeOrderPaymentTimedOutV1 + " (scheduled)"

// TestSaga drives orders through every path of the saga on one running
// service, by publishing the other services' replies, and checks each order
// through the API and through the events the service publishes. Every reply
// is delivered twice and sent twice; only its first arrival may count.
func TestSaga(t *testing.T) {
	t.Parallel()
	h := start(t, time.Minute)

	t.Run("the answer withdraws the payment timeout, and a late one is ignored", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		_, expires := h.awaitPayment(t, o)
		if got := h.outboxCounts(t, o.id)[scheduledTimeout]; got != 1 {
			t.Fatalf("%d payment timeouts scheduled while the order waits for payment, want 1", got)
		}
		h.reply(t, o, "", contracts.TypePaymentAuthorizedV1)
		h.waitStatus(t, o, "confirmed")
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1, contracts.TypeOrderConfirmedV1: 1,
		})
		// A timeout the scheduler moved just before the answer withdrew it
		// still arrives, after the answer.
		h.For(t).Publish("", contracts.TypeOrderPaymentTimedOutV1, o.id, contracts.OrderPaymentTimedOutV1{OrderID: o.id, ExpiresAt: expires})
		h.settle(t, o)
		v, _ := h.getOrder(t, o)
		if v.Status != "confirmed" || slices.Contains(v.timeline(), "payment_timed_out") {
			t.Errorf("order after a stale timeout: %s, timeline %v", v.Status, v.timeline())
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1, contracts.TypeOrderConfirmedV1: 1,
		})
	})

	t.Run("happy path to delivered", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.checkout(t, o, "tok_ok")
		h.checkout(t, o, "tok_ok") // the cart retried its publish: same order id
		v := h.waitStatus(t, o, "pending")
		if v.Total != eur(total) || len(v.Lines) != 2 || v.Lines[0].ProductID != productMug || v.Lines[0].Quantity != 2 ||
			v.Lines[0].UnitPrice != eur(1250) || v.reason() != "" || v.ShippingAddress["country"] != "DE" {
			t.Errorf("placed order = %+v", v)
		}
		placed := h.published(t, o.id, contracts.TypeOrderPlacedV2)[0]
		if placed["user_id"] != o.user || len(placed["lines"].([]any)) != 2 {
			t.Errorf("order.placed = %v", placed)
		}

		h.replyTwice(t, o, contracts.TypeStockReservedV1)
		req := h.published(t, o.id, contracts.TypeOrderPaymentRequestedV1)[0]
		if req["payment_token"] != "tok_ok" || req["amount"].(map[string]any)["amount_minor"] != float64(total) {
			t.Errorf("order.payment_requested = %v", req)
		}
		expires, err := time.Parse(time.RFC3339Nano, req["expires_at"].(string))
		if err != nil || time.Until(expires) < 30*time.Second || time.Until(expires) > time.Minute {
			t.Errorf("payment expires at %v (%v), want about a minute from now", req["expires_at"], err)
		}

		h.replyTwice(t, o, contracts.TypePaymentAuthorizedV1)
		h.waitStatus(t, o, "confirmed")
		conf := h.published(t, o.id, contracts.TypeOrderConfirmedV1)[0]
		if conf["payment_id"] != o.payment || conf["shipping_address"].(map[string]any)["city"] != "Berlin" {
			t.Errorf("order.confirmed = %v", conf)
		}
		h.replyTwice(t, o, contracts.TypeShipmentCreatedV1)
		h.replyTwice(t, o, contracts.TypeShipmentDispatchedV1)
		h.waitStatus(t, o, "shipped")
		shipped := h.published(t, o.id, contracts.TypeOrderShippedV1)[0]
		if shipped["shipment_id"] != o.shipment || shipped["tracking_number"] != "SP-"+o.shipment[:8] {
			t.Errorf("order.shipped = %v", shipped)
		}
		h.replyTwice(t, o, contracts.TypeShipmentDeliveredV1)
		v = h.waitStatus(t, o, "delivered")
		h.published(t, o.id, contracts.TypeOrderDeliveredV1)
		completed := h.published(t, o.id, contracts.TypeOrderCompletedV1)[0]
		if completed["total"].(map[string]any)["amount_minor"] != float64(total) {
			t.Errorf("order.completed = %v", completed)
		}
		// Late and stray replies after the end change nothing.
		h.reply(t, o, "", contracts.TypePaymentDeclinedV1)
		h.reply(t, o, "", contracts.TypeShipmentFailedV1)
		h.settle(t, o)

		want := []string{"placed", "stock_reserved", "payment_requested", "payment_authorized", "confirmed",
			"shipment_created", "shipped", "delivered", "completed"}
		v, _ = h.getOrder(t, o)
		if got := v.timeline(); !slices.Equal(got, want) {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		for i := 1; i < len(v.Timeline); i++ {
			if v.Timeline[i].At.Before(v.Timeline[i-1].At) {
				t.Errorf("timeline out of order: %v", v.Timeline)
			}
		}
		var duplicates int
		if err := h.pool.QueryRow(h.ctx, `SELECT coalesce(sum(count), 0) FROM inbox_duplicates WHERE consumer = 'inbox'`).Scan(&duplicates); err != nil {
			t.Fatal(err)
		}
		if duplicates < 5 {
			t.Errorf("inbox absorbed %d duplicates, want at least the 5 redelivered replies", duplicates)
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderConfirmedV1: 1, contracts.TypeOrderShippedV1: 1, contracts.TypeOrderDeliveredV1: 1,
			contracts.TypeOrderCompletedV1: 1,
		})
	})

	t.Run("out of stock", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.place(t, o)
		h.replyTwice(t, o, contracts.TypeStockReservationFailedV1)
		v := h.waitStatus(t, o, "cancelled")
		if v.reason() != "out_of_stock" {
			t.Errorf("reason = %q, want out_of_stock", v.reason())
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if c["reason"] != "out_of_stock" || c["compensations"] != nil {
			t.Errorf("order.cancelled = %v, want out_of_stock without compensations", c)
		}
		h.reply(t, o, "", contracts.TypeStockReservedV1) // reordered: cannot revive the order
		h.settle(t, o)
		v, _ = h.getOrder(t, o)
		if got, want := v.timeline(), []string{"placed", "stock_reservation_failed", "cancelled"}; !slices.Equal(got, want) {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		h.assertPublished(t, o, map[string]int{contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderCancelledV1: 1})
	})

	t.Run("payment declined releases the reservation", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.place(t, o)
		h.reply(t, o, "", contracts.TypeStockReservedV1)
		h.replyTwice(t, o, contracts.TypePaymentDeclinedV1)
		v := h.waitStatus(t, o, "cancelled")
		if v.reason() != "payment_declined" {
			t.Errorf("reason = %q, want payment_declined", v.reason())
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if c["reason"] != "payment_declined" || !reflect.DeepEqual(c["compensations"], []any{"release_stock"}) {
			t.Errorf("order.cancelled = %v, want payment_declined releasing stock", c)
		}
		if len(c["lines"].([]any)) != 2 {
			t.Errorf("order.cancelled lines = %v", c["lines"])
		}
		h.replyTwice(t, o, contracts.TypeStockReleasedV1)
		h.reply(t, o, "", contracts.TypePaymentAuthorizedV1) // a decline is final: no stray authorization after it
		h.settle(t, o)
		v, _ = h.getOrder(t, o)
		want := []string{"placed", "stock_reserved", "payment_requested", "payment_declined", "cancelled", "stock_released",
			"payment_authorized", "refund_requested"}
		if got := v.timeline(); !slices.Equal(got, want) {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderCancelledV1: 1, contracts.TypeOrderRefundRequestedV1: 1,
		})
	})

	t.Run("undeliverable refunds once and returns stock", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		o.country = "ZZ"
		h.confirmed(t, o)
		h.reply(t, o, "", contracts.TypeShipmentDispatchedV1)
		h.waitStatus(t, o, "shipped")
		h.replyTwice(t, o, contracts.TypeShipmentFailedV1)
		v := h.waitStatus(t, o, "cancelled")
		if v.reason() != "undeliverable" {
			t.Errorf("reason = %q, want undeliverable", v.reason())
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if c["reason"] != "undeliverable" || !reflect.DeepEqual(c["compensations"], []any{"refund_payment", "return_stock"}) {
			t.Errorf("order.cancelled = %v, want undeliverable refunding and returning stock", c)
		}
		refund := h.published(t, o.id, contracts.TypeOrderRefundRequestedV1)[0]
		if refund["payment_id"] != o.payment || refund["reason"] != "undeliverable" ||
			refund["amount"].(map[string]any)["amount_minor"] != float64(total) {
			t.Errorf("order.refund_requested = %v", refund)
		}
		h.replyTwice(t, o, contracts.TypePaymentRefundedV1)
		h.replyTwice(t, o, contracts.TypeStockReturnedV1)
		h.reply(t, o, "", contracts.TypePaymentAuthorizedV1) // a resent authorization is not a new payment
		h.reply(t, o, "", contracts.TypeShipmentDeliveredV1)
		h.settle(t, o)
		v, _ = h.getOrder(t, o)
		want := []string{"placed", "stock_reserved", "payment_requested", "payment_authorized", "confirmed", "shipment_created",
			"shipped", "shipment_failed", "cancelled", "refund_requested", "refunded", "stock_returned"}
		if got := v.timeline(); !slices.Equal(got, want) {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderConfirmedV1: 1, contracts.TypeOrderShippedV1: 1, contracts.TypeOrderCancelledV1: 1,
			contracts.TypeOrderRefundRequestedV1: 1,
		})
	})

	t.Run("customer cancels while stock is reserved", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.place(t, o)
		res := h.cancel(t, o)
		v := decodeOrder(t, res, http.StatusAccepted)
		if v.Status != "cancelled" || v.reason() != "customer_request" {
			t.Errorf("cancel answered %s (%q), want cancelled (customer_request)", v.Status, v.reason())
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if c["reason"] != "customer_request" || !reflect.DeepEqual(c["compensations"], []any{"release_stock"}) {
			t.Errorf("order.cancelled = %v, want customer_request releasing stock", c)
		}
		// Inventory had already reserved: it releases on order.cancelled, the
		// late reservation does not revive the order.
		h.reply(t, o, "", contracts.TypeStockReservedV1)
		if again := decodeOrder(t, h.cancel(t, o), http.StatusAccepted); again.Status != "cancelled" {
			t.Errorf("second cancel answered %s", again.Status)
		}
		h.settle(t, o)
		h.assertPublished(t, o, map[string]int{contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderCancelledV1: 1})
	})

	t.Run("customer cancels while payment is pending", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.place(t, o)
		h.reply(t, o, "", contracts.TypeStockReservedV1)
		h.published(t, o.id, contracts.TypeOrderPaymentRequestedV1)
		v := decodeOrder(t, h.cancel(t, o), http.StatusAccepted)
		if v.Status != "cancelled" || v.reason() != "customer_request" {
			t.Errorf("cancel answered %s (%q)", v.Status, v.reason())
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if !reflect.DeepEqual(c["compensations"], []any{"release_stock"}) {
			t.Errorf("order.cancelled = %v, want release_stock", c)
		}
		// Payment answers after all: the money goes back, once.
		h.replyTwice(t, o, contracts.TypePaymentAuthorizedV1)
		refund := h.published(t, o.id, contracts.TypeOrderRefundRequestedV1)[0]
		if refund["payment_id"] != o.payment || refund["reason"] != "customer_request" {
			t.Errorf("order.refund_requested = %v", refund)
		}
		h.settle(t, o)
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderCancelledV1: 1, contracts.TypeOrderRefundRequestedV1: 1,
		})
	})

	t.Run("customer cancels a confirmed order before dispatch", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.confirmed(t, o)
		v := decodeOrder(t, h.cancel(t, o), http.StatusAccepted)
		if v.Status != "confirmed" || !slices.Contains(v.timeline(), "cancellation_requested") {
			t.Errorf("cancel answered %s with timeline %v, want confirmed awaiting shipping", v.Status, v.timeline())
		}
		req := h.published(t, o.id, contracts.TypeOrderCancellationRequestedV1)[0]
		if req["reason"] != "customer_request" || req["user_id"] != o.user {
			t.Errorf("order.cancellation_requested = %v", req)
		}
		decodeOrder(t, h.cancel(t, o), http.StatusAccepted) // asked twice: asked once
		h.replyTwice(t, o, contracts.TypeShipmentCancelledV1)
		v = h.waitStatus(t, o, "cancelled")
		if v.reason() != "customer_request" {
			t.Errorf("reason = %q, want customer_request", v.reason())
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if !reflect.DeepEqual(c["compensations"], []any{"refund_payment", "return_stock"}) {
			t.Errorf("order.cancelled = %v, want refund and stock return", c)
		}
		if refund := h.published(t, o.id, contracts.TypeOrderRefundRequestedV1)[0]; refund["payment_id"] != o.payment {
			t.Errorf("order.refund_requested = %v", refund)
		}
		h.reply(t, o, "", contracts.TypeShipmentDispatchedV1) // shipping promised never to: ignored
		h.settle(t, o)
		v, _ = h.getOrder(t, o)
		want := []string{"placed", "stock_reserved", "payment_requested", "payment_authorized", "confirmed", "shipment_created",
			"cancellation_requested", "shipment_cancelled", "cancelled", "refund_requested"}
		if got := v.timeline(); !slices.Equal(got, want) {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderConfirmedV1: 1, contracts.TypeOrderCancellationRequestedV1: 1, contracts.TypeOrderCancelledV1: 1,
			contracts.TypeOrderRefundRequestedV1: 1,
		})
	})

	t.Run("customer cancel loses the race with dispatch", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.confirmed(t, o)
		decodeOrder(t, h.cancel(t, o), http.StatusAccepted)
		h.published(t, o.id, contracts.TypeOrderCancellationRequestedV1)
		// Shipping had dispatched before it read the request: it reports the
		// dispatch and nothing else.
		h.replyTwice(t, o, contracts.TypeShipmentDispatchedV1)
		v := h.waitStatus(t, o, "shipped")
		if !slices.Contains(v.timeline(), "cancellation_refused") || v.reason() != "" {
			t.Errorf("timeline = %v, reason %q: want the cancellation refused", v.timeline(), v.reason())
		}
		res := h.cancel(t, o)
		expectProblem(t, res, http.StatusConflict, "order-already-dispatched")
		h.settle(t, o)
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderConfirmedV1: 1, contracts.TypeOrderCancellationRequestedV1: 1, contracts.TypeOrderShippedV1: 1,
		})
	})

	t.Run("cancel after dispatch is refused", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.confirmed(t, o)
		h.reply(t, o, "", contracts.TypeShipmentDispatchedV1)
		h.waitStatus(t, o, "shipped")
		expectProblem(t, h.cancel(t, o), http.StatusConflict, "order-already-dispatched")
		h.reply(t, o, "", contracts.TypeShipmentDeliveredV1)
		h.waitStatus(t, o, "delivered")
		expectProblem(t, h.cancel(t, o), http.StatusConflict, "order-already-dispatched")
		h.settle(t, o)
		counts := h.outboxCounts(t, o.id)
		if counts[contracts.TypeOrderCancelledV1] != 0 || counts[contracts.TypeOrderCancellationRequestedV1] != 0 {
			t.Errorf("refused cancellations published %v", counts)
		}
	})

	t.Run("another customer's order is not found", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		h.place(t, o)
		mallory := outbox.NewID()
		for _, res := range []response{
			h.request(t, http.MethodGet, "/api/v1/orders/"+o.id, mallory, nil, nil),
			h.request(t, http.MethodPost, "/api/v1/orders/"+o.id+"/cancel", mallory, nil, nil),
			h.request(t, http.MethodGet, "/api/v1/orders/"+outbox.NewID(), o.user, nil, nil),
			h.request(t, http.MethodPost, "/api/v1/orders/"+outbox.NewID()+"/cancel", o.user, nil, nil),
		} {
			expectProblem(t, res, http.StatusNotFound, "order-not-found")
		}
		list := h.request(t, http.MethodGet, "/api/v1/orders", mallory, nil, nil)
		if list.Status != http.StatusOK || !strings.Contains(string(list.Body), `"items":[]`) {
			t.Errorf("another customer's list = %d %s, want empty", list.Status, list.Body)
		}
		if v := h.waitStatus(t, o, "pending"); slices.Contains(v.timeline(), "cancelled") {
			t.Errorf("another customer cancelled the order")
		}
	})

	t.Run("list own orders newest first with paging", func(t *testing.T) {
		t.Parallel()
		user := outbox.NewID()
		var ids []string
		for range 3 {
			o := newOrder()
			o.user = user
			h.place(t, o)
			ids = append(ids, o.id)
		}
		slices.Reverse(ids)
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			path := "/api/v1/orders?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			res := h.request(t, http.MethodGet, path, user, nil, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("list: %d %s", res.Status, res.Body)
			}
			var body struct {
				Items      []orderJSON `json:"items"`
				NextCursor string      `json:"next_cursor"`
			}
			if err := json.Unmarshal(res.Body, &body); err != nil {
				t.Fatal(err)
			}
			for _, it := range body.Items {
				got = append(got, it.ID)
				if it.Status != "pending" || len(it.Timeline) == 0 {
					t.Errorf("listed order = %+v", it)
				}
			}
			if body.NextCursor == "" {
				if page != 1 {
					t.Errorf("%d pages, want 2", page+1)
				}
				break
			}
			if page > 2 {
				t.Fatal("paging does not end")
			}
			cursor = body.NextCursor
		}
		if !slices.Equal(got, ids) {
			t.Errorf("listed %v, want newest first %v", got, ids)
		}
	})
}

// TestPaymentTimeout runs with a short payment timeout: the order gives up
// waiting through the saga's own delayed message, and a late authorization
// is refunded exactly once.
func TestPaymentTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 1500 * time.Millisecond
	h := start(t, timeout)

	t.Run("no answer cancels and releases, a late authorization is refunded once", func(t *testing.T) {
		t.Parallel()
		o := newOrder()
		req, expires := h.awaitPayment(t, o)
		v := h.waitStatus(t, o, "cancelled")
		if v.reason() != "payment_timeout" {
			t.Errorf("reason = %q, want payment_timeout", v.reason())
		}
		if cancelledAt := v.Timeline[len(v.Timeline)-1].At; cancelledAt.Before(expires) {
			t.Errorf("cancelled at %s, before the deadline %s", cancelledAt, expires)
		}
		c := h.published(t, o.id, contracts.TypeOrderCancelledV1)[0]
		if c["reason"] != "payment_timeout" || !reflect.DeepEqual(c["compensations"], []any{"release_stock"}) {
			t.Errorf("order.cancelled = %v, want payment_timeout releasing stock", c)
		}
		timedOut := h.published(t, o.id, contracts.TypeOrderPaymentTimedOutV1)[0]
		if timedOut["expires_at"] != req["expires_at"] {
			t.Errorf("timeout for %v, want %v", timedOut["expires_at"], req["expires_at"])
		}

		h.replyTwice(t, o, contracts.TypePaymentAuthorizedV1)
		refund := h.published(t, o.id, contracts.TypeOrderRefundRequestedV1)[0]
		if refund["payment_id"] != o.payment || refund["reason"] != "payment_timeout" ||
			refund["amount"].(map[string]any)["amount_minor"] != float64(total) {
			t.Errorf("order.refund_requested = %v", refund)
		}
		h.reply(t, o, "", contracts.TypePaymentDeclinedV1)
		h.settle(t, o)
		v, _ = h.getOrder(t, o)
		want := []string{"placed", "stock_reserved", "payment_requested", "payment_timed_out", "cancelled",
			"payment_authorized", "refund_requested"}
		if got := v.timeline(); !slices.Equal(got, want) {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1, contracts.TypeOrderPaymentTimedOutV1: 1,
			contracts.TypeOrderCancelledV1: 1, contracts.TypeOrderRefundRequestedV1: 1,
		})
	})
}

// TestBadInput sends what a client or a broken producer might: every route
// answers a clear problem and nothing changes; a message that breaks its
// contract or names no known order is dead-lettered with its reason.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := start(t, time.Minute)
	o := newOrder()
	h.place(t, o)
	id := o.id

	t.Run("routes", func(t *testing.T) {
		json := http.Header{"Content-Type": {"application/json"}}
		tests := []struct {
			name         string
			method, path string
			user         string
			body         string
			header       http.Header
			status       int
			problem      string
		}{
			{"list without identity", "GET", "/api/v1/orders", "", "", nil, 401, "unauthenticated"},
			{"get without identity", "GET", "/api/v1/orders/" + id, "", "", nil, 401, "unauthenticated"},
			{"cancel without identity", "POST", "/api/v1/orders/" + id + "/cancel", "", "", nil, 401, "unauthenticated"},
			{"identity that is no user id", "GET", "/api/v1/orders/" + id, "admin", "", nil, 401, "unauthenticated"},
			{"get malformed id", "GET", "/api/v1/orders/42", o.user, "", nil, 400, "invalid-id"},
			{"get id with junk", "GET", "/api/v1/orders/" + id + "x", o.user, "", nil, 400, "invalid-id"},
			{"cancel malformed id", "POST", "/api/v1/orders/not-a-uuid/cancel", o.user, "", nil, 400, "invalid-id"},
			{"cancel malformed JSON", "POST", "/api/v1/orders/" + id + "/cancel", o.user, `{"reason":`, json, 400, "malformed-json"},
			{"cancel unknown field", "POST", "/api/v1/orders/" + id + "/cancel", o.user, `{"status":"delivered"}`, json, 422, "validation"},
			{"cancel wrong type", "POST", "/api/v1/orders/" + id + "/cancel", o.user, `[1,2]`, json, 422, "validation"},
			{"cancel duplicate keys", "POST", "/api/v1/orders/" + id + "/cancel", o.user, `{"a":1,"a":2}`, json, 400, "malformed-json"},
			{"cancel oversized body", "POST", "/api/v1/orders/" + id + "/cancel", o.user, `{"x":"` + strings.Repeat("a", 70000) + `"}`, json, 413, "body-too-large"},
			{"cancel not JSON", "POST", "/api/v1/orders/" + id + "/cancel", o.user, `reason=changed-my-mind`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415, "unsupported-media-type"},
			{"list limit zero", "GET", "/api/v1/orders?limit=0", o.user, "", nil, 422, "validation"},
			{"list limit absurd", "GET", "/api/v1/orders?limit=1000000", o.user, "", nil, 422, "validation"},
			{"list limit negative", "GET", "/api/v1/orders?limit=-5", o.user, "", nil, 422, "validation"},
			{"list limit not a number", "GET", "/api/v1/orders?limit=ten", o.user, "", nil, 422, "validation"},
			{"list forged cursor", "GET", "/api/v1/orders?cursor=bm90LWEtY3Vyc29y", o.user, "", nil, 422, "validation"},
			{"wrong method", "DELETE", "/api/v1/orders/" + id, o.user, "", nil, 405, "method-not-allowed"},
			{"another route", "GET", "/api/v1/ordersx", o.user, "", nil, 404, "not-found"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res := h.request(t, tc.method, tc.path, tc.user, []byte(tc.body), tc.header)
				expectProblem(t, res, tc.status, tc.problem)
			})
		}
		if v := h.waitStatus(t, o, "pending"); len(v.Timeline) != 1 {
			t.Errorf("bad requests changed the order: %v", v.timeline())
		}
		if empty := h.request(t, "POST", "/api/v1/orders/"+id+"/cancel", o.user, []byte(`{}`), json); empty.Status != http.StatusAccepted {
			t.Errorf("cancel with an empty object: %d %s", empty.Status, empty.Body)
		}
	})

	t.Run("messages", func(t *testing.T) {
		bad := newOrder()
		wrongTotal := contracts.CartCheckedOutV1{
			OrderID: bad.id, UserID: bad.user, Lines: bad.lines(), Total: eur(total + 1),
			ShippingAddress: contracts.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
			PaymentToken:    "tok_ok", IdempotencyKey: "k",
		}
		body, _ := json.Marshal(wrongTotal)
		h.For(t).Publish("", contracts.TypeCartCheckedOutV1, bad.user, body)
		h.For(t).Publish("", contracts.TypeStockReservedV1, bad.id, []byte(`{"order_id":"`+bad.id+`"}`))
		h.For(t).Publish("", contracts.TypeStockReservedV1, bad.id, []byte(`not json`))
		unknown := newOrder()
		h.reply(t, unknown, "", contracts.TypePaymentAuthorizedV1)

		var reasons []string
		h.For(t).Poll("four dead letters", func() (bool, string) {
			letters, err := outbox.ListDeadLetters(h.ctx, h.pool, false)
			if err != nil {
				return false, err.Error()
			}
			reasons = reasons[:0]
			for _, l := range letters {
				reasons = append(reasons, l.Type+": "+l.Reason)
			}
			return len(letters) == 4, fmt.Sprint(reasons)
		})
		for _, want := range []string{"not the sum of the lines", "order not found"} {
			if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, want) }) {
				t.Errorf("no dead letter mentions %q: %v", want, reasons)
			}
		}
		if _, status := h.getOrder(t, bad); status != http.StatusNotFound {
			t.Errorf("an invalid checkout became an order (%d)", status)
		}
	})
}

func decodeOrder(t *testing.T, res response, status int) orderJSON {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status %d, want %d: %s", res.Status, status, res.Body)
	}
	var v orderJSON
	if err := json.Unmarshal(res.Body, &v); err != nil {
		t.Fatalf("decode order: %v: %s", err, res.Body)
	}
	return v
}

func expectProblem(t *testing.T, res response, status int, code string) {
	t.Helper()
	if res.Status != status {
		t.Errorf("status %d, want %d: %s", res.Status, status, res.Body)
		return
	}
	if res.ContentType != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json", res.ContentType)
	}
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(res.Body, &p); err != nil {
		t.Errorf("problem does not decode: %v: %s", err, res.Body)
		return
	}
	if want := "https://shopmesh.dev/problems/" + code; p.Type != want || p.Status != status {
		t.Errorf("problem %s (%d), want %s (%d)", p.Type, p.Status, want, status)
	}
}

// assertPublished compares what the service wrote to its outbox for the
// order with want, exactly, and checks that every one of those events
// reached the broker.
func (h *harness) assertPublished(t *testing.T, o testOrder, want map[string]int) {
	t.Helper()
	if got := h.outboxCounts(t, o.id); !reflect.DeepEqual(got, want) {
		t.Errorf("published %v,\nwant %v", got, want)
	}
	for typ := range want {
		if !strings.HasSuffix(typ, " (scheduled)") {
			h.published(t, o.id, typ)
		}
	}
}

// TestLongPoll follows an order through the real service: a read that
// waits for an order not placed yet answers once its checkout is consumed,
// a conditional read of it is 304, a waiting read answers when a saga
// step commits, and one that sees no change answers 304 when its wait is
// over (rechecking the order's revision on the way).
func TestLongPoll(t *testing.T) {
	t.Parallel()
	h := start(t, time.Minute)
	o := newOrder()

	appeared := h.getAsync(t, o, "", "wait=10")
	h.checkout(t, o, "tok_ok")
	res := awaitResponse(t, appeared)
	etag := res.Header.Get("Etag")
	if res.Status != http.StatusOK || etag == "" || res.Header.Get("Preference-Applied") != "wait=10" {
		t.Fatalf("waiting for the order to appear: %d, ETag %q, Preference-Applied %q: %s",
			res.Status, etag, res.Header.Get("Preference-Applied"), res.Body)
	}
	if res := h.request(t, http.MethodGet, "/api/v1/orders/"+o.id, o.user, nil, http.Header{"If-None-Match": {etag}}); res.Status != http.StatusNotModified {
		t.Errorf("conditional read of an unchanged order: %d, want 304", res.Status)
	}

	moved := h.getAsync(t, o, etag, "wait=10")
	h.reply(t, o, "", contracts.TypeStockReservedV1)
	res = awaitResponse(t, moved)
	var v orderJSON
	if res.Status != http.StatusOK || res.Header.Get("Etag") == etag || json.Unmarshal(res.Body, &v) != nil || !slices.Contains(v.timeline(), "stock_reserved") {
		t.Fatalf("waiting for a saga step: %d, ETag %q (had %q): %s", res.Status, res.Header.Get("Etag"), etag, res.Body)
	}

	etag = res.Header.Get("Etag")
	began := time.Now()
	res = awaitResponse(t, h.getAsync(t, o, etag, "wait=2"))
	if res.Status != http.StatusNotModified || time.Since(began) < 2*time.Second {
		t.Errorf("waiting on an unchanged order: %d after %s, want 304 after the 2s wait", res.Status, time.Since(began))
	}

	// The rechecks read the revision alone; a failed read of it would only
	// cost a whole read, so check it here.
	ob, err := outbox.New(order.Name)
	if err != nil {
		t.Fatal(err)
	}
	store, err := postgres.NewStore(h.pool, ob)
	if err != nil {
		t.Fatal(err)
	}
	user, revision, err := store.Revision(h.ctx, domain.OrderID(o.id))
	if err != nil || string(user) != o.user || revision < 2 {
		t.Errorf("revision of an order placed and reserved: owner %s, revision %d, %v; want %s, at least 2", user, revision, err, o.user)
	}
	if _, _, err := store.Revision(h.ctx, domain.OrderID(outbox.NewID())); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("revision of an order that does not exist: %v, want ErrNotFound", err)
	}
}

// getAsync reads the order in the background, conditionally on etag (when
// not empty) and with Prefer: prefer.
func (h *harness) getAsync(t *testing.T, o testOrder, etag, prefer string) <-chan response {
	t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, h.BaseURL+"/api/v1/orders/"+o.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpkit.HeaderUserID, o.user)
	req.Header.Set(httpkit.HeaderUserRole, "customer")
	req.Header.Set("Prefer", prefer)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	done := make(chan response, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- response{Status: -1, Body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		done <- response{Status: res.StatusCode, Header: res.Header, Body: body}
	}()
	return done
}

func awaitResponse(t *testing.T, done <-chan response) response {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(20 * time.Second):
		t.Fatal("no answer within 20s")
		return response{}
	}
}

// Saga replies that queued while the service was down apply together: a
// worker's batch holds several replies, of one order and of others, and
// the first lock of its transaction locks and reads every order the batch
// names, later locks answered from what the transaction wrote since. Every
// order still walks its saga exactly, each step once and each event
// published once, and no batch splits: an update from a stale revision or
// a timeline entry at a taken position would fail on the server.
func TestQueuedRepliesApplyTogether(t *testing.T) {
	t.Parallel()
	h := start(t, time.Minute)
	orders := []testOrder{newOrder(), newOrder(), newOrder()}
	for _, o := range orders {
		h.place(t, o)
	}
	h.Stop()
	for _, typ := range []string{contracts.TypeStockReservedV1, contracts.TypePaymentAuthorizedV1,
		contracts.TypeShipmentCreatedV1, contracts.TypeShipmentDispatchedV1, contracts.TypeShipmentDeliveredV1} {
		for _, o := range orders {
			h.reply(t, o, "", typ)
		}
	}
	h.Restart()

	want := []string{"placed", "stock_reserved", "payment_requested", "payment_authorized", "confirmed",
		"shipment_created", "shipped", "delivered", "completed"}
	for _, o := range orders {
		if v := h.waitStatus(t, o, "delivered"); !slices.Equal(v.timeline(), want) {
			t.Errorf("order %s: timeline %v, want %v", o.id, v.timeline(), want)
		}
		h.assertPublished(t, o, map[string]int{
			contracts.TypeOrderPlacedV2: 1, contracts.TypeOrderPaymentRequestedV1: 1,
			contracts.TypeOrderConfirmedV1: 1, contracts.TypeOrderShippedV1: 1, contracts.TypeOrderDeliveredV1: 1,
			contracts.TypeOrderCompletedV1: 1,
		})
	}
	metrics := h.Metrics()
	if splits := metrics["shopmesh_consumer_batch_splits_total"]; splits != 0 {
		t.Errorf("%v batches split: a reply's write failed against another's in the same transaction", splits)
	}
	if txs, msgs := metrics["shopmesh_consumer_batch_messages_count"], metrics["shopmesh_consumer_batch_messages_sum"]; !(msgs > txs) {
		t.Errorf("%v replies in %v transactions since the restart: no batch to apply together", msgs, txs)
	}
}
