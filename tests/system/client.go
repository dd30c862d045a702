package system

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/apiclient"
)

// Client calls the public API through the gateway (see apiclient), failing
// the test on any transport error.
type Client struct {
	t     testing.TB
	api   *apiclient.Client
	Token string
}

// Client returns an anonymous client of the system's gateway.
func (s *System) Client() *Client {
	return &Client{t: s.t, api: apiclient.New(s.Gateway, &http.Client{Timeout: 10 * time.Second})}
}

// Response is a raw API answer.
type Response apiclient.Response

// JSON decodes the body into v, failing the test if it cannot.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := apiclient.Response(r).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// Problem is an RFC 9457 problem answer.
type Problem = apiclient.Problem

// Do sends a request; body may be nil, a []byte sent as is, or a value sent
// as JSON. headers are name/value pairs.
func (c *Client) Do(method, path string, body any, headers ...string) Response {
	c.t.Helper()
	r, err := c.api.As(c.Token).Do(context.Background(), method, path, body, headers...)
	if err != nil {
		c.t.Fatal(err)
	}
	return Response(r)
}

// Expect sends a request and fails the test unless the status is want; it
// decodes the JSON answer into out when out is not nil.
func (c *Client) Expect(want int, out any, method, path string, body any, headers ...string) Response {
	c.t.Helper()
	r := c.Do(method, path, body, headers...)
	if err := apiclient.Check(method, path, apiclient.Response(r), want, out); err != nil {
		c.t.Fatalf("%v: %s", err, r.Body)
	}
	return r
}

// Money is an amount in minor units.
type Money = apiclient.Money

// Customer registers a new user with a unique e-mail address and returns
// a client logged in as that user.
func (s *System) Customer(name string) *Client {
	s.t.Helper()
	c := s.Client()
	email := fmt.Sprintf("%s.%d@example.com", name, time.Now().UnixNano())
	ctx := context.Background()
	if err := c.api.Register(ctx, email, "correct horse battery", name); err != nil {
		s.t.Fatal(err)
	}
	if err := c.api.Login(ctx, email, "correct horse battery"); err != nil {
		s.t.Fatal(err)
	}
	c.Token = c.api.Token
	return c
}

// Admin creates an administrator with the binary's `user create-admin`
// command and returns a client logged in as them.
func (s *System) Admin() *Client {
	s.t.Helper()
	email := fmt.Sprintf("admin.%d@example.com", time.Now().UnixNano())
	api, err := s.sys.Admin(context.Background(), email, "admin password 123")
	if err != nil {
		s.t.Fatal(err)
	}
	c := s.Client()
	c.Token = api.Token
	return c
}

// Product is the public product view.
type Product = apiclient.Product

// Stock is the admin stock view.
type Stock = apiclient.Stock

// CreateProduct creates a product with initial stock and waits until the
// inventory holds its stock, so orders can reserve it.
func (c *Client) CreateProduct(sku string, priceMinor int64, stock int) Product {
	c.t.Helper()
	var p Product
	c.Expect(http.StatusCreated, &p, "POST", "/api/v1/admin/products", apiclient.NewProduct{
		SKU: sku, Name: "Product " + sku, Description: "A product for tests",
		Price: Money{AmountMinor: priceMinor, Currency: "EUR"}, InitialStock: stock,
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
type Address = apiclient.Address

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
	c.Expect(http.StatusAccepted, &out, "POST", "/api/v1/cart/checkout", apiclient.CheckoutBody(addr, token), "Idempotency-Key", key)
	if out.OrderID == "" {
		c.t.Fatalf("checkout returned no order id")
	}
	return out.OrderID
}

// Order is the public order view.
type Order = apiclient.Order

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
