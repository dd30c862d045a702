// Package transport exposes the catalogue's use cases: the public product
// routes, the administrators' product routes (go-kit endpoints over
// net/http) and the handler of inventory's stock reports. It translates
// requests and messages into use-case calls and errors into problems or dead
// letters; it must not decide anything about products itself.
package transport

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/shopmesh/shopmesh/services/catalog/internal/app"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// Endpoints are the catalogue's HTTP use cases as go-kit endpoints.
type Endpoints struct {
	ListProducts  endpoint.Endpoint
	GetProduct    endpoint.Endpoint
	CreateProduct endpoint.Endpoint
	UpdateProduct endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc *app.Service) Endpoints {
	return Endpoints{
		ListProducts: func(ctx context.Context, request any) (any, error) {
			q := request.(app.Query)
			page, err := svc.Products(ctx, q)
			if err != nil {
				return listResponse{Err: err}, nil
			}
			return newListResponse(q, page), nil
		},
		GetProduct: func(ctx context.Context, request any) (any, error) {
			p, err := svc.Product(ctx, request.(getProductRequest).ID)
			return newProductResponse(p, err), nil
		},
		CreateProduct: func(ctx context.Context, request any) (any, error) {
			p, err := svc.CreateProduct(ctx, app.NewProduct(request.(createProductRequest)))
			return newProductResponse(p, err), nil
		},
		UpdateProduct: func(ctx context.Context, request any) (any, error) {
			req := request.(updateProductRequest)
			p, err := svc.UpdateProduct(ctx, req.ID, req.Patch)
			return newProductResponse(p, err), nil
		},
	}
}

type getProductRequest struct{ ID string }

type createProductRequest app.NewProduct

type updateProductRequest struct {
	ID    string
	Patch domain.Patch
}

type moneyJSON struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// productJSON is a product as customers and administrators see it.
type productJSON struct {
	ID          string    `json:"id"`
	SKU         string    `json:"sku"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Price       moneyJSON `json:"price"`
	Available   bool      `json:"available"`
}

func toJSON(p domain.Product) productJSON {
	return productJSON{
		ID: p.ID(), SKU: p.SKU(), Name: p.Name(), Description: p.Description(),
		Price:     moneyJSON{AmountMinor: p.Price().AmountMinor(), Currency: p.Price().Currency()},
		Available: p.Available(),
	}
}

type productResponse struct {
	productJSON
	Err error `json:"-"`
}

func newProductResponse(p domain.Product, err error) productResponse {
	if err != nil {
		return productResponse{Err: err}
	}
	return productResponse{productJSON: toJSON(p)}
}

// Failed implements httpkit.Failer.
func (r productResponse) Failed() error { return r.Err }

// listResponse is one page of products with what a client needs to page on.
type listResponse struct {
	Items  []productJSON `json:"items"`
	Limit  int           `json:"limit"`
	Offset int           `json:"offset"`
	Total  int           `json:"total"`
	// NextOffset is the offset of the next page; absent on the last page.
	NextOffset *int  `json:"next_offset,omitempty"`
	Err        error `json:"-"`
}

func newListResponse(q app.Query, page app.Page) listResponse {
	r := listResponse{Items: make([]productJSON, 0, len(page.Products)), Limit: q.Limit, Offset: q.Offset, Total: page.Total}
	for _, p := range page.Products {
		r.Items = append(r.Items, toJSON(p))
	}
	if next := q.Offset + len(page.Products); len(page.Products) > 0 && next < page.Total {
		r.NextOffset = &next
	}
	return r
}

// Failed implements httpkit.Failer.
func (r listResponse) Failed() error { return r.Err }
