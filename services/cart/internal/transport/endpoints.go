// Package transport exposes the cart's use cases: the customer's cart routes
// (go-kit endpoints over net/http) and the handlers of the catalogue events
// that keep the cart's view of products. It translates requests and
// messages into use-case calls and errors into problems or dead letters; it
// must not decide anything about carts itself.
package transport

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/cart/internal/app"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// Endpoints are the cart's HTTP use cases as go-kit endpoints.
type Endpoints struct {
	GetCart     endpoint.Endpoint
	SetQuantity endpoint.Endpoint
	RemoveLine  endpoint.Endpoint
	Checkout    endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc. The caller is the user the
// gateway authenticated (httpkit.IdentityFrom).
func MakeEndpoints(svc *app.Service) Endpoints {
	return Endpoints{
		GetCart: func(ctx context.Context, _ any) (any, error) {
			c, err := svc.Cart(ctx, httpkit.IdentityFrom(ctx).UserID)
			return newCartResponse(c, err), nil
		},
		SetQuantity: func(ctx context.Context, request any) (any, error) {
			req := request.(setQuantityRequest)
			c, err := svc.SetQuantity(ctx, httpkit.IdentityFrom(ctx).UserID, req.ProductID, req.Quantity)
			return newCartResponse(c, err), nil
		},
		RemoveLine: func(ctx context.Context, request any) (any, error) {
			req := request.(removeLineRequest)
			c, err := svc.RemoveLine(ctx, httpkit.IdentityFrom(ctx).UserID, req.ProductID)
			return newCartResponse(c, err), nil
		},
		Checkout: func(ctx context.Context, request any) (any, error) {
			req := request.(checkoutRequest)
			co, err := svc.Checkout(ctx, httpkit.IdentityFrom(ctx).UserID, req.Key, req.Request)
			if err != nil {
				return checkoutResponse{Err: err}, nil
			}
			return checkoutResponse{OrderID: co.OrderID, Status: "pending"}, nil
		},
	}
}

type setQuantityRequest struct {
	ProductID string
	Quantity  int
}

type removeLineRequest struct {
	ProductID string
}

type checkoutRequest struct {
	Key     string
	Request domain.CheckoutRequest
}

type moneyJSON struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type lineJSON struct {
	ProductID string    `json:"product_id"`
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Quantity  int       `json:"quantity"`
	UnitPrice moneyJSON `json:"unit_price"`
	LineTotal moneyJSON `json:"line_total"`
}

// cartResponse is a cart as its owner sees it.
type cartResponse struct {
	Lines []lineJSON `json:"lines"`
	// Total is absent only for a cart holding two currencies, which cannot
	// be checked out until its lines agree.
	Total     *moneyJSON `json:"total,omitempty"`
	ItemCount int        `json:"item_count"`
	Err       error      `json:"-"`
}

func newCartResponse(c domain.Cart, err error) cartResponse {
	if err != nil {
		return cartResponse{Err: err}
	}
	r := cartResponse{Lines: []lineJSON{}}
	for _, l := range c.Lines() {
		total := l.Total()
		r.Lines = append(r.Lines, lineJSON{
			ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: moneyJSON(l.UnitPrice), LineTotal: moneyJSON(total),
		})
		r.ItemCount += l.Quantity
	}
	if total, err := c.Total(); err == nil {
		m := moneyJSON(total)
		r.Total = &m
	}
	return r
}

// Failed implements httpkit.Failer.
func (r cartResponse) Failed() error { return r.Err }

// checkoutResponse says which order a checkout became.
type checkoutResponse struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Err     error  `json:"-"`
}

// Failed implements httpkit.Failer.
func (r checkoutResponse) Failed() error { return r.Err }
