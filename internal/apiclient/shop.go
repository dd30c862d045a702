package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// The request and answer shapes of the calls below: only the fields the
// system's drivers read.

// Money is an amount in minor units.
type Money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Address is a shipping address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// NewProduct is what an administrator sends to create a product.
type NewProduct struct {
	SKU          string `json:"sku"`
	Name         string `json:"name"`
	Description  string `json:"description"`
	Price        Money  `json:"price"`
	InitialStock int    `json:"initial_stock"`
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

// Register creates a customer account.
func (c *Client) Register(ctx context.Context, email, password, name string) error {
	return c.Expect(ctx, http.StatusCreated, nil, http.MethodPost, "/api/v1/auth/register",
		map[string]string{"email": email, "password": password, "name": name})
}

// Login logs in and makes c send the token it got.
func (c *Client) Login(ctx context.Context, email, password string) error {
	var tok struct {
		Token string `json:"token"`
	}
	if err := c.Expect(ctx, http.StatusOK, &tok, http.MethodPost, "/api/v1/auth/login",
		map[string]string{"email": email, "password": password}); err != nil {
		return err
	}
	c.Token = tok.Token
	return nil
}

// CreateProduct creates a product (administrators only).
func (c *Client) CreateProduct(ctx context.Context, p NewProduct) (Product, error) {
	var out Product
	err := c.Expect(ctx, http.StatusCreated, &out, http.MethodPost, "/api/v1/admin/products", p)
	return out, err
}

// Stock returns a product's stock levels (administrators only).
func (c *Client) Stock(ctx context.Context, productID string) (Stock, error) {
	var s Stock
	err := c.Expect(ctx, http.StatusOK, &s, http.MethodGet, "/api/v1/admin/products/"+productID+"/stock", nil)
	return s, err
}

// SetCartItem sets the quantity of a cart line.
func (c *Client) SetCartItem(ctx context.Context, productID string, quantity int) error {
	return c.Expect(ctx, http.StatusOK, nil, http.MethodPut, "/api/v1/cart/items/"+productID, map[string]int{"quantity": quantity})
}

// CheckoutBody is the checkout request.
func CheckoutBody(addr Address, paymentToken string) map[string]any {
	return map[string]any{"shipping_address": addr, "payment": map[string]string{"token": paymentToken}}
}

// Checkout places the cart as an order under an idempotency key and
// returns the order's ID.
func (c *Client) Checkout(ctx context.Context, key string, addr Address, paymentToken string) (string, error) {
	var out struct {
		OrderID string `json:"order_id"`
	}
	err := c.Expect(ctx, http.StatusAccepted, &out, http.MethodPost, "/api/v1/cart/checkout", CheckoutBody(addr, paymentToken), "Idempotency-Key", key)
	return out.OrderID, err
}

// Order returns the customer's order.
func (c *Client) Order(ctx context.Context, id string) (Order, error) {
	var o Order
	err := c.Expect(ctx, http.StatusOK, &o, http.MethodGet, "/api/v1/orders/"+id, nil)
	return o, err
}

// CartItemSet classifies the answer to setting a cart line: done on 200,
// not yet while the cart has not learnt the product from catalog events
// (404, 409, 422), an error on anything else.
func CartItemSet(r Response) (done bool, err error) {
	switch r.Status {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity:
		return false, nil
	}
	return false, fmt.Errorf("add to cart = %d %.200s", r.Status, r.Body)
}
