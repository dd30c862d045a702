package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// maxBody bounds request bodies: an adjustment is a few bytes.
const maxBody = 1 << 10

// NewHTTPHandler serves inventory's routes. The gateway forwards them
// unchanged with the caller's identity headers; both routes are for
// administrators only.
func NewHTTPHandler(e Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	ok := httpkit.EncodeJSON(http.StatusOK, toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/admin/products/{id}/stock",
		httpkit.RequireAdmin(kithttp.NewServer(e.GetStock, decodeGetStock, ok, opts...)))
	mux.Handle("POST /api/v1/admin/products/{id}/stock",
		httpkit.RequireAdmin(kithttp.NewServer(e.AdjustStock, decodeAdjustStock, ok, opts...)))
	mux.HandleFunc("/", httpkit.NotFound)
	return mux
}

func productID(r *http.Request) (string, error) {
	id, err := domain.ParseID(r.PathValue("id"))
	if err != nil {
		return "", httpkit.NewProblem(http.StatusNotFound, "not-found", "no such product")
	}
	return id, nil
}

func decodeGetStock(_ context.Context, r *http.Request) (any, error) {
	id, err := productID(r)
	if err != nil {
		return nil, err
	}
	return getStockRequest{ProductID: id}, nil
}

func decodeAdjustStock(_ context.Context, r *http.Request) (any, error) {
	id, err := productID(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Adjust *int `json:"adjust"`
	}
	if err := httpkit.DecodeJSON(r, maxBody, &body); err != nil {
		return nil, err
	}
	if body.Adjust == nil {
		return nil, httpkit.Validation(httpkit.FieldError{Field: "adjust", Message: "is required"})
	}
	return adjustStockRequest{ProductID: id, Adjust: *body.Adjust}, nil
}

// toProblem maps inventory's errors to problems; it is the only place that
// knows their HTTP statuses.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "no stock for this product")
	case errors.Is(err, domain.ErrInsufficientStock):
		return httpkit.NewProblem(http.StatusConflict, "insufficient-stock", detail(err, domain.ErrInsufficientStock))
	case errors.Is(err, domain.ErrInvalidAdjustment):
		return httpkit.Validation(httpkit.FieldError{Field: "adjust", Message: detail(err, domain.ErrInvalidAdjustment)})
	}
	return nil
}

// detail is the domain's explanation of a rule, without the use case's
// context or the sentinel's name: what the caller needs to fix the request.
func detail(err, sentinel error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == sentinel {
			return strings.TrimPrefix(e.Error(), sentinel.Error()+": ")
		}
	}
	return sentinel.Error()
}
