package cart_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type cartLine struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice money  `json:"unit_price"`
	LineTotal money  `json:"line_total"`
}

type cartBody struct {
	Lines     []cartLine `json:"lines"`
	Total     *money     `json:"total"`
	ItemCount int        `json:"item_count"`
}

type checkoutBody struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

var shopper = caller{UserID: "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f77", Role: "customer"}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return v
}

// addProduct publishes catalog.product_created.v1 and waits until the cart
// has applied it.
func (h *harness) addProduct(sku, name string, price int64) string {
	h.t.Helper()
	id := outbox.NewID()
	msg := h.Publish("", contracts.TypeProductCreatedV1, id, contracts.ProductCreatedV1{ProductID: id, SKU: sku, Name: name,
		Price: contracts.Money{AmountMinor: price, Currency: "EUR"}, InitialStock: 10})
	h.WaitApplied(msg)
	return id
}

func (h *harness) cart(who caller) cartBody {
	h.t.Helper()
	r := h.Do(http.MethodGet, "/api/v1/cart", who, nil)
	if r.Status != http.StatusOK {
		h.t.Fatalf("GET cart: %d %s", r.Status, r.Body)
	}
	return decode[cartBody](h.t, r)
}

func (h *harness) put(who caller, productID string, quantity int) cartBody {
	h.t.Helper()
	r := h.Do(http.MethodPut, "/api/v1/cart/items/"+productID, who, []byte(fmt.Sprintf(`{"quantity": %d}`, quantity)))
	if r.Status != http.StatusOK {
		h.t.Fatalf("PUT %s: %d %s", productID, r.Status, r.Body)
	}
	return decode[cartBody](h.t, r)
}

const checkoutJSON = `{"shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "London",
	"postal_code": "NW1 6XE", "country": "GB"}, "payment": {"token": "tok_ok"}}`

func (h *harness) checkout(who caller, key, body string) response {
	h.t.Helper()
	var headers []string
	if key != "" {
		headers = []string{"Idempotency-Key", key}
	}
	return h.Do(http.MethodPost, "/api/v1/cart/checkout", who, []byte(body), headers...)
}

