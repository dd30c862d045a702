// Package e2e drives the whole system through the public gateway over real
// HTTP, with every service running from the real binary against real
// PostgreSQL and RabbitMQ, and checks each saga path and its compensations in
// every affected service.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/system"
)

const sagaTimeout = 45 * time.Second

func TestCustomerJourney(t *testing.T) {
	sys := system.Start(t, system.Options{Env: map[string]string{
		// Long enough to cancel a confirmed order before dispatch.
		"SHOPMESH_SHIPPING_DISPATCH_DELAY": "2s",
		"SHOPMESH_SHIPPING_DELIVERY_DELAY": "300ms",
		// Long enough never to race a real answer on a loaded machine;
		// TestPaymentTimeout runs its own system with a short timeout.
		"SHOPMESH_ORDER_PAYMENT_TIMEOUT": "30s",
	}})
	admin := sys.Admin()
	t.Run("scenarios", func(t *testing.T) { journeyScenarios(t, sys, admin) })
	assertSettled(t, sys)
}

func journeyScenarios(t *testing.T, sys *system.System, admin *system.Client) {
	t.Run("delivered", func(t *testing.T) {
		t.Parallel()
		p := admin.CreateProduct(sku("happy"), 1999, 10)
		c := sys.Customer("happy")
		c.AddToCart(p.ID, 2)
		id := c.Checkout(outbox.NewID(), "tok_ok", system.DefaultAddress("GB"))
		o := c.WaitOrder(id, "delivered", sagaTimeout)
		if o.Total.AmountMinor != 3998 || o.Total.Currency != "EUR" {
			t.Errorf("total = %+v, want 3998 EUR", o.Total)
		}
		for _, step := range []string{"confirmed", "shipped", "delivered"} {
			if !timelineHas(o, step) {
				t.Errorf("timeline %+v lacks %q", o.Timeline, step)
			}
		}
		waitStock(t, admin, p.ID, system.Stock{OnHand: 8, Reserved: 0, Available: 8})
		pay := getJSON(t, c, "/api/v1/orders/"+id+"/payment")
		if pay["status"] != "authorized" {
			t.Errorf("payment = %v, want authorized", pay)
		}
		inv := getJSON(t, c, "/api/v1/orders/"+id+"/invoice")
		if inv["invoice"] == nil || len(list(inv["credit_notes"])) != 0 {
			t.Errorf("invoice view = %v, want one invoice and no credit note", inv)
		}
		ship := getJSON(t, c, "/api/v1/orders/"+id+"/shipment")
		if ship["status"] != "delivered" {
			t.Errorf("shipment = %v, want delivered", ship)
		}
		waitNotifications(t, c, 3)
		system.Eventually(t, sagaTimeout, "points for the delivered order", func() (bool, string) {
			pts := getJSON(t, c, "/api/v1/me/points")
			awarded := 0
			for _, e := range list(pts["entries"]) {
				if e.(map[string]any)["order_id"] == id {
					awarded++
				}
			}
			return awarded == 1, fmt.Sprint(pts)
		})
		system.Eventually(t, sagaTimeout, "order history", func() (bool, string) {
			h := getJSON(t, c, "/api/v1/me/history")
			for _, e := range list(h["items"]) {
				if m := e.(map[string]any); m["order_id"] == id && m["status"] == "delivered" {
					return true, ""
				}
			}
			return false, fmt.Sprint(h)
		})
		system.Eventually(t, sagaTimeout, "sales report counts the order", func() (bool, string) {
			r := getJSON(t, admin, "/api/v1/admin/reports/sales")
			for _, tot := range list(r["totals"]) {
				if m := tot.(map[string]any); m["currency"] == "EUR" && m["orders_confirmed"].(float64) >= 1 {
					return true, ""
				}
			}
			return false, fmt.Sprint(r)
		})
	})

	t.Run("out of stock", func(t *testing.T) {
		t.Parallel()
		c, id, _ := cancelledCheckout{name: "scarce", price: 500, stock: 1, quantity: 2, token: "tok_ok", country: "GB", reason: "out_of_stock"}.run(t, sys, admin)
		if r := c.Do("GET", "/api/v1/orders/"+id+"/invoice", nil); r.Status != http.StatusNotFound {
			t.Errorf("invoice of an unconfirmed order = %d %s, want 404", r.Status, r.Body)
		}
	})

	t.Run("payment declined", func(t *testing.T) {
		t.Parallel()
		c, id, _ := cancelledCheckout{name: "declined", price: 700, stock: 5, quantity: 3, token: "tok_decline", country: "GB", reason: "payment_declined"}.run(t, sys, admin)
		if pay := getJSON(t, c, "/api/v1/orders/"+id+"/payment"); pay["status"] != "declined" {
			t.Errorf("payment = %v, want declined", pay)
		}
	})

	t.Run("undeliverable", func(t *testing.T) {
		t.Parallel()
		c, id, o := cancelledCheckout{name: "nowhere", price: 1250, stock: 6, quantity: 2, token: "tok_ok", country: "ZZ", reason: "undeliverable"}.run(t, sys, admin)
		if !timelineHas(o, "confirmed") {
			t.Errorf("order = %+v, want confirmed then cancelled as undeliverable", o)
		}
		waitRefundAndCreditNote(t, c, id, 2500)
	})

	t.Run("customer cancels a pending order", func(t *testing.T) {
		t.Parallel()
		p := admin.CreateProduct(sku("regret"), 300, 3)
		c := sys.Customer("regret")
		c.AddToCart(p.ID, 2)
		// tok_timeout keeps the order pending (awaiting payment) for a while.
		id := c.Checkout(outbox.NewID(), "tok_timeout", system.DefaultAddress("GB"))
		system.Eventually(t, sagaTimeout, "stock reserved", func() (bool, string) {
			s := admin.Stock(p.ID)
			return s.Reserved == 2, fmt.Sprintf("%+v", s)
		})
		c.Expect(http.StatusAccepted, nil, "POST", "/api/v1/orders/"+id+"/cancel", nil)
		o := c.WaitOrder(id, "cancelled", sagaTimeout)
		if o.CancellationReason != "customer_request" {
			t.Errorf("reason = %q, want customer_request", o.CancellationReason)
		}
		waitStock(t, admin, p.ID, system.Stock{OnHand: 3, Reserved: 0, Available: 3})
	})

	t.Run("customer cancels a confirmed order before dispatch", func(t *testing.T) {
		t.Parallel()
		p := admin.CreateProduct(sku("second-thoughts"), 4000, 2)
		c := sys.Customer("second")
		c.AddToCart(p.ID, 1)
		id := c.Checkout(outbox.NewID(), "tok_ok", system.DefaultAddress("GB"))
		c.WaitOrder(id, "confirmed", sagaTimeout)
		c.Expect(http.StatusAccepted, nil, "POST", "/api/v1/orders/"+id+"/cancel", nil)
		o := c.WaitOrder(id, "cancelled", sagaTimeout)
		if o.CancellationReason != "customer_request" {
			t.Errorf("reason = %q, want customer_request", o.CancellationReason)
		}
		waitStock(t, admin, p.ID, system.Stock{OnHand: 2, Reserved: 0, Available: 2})
		waitRefundAndCreditNote(t, c, id, 4000)
		if ship := getJSON(t, c, "/api/v1/orders/"+id+"/shipment"); ship["status"] == "dispatched" || ship["status"] == "delivered" {
			t.Errorf("a cancelled order's shipment went out: %v", ship)
		}
	})

	t.Run("checkout is idempotent", func(t *testing.T) {
		t.Parallel()
		p := admin.CreateProduct(sku("twice"), 100, 10)
		c := sys.Customer("twice")
		c.AddToCart(p.ID, 1)
		key := outbox.NewID()
		first := c.Checkout(key, "tok_ok", system.DefaultAddress("GB"))
		second := c.Checkout(key, "tok_ok", system.DefaultAddress("GB"))
		if first != second {
			t.Errorf("same key and body gave orders %s and %s", first, second)
		}
		r := c.Do("POST", "/api/v1/cart/checkout", map[string]any{
			"shipping_address": system.DefaultAddress("FR"), "payment": map[string]string{"token": "tok_ok"},
		}, "Idempotency-Key", key)
		if r.Status != http.StatusUnprocessableEntity || !isProblem(r) {
			t.Errorf("same key, other body = %d %s, want a 422 problem", r.Status, r.Body)
		}
		c.WaitOrder(first, "delivered", sagaTimeout)
		var orders []map[string]any
		r = c.Expect(http.StatusOK, nil, "GET", "/api/v1/orders", nil)
		orders = ordersOf(t, r)
		if len(orders) != 1 {
			t.Errorf("customer has %d orders, want 1", len(orders))
		}
		waitStock(t, admin, p.ID, system.Stock{OnHand: 9, Reserved: 0, Available: 9})
	})

	t.Run("other customers' orders are not found", func(t *testing.T) {
		t.Parallel()
		p := admin.CreateProduct(sku("private"), 100, 5)
		owner := sys.Customer("owner")
		owner.AddToCart(p.ID, 1)
		id := owner.Checkout(outbox.NewID(), "tok_ok", system.DefaultAddress("GB"))
		owner.WaitOrder(id, "delivered", sagaTimeout)
		stranger := sys.Customer("stranger")
		for _, path := range []string{"", "/payment", "/shipment", "/invoice"} {
			if r := stranger.Do("GET", "/api/v1/orders/"+id+path, nil); r.Status != http.StatusNotFound || !isProblem(r) {
				t.Errorf("stranger GET order%s = %d %s, want a 404 problem", path, r.Status, r.Body)
			}
		}
		if r := stranger.Do("POST", "/api/v1/orders/"+id+"/cancel", nil); r.Status != http.StatusNotFound {
			t.Errorf("stranger cancel = %d, want 404", r.Status)
		}
		if r := stranger.Expect(http.StatusOK, nil, "GET", "/api/v1/orders", nil); len(ordersOf(t, r)) != 0 {
			t.Errorf("stranger lists another customer's orders: %s", r.Body)
		}
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		t.Parallel()
		p := admin.CreateProduct(sku("strict"), 100, 5)
		c := sys.Customer("strict")
		c.AddToCart(p.ID, 1)
		anon := sys.Client()
		forged := sys.Client()
		forged.Token = c.Token[:len(c.Token)-4] + "AAAA"
		cases := []struct {
			name   string
			client *system.Client
			method string
			path   string
			body   any
			want   int
		}{
			{"malformed JSON", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": `), 400},
			{"unknown field", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": 1, "discount": 100}`), 422},
			{"wrong type", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": "lots"}`), 422},
			{"negative quantity", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": -3}`), 422},
			{"absurd quantity", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": 1000000000}`), 422},
			{"duplicate key", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": 1, "quantity": 9}`), 400},
			{"oversized body", c, "PUT", "/api/v1/cart/items/" + p.ID, []byte(`{"quantity": 1, "x": "` + strings.Repeat("a", 200<<10) + `"}`), 413},
			{"no token", anon, "GET", "/api/v1/cart", nil, 401},
			{"forged token", forged, "GET", "/api/v1/cart", nil, 401},
			{"customer on admin route", c, "POST", "/api/v1/admin/products", map[string]any{"sku": "x"}, 403},
			{"checkout without idempotency key", c, "POST", "/api/v1/cart/checkout", map[string]any{
				"shipping_address": system.DefaultAddress("GB"), "payment": map[string]string{"token": "tok_ok"}}, 400},
		}
		for _, tc := range cases {
			r := tc.client.Do(tc.method, tc.path, tc.body)
			if r.Status != tc.want {
				t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, r.Status, trim(r.Body), tc.want)
			}
			if !isProblem(r) {
				t.Errorf("%s: answer is not application/problem+json: %v %s", tc.name, r.Header.Get("Content-Type"), trim(r.Body))
			}
		}
		cart := getJSON(t, c, "/api/v1/cart")
		lines := list(cart["lines"])
		if len(lines) != 1 || lines[0].(map[string]any)["quantity"] != float64(1) {
			t.Errorf("cart changed by rejected requests: %v", cart)
		}
		if r := c.Do("GET", "/api/v1/orders", nil); len(ordersOf(t, r)) != 0 {
			t.Errorf("rejected checkout placed an order: %s", r.Body)
		}
	})
}

// A payment provider that never answers: the saga's durable timeout cancels
// the order and releases its stock. Its own system, so that the short
// timeout cannot race slow answers of other scenarios.
func TestPaymentTimeout(t *testing.T) {
	sys := system.Start(t, system.Options{Env: map[string]string{"SHOPMESH_ORDER_PAYMENT_TIMEOUT": "2s"}})
	admin := sys.Admin()
	c, id, _ := cancelledCheckout{name: "timeout", price: 900, stock: 4, quantity: 1, token: "tok_timeout", country: "GB", reason: "payment_timeout"}.run(t, sys, admin)
	if pay := getJSON(t, c, "/api/v1/orders/"+id+"/payment"); pay["status"] != "pending" {
		t.Errorf("payment = %v, want pending (the provider never answered)", pay)
	}
}

// assertSettled checks the whole system once traffic stopped: every
// service's outbox drains (an event stuck behind another would show here)
// and no message was dead-lettered.
func assertSettled(t *testing.T, sys *system.System) {
	t.Helper()
	ctx := context.Background()
	for _, svc := range system.Services {
		pool, err := pgxpool.New(ctx, sys.Databases[svc])
		if err != nil {
			t.Fatal(err)
		}
		system.Eventually(t, 30*time.Second, svc+" outbox drained", func() (bool, string) {
			st, err := outbox.ReadStats(ctx, pool)
			// The order service may still hold payment timeouts that are
			// due later; they fire harmlessly against settled orders.
			settled := err == nil && st.Pending == 0 && (st.Scheduled == 0 || svc == "order")
			return settled, fmt.Sprintf("%+v %v", st, err)
		})
		st, err := outbox.ReadStats(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if st.DeadLetters != 0 {
			letters, _ := outbox.ListDeadLetters(ctx, pool, false)
			for _, d := range letters {
				t.Errorf("%s dead letter: %s %s: %s", svc, d.Type, d.MessageID, d.Reason)
			}
		}
		pool.Close()
	}
}

func sku(prefix string) string {
	return fmt.Sprintf("%s-%d", strings.ToUpper(prefix), time.Now().UnixNano()%1e9)
}

func timelineHas(o system.Order, typ string) bool {
	for _, e := range o.Timeline {
		if strings.Contains(e.Type, typ) {
			return true
		}
	}
	return false
}

// cancelledCheckout is a checkout the saga cancels: a fresh product with
// stock, a fresh customer who puts quantity of it in the cart and checks
// out paying with token to country.
type cancelledCheckout struct {
	name            string
	price           int64
	stock, quantity int
	token, country  string
	reason          string // the cancellation reason wanted
}

// run places the order, waits until it is cancelled, checks the reason and
// waits until the whole stock is available again.
func (cc cancelledCheckout) run(t *testing.T, sys *system.System, admin *system.Client) (*system.Client, string, system.Order) {
	t.Helper()
	p := admin.CreateProduct(sku(cc.name), cc.price, cc.stock)
	c := sys.Customer(cc.name)
	c.AddToCart(p.ID, cc.quantity)
	id := c.Checkout(outbox.NewID(), cc.token, system.DefaultAddress(cc.country))
	o := c.WaitOrder(id, "cancelled", sagaTimeout)
	if o.CancellationReason != cc.reason {
		t.Errorf("reason = %q, want %s", o.CancellationReason, cc.reason)
	}
	waitStock(t, admin, p.ID, system.Stock{OnHand: cc.stock, Reserved: 0, Available: cc.stock})
	return c, id, o
}

func waitStock(t *testing.T, admin *system.Client, productID string, want system.Stock) {
	t.Helper()
	system.Eventually(t, sagaTimeout, "stock "+productID, func() (bool, string) {
		got := admin.Stock(productID)
		return got == want, fmt.Sprintf("got %+v, want %+v", got, want)
	})
}

func waitRefundAndCreditNote(t *testing.T, c *system.Client, orderID string, amount int64) {
	t.Helper()
	system.Eventually(t, sagaTimeout, "refund of "+orderID, func() (bool, string) {
		r := c.Do("GET", "/api/v1/orders/"+orderID+"/payment", nil)
		var pay map[string]any
		_ = json.Unmarshal(r.Body, &pay)
		return r.Status == 200 && pay["status"] == "refunded" && len(list(pay["refunds"])) == 1, string(r.Body)
	})
	system.Eventually(t, sagaTimeout, "credit note of "+orderID, func() (bool, string) {
		r := c.Do("GET", "/api/v1/orders/"+orderID+"/invoice", nil)
		var inv map[string]any
		_ = json.Unmarshal(r.Body, &inv)
		notes := list(inv["credit_notes"])
		return r.Status == 200 && len(notes) == 1, string(r.Body)
	})
}

func waitNotifications(t *testing.T, c *system.Client, atLeast int) {
	t.Helper()
	system.Eventually(t, sagaTimeout, "notifications", func() (bool, string) {
		r := c.Do("GET", "/api/v1/notifications", nil)
		var out any
		_ = json.Unmarshal(r.Body, &out)
		n := len(itemsOf(out))
		return r.Status == 200 && n >= atLeast, fmt.Sprintf("%d notifications: %s", n, trim(r.Body))
	})
}

func getJSON(t *testing.T, c *system.Client, path string) map[string]any {
	t.Helper()
	var out map[string]any
	c.Expect(http.StatusOK, &out, "GET", path, nil)
	return out
}

func ordersOf(t *testing.T, r system.Response) []map[string]any {
	t.Helper()
	var raw any
	r.JSON(t, &raw)
	var out []map[string]any
	for _, o := range itemsOf(raw) {
		if m, ok := o.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// itemsOf accepts a bare array or an object with an items/orders/notifications list.
func itemsOf(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case map[string]any:
		for _, k := range []string{"items", "orders", "notifications", "data"} {
			if l, ok := x[k].([]any); ok {
				return l
			}
		}
	}
	return nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func isProblem(r system.Response) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json")
}

func trim(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
