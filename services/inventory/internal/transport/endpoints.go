// Package transport exposes inventory's use cases: the administrator's HTTP
// routes (go-kit endpoints over net/http) and the handlers of the events
// inventory consumes. It translates requests and messages into use-case
// calls and errors into problems or dead letters; it must not decide
// anything about stock itself.
package transport

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/shopmesh/shopmesh/services/inventory/internal/app"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// Endpoints are inventory's HTTP use cases as go-kit endpoints.
type Endpoints struct {
	GetStock    endpoint.Endpoint
	AdjustStock endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc *app.Service) Endpoints {
	return Endpoints{
		GetStock: func(ctx context.Context, request any) (any, error) {
			req := request.(getStockRequest)
			st, err := svc.Stock(ctx, req.ProductID)
			return newStockResponse(st, err), nil
		},
		AdjustStock: func(ctx context.Context, request any) (any, error) {
			req := request.(adjustStockRequest)
			st, err := svc.AdjustStock(ctx, req.ProductID, req.Adjust)
			return newStockResponse(st, err), nil
		},
	}
}

type getStockRequest struct {
	ProductID string
}

type adjustStockRequest struct {
	ProductID string
	Adjust    int
}

// stockResponse is a product's stock levels.
type stockResponse struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	OnHand    int    `json:"on_hand"`
	Reserved  int    `json:"reserved"`
	Available int    `json:"available"`
	Err       error  `json:"-"`
}

func newStockResponse(st domain.Stock, err error) stockResponse {
	if err != nil {
		return stockResponse{Err: err}
	}
	return stockResponse{ProductID: st.ProductID(), SKU: st.SKU(), OnHand: st.OnHand(), Reserved: st.Reserved(), Available: st.Available()}
}

// Failed implements httpkit.Failer.
func (r stockResponse) Failed() error { return r.Err }