func TestCartLinesFollowTheCatalogue(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.addProduct("CUP-ESP-01", "Espresso cup", 1250)
	grinder := h.addProduct("GRD-HND-02", "Hand grinder", 4990)

	if c := h.cart(shopper); len(c.Lines) != 0 || c.Total == nil || *c.Total != (money{0, "EUR"}) || c.ItemCount != 0 {
		t.Errorf("new cart %+v", c)
	}
	h.put(shopper, cup, 2)
	c := h.put(shopper, grinder, 1)
	want := []cartLine{
		{ProductID: cup, SKU: "CUP-ESP-01", Name: "Espresso cup", Quantity: 2, UnitPrice: money{1250, "EUR"}, LineTotal: money{2500, "EUR"}},
		{ProductID: grinder, SKU: "GRD-HND-02", Name: "Hand grinder", Quantity: 1, UnitPrice: money{4990, "EUR"}, LineTotal: money{4990, "EUR"}},
	}
	if len(c.Lines) != 2 || c.Lines[0] != want[0] || c.Lines[1] != want[1] || *c.Total != (money{7490, "EUR"}) || c.ItemCount != 3 {
		t.Errorf("cart %+v", c)
	}
	var updated contracts.CartLineUpdatedV1
	ev := h.WaitEvent(contracts.TypeCartLineUpdatedV1, &updated, servicetest.PayloadHas("product_id", grinder))
	if updated.UserID != shopper.UserID || updated.Quantity != 1 || updated.PreviousQuantity != 0 || updated.UnitPrice.AmountMinor != 4990 || ev.AggregateID != shopper.UserID {
		t.Errorf("line updated %+v", updated)
	}
	// Another customer's cart is their own.
	if other := h.cart(customer); len(other.Lines) != 0 {
		t.Errorf("another customer sees %+v", other.Lines)
	}

	t.Log("a price change reprices the open cart's line, once however often it arrives")
	change := outbox.NewID()
	priced := contracts.PriceChangedV1{ProductID: cup, SKU: "CUP-ESP-01", PreviousPrice: contracts.Money{AmountMinor: 1250, Currency: "EUR"},
		Price: contracts.Money{AmountMinor: 990, Currency: "EUR"}}
	h.Publish(change, contracts.TypePriceChangedV1, cup, priced)
	h.Publish(change, contracts.TypePriceChangedV1, cup, priced)
	h.Poll("the duplicate absorbed", func() (bool, string) { return h.Duplicates() >= 1, "" })
	c = h.cart(shopper)
	if c.Lines[0].UnitPrice != (money{990, "EUR"}) || c.Lines[0].LineTotal != (money{1980, "EUR"}) || *c.Total != (money{6970, "EUR"}) {
		t.Errorf("after repricing %+v total %+v", c.Lines[0], c.Total)
	}

	t.Log("an older price change arriving late does not undo a newer one")
	old := outbox.NewID()
	body, _ := json.Marshal(contracts.PriceChangedV1{ProductID: cup, SKU: "CUP-ESP-01", PreviousPrice: contracts.Money{AmountMinor: 1, Currency: "EUR"},
		Price: contracts.Money{AmountMinor: 5000, Currency: "EUR"}})
	h.PublishAt(old, contracts.TypePriceChangedV1, cup, time.Now().Add(-time.Hour), body)
	h.WaitApplied(old)
	if got := h.cart(shopper).Lines[0].UnitPrice.AmountMinor; got != 990 {
		t.Errorf("a stale price change set %d", got)
	}

	t.Log("a new name reaches the line; quantities are set, not added")
	renamed := h.Publish("", contracts.TypeProductUpdatedV1, cup, contracts.ProductUpdatedV1{ProductID: cup, SKU: "CUP-ESP-01", Name: "Espresso cup, white"})
	h.WaitApplied(renamed)
	c = h.put(shopper, cup, 5)
	if c.Lines[0].Name != "Espresso cup, white" || c.Lines[0].Quantity != 5 || c.Lines[0].UnitPrice.AmountMinor != 990 {
		t.Errorf("line %+v", c.Lines[0])
	}

	t.Log("removing a line publishes its previous quantity; removing it again changes nothing")
	r := h.Do(http.MethodDelete, "/api/v1/cart/items/"+cup, shopper, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if c := decode[cartBody](t, r); len(c.Lines) != 1 || c.Lines[0].ProductID != grinder {
		t.Errorf("after removal %+v", c.Lines)
	}
	var removed contracts.CartLineRemovedV1
	h.WaitEvent(contracts.TypeCartLineRemovedV1, &removed, servicetest.PayloadHas("product_id", cup))
	if removed.PreviousQuantity != 5 || removed.UserID != shopper.UserID {
		t.Errorf("line removed %+v", removed)
	}
	before := h.OutboxCount("")
	if r := h.Do(http.MethodDelete, "/api/v1/cart/items/"+cup, shopper, nil); r.Status != http.StatusOK {
		t.Errorf("second DELETE: %d %s", r.Status, r.Body)
	}
	if got := h.OutboxCount(""); got != before {
		t.Errorf("a second removal published %d events", got-before)
	}

	t.Log("a change of a product never created is retried, then dead-lettered")
	ghost := outbox.NewID()
	lost := h.Publish("", contracts.TypePriceChangedV1, ghost, contracts.PriceChangedV1{ProductID: ghost, SKU: "GHOST",
		PreviousPrice: contracts.Money{AmountMinor: 1, Currency: "EUR"}, Price: contracts.Money{AmountMinor: 2, Currency: "EUR"}})
	h.Poll("the orphan price change dead-lettered", func() (bool, string) {
		return h.Query(`SELECT count(*) FROM dead_letters WHERE message_id = $1`, lost) == 1, ""
	})
}

func TestCheckoutIsIdempotent(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.addProduct("CUP-ESP-01", "Espresso cup", 1250)
	grinder := h.addProduct("GRD-HND-02", "Hand grinder", 4990)

	r := h.checkout(shopper, "empty-1", checkoutJSON)
	if r.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(r.Problem(t).Type, "/empty-cart") {
		t.Fatalf("empty cart: %d %s", r.Status, r.Body)
	}

	h.put(shopper, cup, 2)
	h.put(shopper, grinder, 1)
	r = h.checkout(shopper, "key-1", checkoutJSON)
	if r.Status != http.StatusAccepted {
		t.Fatalf("checkout: %d %s", r.Status, r.Body)
	}
	co := decode[checkoutBody](t, r)
	id, err := uuid.Parse(co.OrderID)
	if err != nil || id.Version() != 7 || co.Status != "pending" {
		t.Errorf("checkout answered %+v (uuid %v, err %v)", co, id.Version(), err)
	}
	if got := r.Header.Get("Location"); got != "/api/v1/orders/"+co.OrderID {
		t.Errorf("location %q", got)
	}
	var out contracts.CartCheckedOutV1
	ev := h.WaitEvent(contracts.TypeCartCheckedOutV1, &out, servicetest.PayloadHas("order_id", co.OrderID))
	want := contracts.CartCheckedOutV1{
		OrderID: co.OrderID, UserID: shopper.UserID,
		Lines: []contracts.Line{
			{ProductID: cup, SKU: "CUP-ESP-01", Name: "Espresso cup", Quantity: 2, UnitPrice: contracts.Money{AmountMinor: 1250, Currency: "EUR"}},
			{ProductID: grinder, SKU: "GRD-HND-02", Name: "Hand grinder", Quantity: 1, UnitPrice: contracts.Money{AmountMinor: 4990, Currency: "EUR"}},
		},
		Total:           contracts.Money{AmountMinor: 7490, Currency: "EUR"},
		ShippingAddress: contracts.Address{Name: "Ada Lovelace", Line1: "12 Analytical Row", City: "London", PostalCode: "NW1 6XE", Country: "GB"},
		PaymentToken:    "tok_ok", IdempotencyKey: "key-1",
	}
	if got, _ := json.Marshal(out); string(got) != mustJSON(t, want) {
		t.Errorf("checked out\n%s\nwant\n%s", got, mustJSON(t, want))
	}
	if ev.AggregateID != shopper.UserID {
		t.Errorf("aggregate %s", ev.AggregateID)
	}
	if c := h.cart(shopper); len(c.Lines) != 0 {
		t.Errorf("cart after checkout %+v", c.Lines)
	}

	t.Log("the same key and request, however spelled, is the same order and no new event")
	respelled := `{"payment":{"token":"tok_ok"},"shipping_address":{"country":"gb","postal_code":"NW1 6XE","city":"London",
		"line1":"12 Analytical Row","name":"Ada Lovelace"}}`
	for _, body := range []string{checkoutJSON, respelled} {
		r = h.checkout(shopper, "key-1", body)
		if r.Status != http.StatusAccepted {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		if again := decode[checkoutBody](t, r); again != co {
			t.Errorf("retry answered %+v, want %+v", again, co)
		}
	}
	t.Log("the same key with another request is refused")
	h.put(shopper, cup, 1)
	r = h.checkout(shopper, "key-1", strings.Replace(checkoutJSON, "tok_ok", "tok_decline", 1))
	if r.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(r.Problem(t).Type, "/idempotency-key-reused") {
		t.Errorf("reused key: %d %s", r.Status, r.Body)
	}
	if c := h.cart(shopper); len(c.Lines) != 1 {
		t.Errorf("a refused checkout changed the cart: %+v", c.Lines)
	}
	if got := h.OutboxCount(contracts.TypeCartCheckedOutV1); got != 1 {
		t.Errorf("%d checkouts published, want 1", got)
	}
	if got := h.Query(`SELECT count(*) FROM checkouts`); got != 1 {
		t.Errorf("%d checkouts recorded, want 1", got)
	}
	// Keys belong to their user: another customer may use the same one.
	r = h.checkout(customer, "key-1", checkoutJSON)
	if r.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(r.Problem(t).Type, "/empty-cart") {
		t.Errorf("another customer's key: %d %s", r.Status, r.Body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConcurrentCheckoutsWithOneKeyPlaceOneOrder(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.addProduct("CUP-ESP-01", "Espresso cup", 1250)
	h.put(shopper, cup, 3)

	const n = 8
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.checkout(shopper, "race-key", checkoutJSON)
		}()
	}
	wg.Wait()
	orders := map[string]bool{}
	for _, r := range results {
		if r.Status != http.StatusAccepted {
			t.Errorf("status %d %s", r.Status, r.Body)
			continue
		}
		orders[decode[checkoutBody](t, r).OrderID] = true
	}
	if len(orders) != 1 {
		t.Errorf("%d different orders: %v", len(orders), orders)
	}
	if got := h.OutboxCount(contracts.TypeCartCheckedOutV1); got != 1 {
		t.Errorf("%d checkouts published, want 1", got)
	}
}

func TestCartRoutesRejectBadInputAndChangeNothing(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cup := h.addProduct("CUP-ESP-01", "Espresso cup", 1250)
	h.put(shopper, cup, 2)
	eventsBefore := h.OutboxCount("")
	item := "/api/v1/cart/items/" + cup
	const checkout = "/api/v1/cart/checkout"
	address := func(field, value string) string {
		return strings.Replace(checkoutJSON, field, value, 1)
	}
	forged := caller{UserID: "not-a-user-id", Role: "customer"}

	tests := []struct {
		name   string
		method string
		path   string
		who    caller
		body   string
		key    string
		header []string
		status int
		field  string
	}{
		{"read without identity", http.MethodGet, "/api/v1/cart", anonymous, "", "", nil, http.StatusUnauthorized, ""},
		{"read with a malformed identity", http.MethodGet, "/api/v1/cart", forged, "", "", nil, http.StatusUnauthorized, ""},
		{"put without identity", http.MethodPut, item, anonymous, `{"quantity": 1}`, "", nil, http.StatusUnauthorized, ""},
		{"delete without identity", http.MethodDelete, item, anonymous, "", "", nil, http.StatusUnauthorized, ""},
		{"checkout without identity", http.MethodPost, checkout, anonymous, checkoutJSON, "k", nil, http.StatusUnauthorized, ""},
		{"malformed JSON", http.MethodPut, item, shopper, `{"quantity": 1`, "", nil, http.StatusBadRequest, ""},
		{"duplicate key", http.MethodPut, item, shopper, `{"quantity": 1, "quantity": 3}`, "", nil, http.StatusBadRequest, ""},
		{"unknown field", http.MethodPut, item, shopper, `{"quantity": 1, "gift": true}`, "", nil, http.StatusUnprocessableEntity, "gift"},
		{"missing quantity", http.MethodPut, item, shopper, `{}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"quantity as string", http.MethodPut, item, shopper, `{"quantity": "2"}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"fractional quantity", http.MethodPut, item, shopper, `{"quantity": 1.5}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"zero quantity", http.MethodPut, item, shopper, `{"quantity": 0}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"negative quantity", http.MethodPut, item, shopper, `{"quantity": -3}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"quantity above 99", http.MethodPut, item, shopper, `{"quantity": 100}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"absurd quantity", http.MethodPut, item, shopper, `{"quantity": 9223372036854775807}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"overflowing quantity", http.MethodPut, item, shopper, `{"quantity": 1e30}`, "", nil, http.StatusUnprocessableEntity, "quantity"},
		{"oversized put", http.MethodPut, item, shopper, `{"quantity": 1, "x": "` + strings.Repeat("x", 1<<20) + `"}`, "", nil, http.StatusRequestEntityTooLarge, ""},
		{"wrong content type", http.MethodPut, item, shopper, `{"quantity": 1}`, "", []string{"Content-Type", "application/xml"}, http.StatusUnsupportedMediaType, ""},
		{"unknown product", http.MethodPut, "/api/v1/cart/items/" + outbox.NewID(), shopper, `{"quantity": 1}`, "", nil, http.StatusNotFound, ""},
		{"malformed product id", http.MethodPut, "/api/v1/cart/items/cup", shopper, `{"quantity": 1}`, "", nil, http.StatusNotFound, ""},
		{"delete malformed product id", http.MethodDelete, "/api/v1/cart/items/cup", shopper, "", "", nil, http.StatusNotFound, ""},
		{"checkout without key", http.MethodPost, checkout, shopper, checkoutJSON, "", nil, http.StatusBadRequest, "Idempotency-Key"},
		{"checkout with a long key", http.MethodPost, checkout, shopper, checkoutJSON, strings.Repeat("k", 256), nil, http.StatusBadRequest, "Idempotency-Key"},
		{"checkout with a spaced key", http.MethodPost, checkout, shopper, checkoutJSON, "my key", nil, http.StatusBadRequest, "Idempotency-Key"},
		{"checkout malformed JSON", http.MethodPost, checkout, shopper, `{"shipping_address": `, "k1", nil, http.StatusBadRequest, ""},
		{"checkout unknown field", http.MethodPost, checkout, shopper, strings.Replace(checkoutJSON, `"payment"`, `"coupon": "FREE", "payment"`, 1), "k2", nil, http.StatusUnprocessableEntity, "coupon"},
		{"checkout unknown address field", http.MethodPost, checkout, shopper, address(`"city"`, `"state": "X", "city"`), "k3", nil, http.StatusUnprocessableEntity, "state"},
		{"checkout address as string", http.MethodPost, checkout, shopper, `{"shipping_address": "London", "payment": {"token": "tok_ok"}}`, "k4", nil, http.StatusUnprocessableEntity, "shipping_address"},
		{"checkout token as number", http.MethodPost, checkout, shopper, strings.Replace(checkoutJSON, `"tok_ok"`, `42`, 1), "k5", nil, http.StatusUnprocessableEntity, "payment.token"},
		{"checkout empty body", http.MethodPost, checkout, shopper, `{}`, "k6", nil, http.StatusUnprocessableEntity, "shipping_address.name"},
		{"checkout without city", http.MethodPost, checkout, shopper, address(`"London"`, `""`), "k7", nil, http.StatusUnprocessableEntity, "shipping_address.city"},
		{"checkout three-letter country", http.MethodPost, checkout, shopper, address(`"GB"`, `"GBR"`), "k8", nil, http.StatusUnprocessableEntity, "shipping_address.country"},
		{"checkout numeric country", http.MethodPost, checkout, shopper, address(`"GB"`, `"12"`), "k9", nil, http.StatusUnprocessableEntity, "shipping_address.country"},
		{"checkout empty token", http.MethodPost, checkout, shopper, strings.Replace(checkoutJSON, `"tok_ok"`, `""`, 1), "k10", nil, http.StatusUnprocessableEntity, "payment.token"},
		{"checkout oversized", http.MethodPost, checkout, shopper, address(`"London"`, `"`+strings.Repeat("L", 1<<20)+`"`), "k11", nil, http.StatusRequestEntityTooLarge, ""},
		{"checkout long name", http.MethodPost, checkout, shopper, address(`"Ada Lovelace"`, `"`+strings.Repeat("A", 201)+`"`), "k12", nil, http.StatusUnprocessableEntity, "shipping_address.name"},
		{"unknown route", http.MethodGet, "/api/v1/cart/everything", shopper, "", "", nil, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			headers := tt.header
			if tt.key != "" {
				headers = append(headers, "Idempotency-Key", tt.key)
			}
			r := h.For(t).Do(tt.method, tt.path, tt.who, body, headers...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			p := r.Problem(t)
			if p.Status != tt.status {
				t.Errorf("problem status %d", p.Status)
			}
			if tt.field == "" {
				return
			}
			for _, f := range p.Errors {
				if f.Field == tt.field {
					return
				}
			}
			t.Errorf("problem does not name %s: %+v", tt.field, p.Errors)
		})
	}
	c := h.cart(shopper)
	if len(c.Lines) != 1 || c.Lines[0].Quantity != 2 {
		t.Errorf("cart changed to %+v", c.Lines)
	}
	if got := h.OutboxCount(""); got != eventsBefore {
		t.Errorf("bad requests published %d events", got-eventsBefore)
	}
	if got := h.Query(`SELECT count(*) FROM checkouts`); got != 0 {
		t.Errorf("%d checkouts recorded", got)
	}
}
