package system

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Client calls the public API through the gateway.
type Client struct {
	t     testing.TB
	base  string
	http  *http.Client
	Token string
}

// Client returns an anonymous client of the system's gateway.
func (s *System) Client() *Client {
	return &Client{t: s.t, base: s.Gateway, http: &http.Client{Timeout: 10 * time.Second}}
}

// Response is a raw API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it cannot.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %d response %s: %v", r.Status, r.Body, err)
	}
}

// Problem is an RFC 9457 problem answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Do sends a request; body may be nil, a []byte sent as is, or a value sent
// as JSON. headers are name/value pairs.
func (c *Client) Do(method, path string, body any, headers ...string) Response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Expect sends a request and fails the test unless the status is want; it
// decodes the JSON answer into out when out is not nil.
func (c *Client) Expect(want int, out any, method, path string, body any, headers ...string) Response {
	c.t.Helper()
	r := c.Do(method, path, body, headers...)
	if r.Status != want {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, r.Status, r.Body, want)
	}
	if out != nil {
		r.JSON(c.t, out)
	}
	return r
}

// Money is an amount in minor units.
type Money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Customer registers a new user with a unique e-mail address and returns
// a client logged in as that user.
func (s *System) Customer(name string) *Client {
	s.t.Helper()
	c := s.Client()
	email := fmt.Sprintf("%s.%d@example.com", name, time.Now().UnixNano())
	c.Expect(http.StatusCreated, nil, "POST", "/api/v1/auth/register",
		map[string]string{"email": email, "password": "correct horse battery", "name": name})
	var tok struct {
		Token string `json:"token"`
	}
	c.Expect(http.StatusOK, &tok, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "correct horse battery"})
	c.Token = tok.Token
	return c
}

// Admin creates an administrator with the binary's `user create-admin`
// command and returns a client logged in as them.
func (s *System) Admin() *Client {
	s.t.Helper()
	email := fmt.Sprintf("admin.%d@example.com", time.Now().UnixNano())
	if out, err := s.Command("user", "create-admin", "--email", email, "--password", "admin password 123").CombinedOutput(); err != nil {
		s.t.Fatalf("user create-admin: %v\n%s", err, out)
	}
	c := s.Client()
	var tok struct {
		Token string `json:"token"`
	}
	c.Expect(http.StatusOK, &tok, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "admin password 123"})
	c.Token = tok.Token
	return c
}

// Product is the public product view.
type Product struct {
	ID        string `json:"id"`
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Price     Money  `json:"price"`
	Available bool   `json:"available"`
}

// Stock is the admin stock view.
type Stock struct {
	OnHand    int `json:"on_hand"`
	Reserved  int `json:"reserved"`
	Available int `json:"available"`
}

// CreateProduct creates a product with initial stock and waits until the
// inventory holds its stock, so orders can reserve it.
func (c *Client) CreateProduct(sku string, priceMinor int64, stock int) Product {
	c.t.Helper()
	var p Product
	c.Expect(http.StatusCreated, &p, "POST", "/api/v1/admin/products", map[string]any{
		"sku": sku, "name": "Product " + sku, "description": "A product for tests",
		"price": Money{AmountMinor: priceMinor, Currency: "EUR"}, "initial_stock": stock,
	})
	Eventually(c.t, 20*time.Second, "stock of "+sku, func() (bool, string) {
		r := c.Do("GET", "/api/v1/admin/products/"+p.ID+"/stock", nil)
		return r.Status == http.StatusOK, fmt.Sprintf("%d %s", r.Status, r.Body)
	})
	return p
}

// Stock returns a product's stock levels.
func (c *Client) Stock(productID string) Stock {
	c.t.Helper()
	var s Stock
	c.Expect(http.StatusOK, &s, "GET", "/api/v1/admin/products/"+productID+"/stock", nil)
	return s
}

// Address is a shipping address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// DefaultAddress is deliverable; country ZZ is not.
func DefaultAddress(country string) Address {
	return Address{Name: "Ada Lovelace", Line1: "1 Analytical Way", City: "London", PostalCode: "N1 9GU", Country: country}
}

// AddToCart sets a cart line, retrying while the cart does not know the
// product yet (it learns products from catalog events).
func (c *Client) AddToCart(productID string, quantity int) {
	c.t.Helper()
	Eventually(c.t, 20*time.Second, "cart accepts product "+productID, func() (bool, string) {
		r := c.Do("PUT", "/api/v1/cart/items/"+productID, map[string]int{"quantity": quantity})
		return r.Status == http.StatusOK, fmt.Sprintf("%d %s", r.Status, r.Body)
	})
}

// Checkout places the cart as an order and returns its id.
func (c *Client) Checkout(key, token string, addr Address) string {
	c.t.Helper()
	var out struct {
		OrderID string `json:"order_id"`
		Status  string `json:"status"`
	}
	c.Expect(http.StatusAccepted, &out, "POST", "/api/v1/cart/checkout",
		map[string]any{"shipping_address": addr, "payment": map[string]string{"token": token}}, "Idempotency-Key", key)
	if out.OrderID == "" {
		c.t.Fatalf("checkout returned no order id")
	}
	return out.OrderID
}

// Order is the public order view.
type Order struct {
	ID                 string `json:"id"`
	Status             string `json:"status"`
	CancellationReason string `json:"cancellation_reason"`
	Total              Money  `json:"total"`
	Timeline           []struct {
		Type string    `json:"type"`
		At   time.Time `json:"at"`
	} `json:"timeline"`
}

// WaitOrder polls the order until it has the wanted status.
func (c *Client) WaitOrder(id, status string, timeout time.Duration) Order {
	c.t.Helper()
	var o Order
	Eventually(c.t, timeout, "order "+id+" "+status, func() (bool, string) {
		r := c.Do("GET", "/api/v1/orders/"+id, nil)
		if r.Status != http.StatusOK {
			return false, fmt.Sprintf("%d %s", r.Status, r.Body)
		}
		o = Order{}
		r.JSON(c.t, &o)
		return o.Status == status, fmt.Sprintf("status %s %s", o.Status, r.Body)
	})
	return o
}
