package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// maxBody bounds request bodies: a checkout with every field at its
// longest fits with room to spare.
const maxBody = 8 << 10

// HeaderIdempotencyKey names a checkout: retrying with the same key and
// request answers with the same order.
const HeaderIdempotencyKey = "Idempotency-Key"

// NewHTTPHandler serves the cart's routes. The gateway forwards them
// unchanged with the caller's identity headers; every route works on the
// caller's own cart.
func NewHTTPHandler(e Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	ok := httpkit.EncodeJSON(http.StatusOK, toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/cart", requireUser(kithttp.NewServer(e.GetCart, kithttp.NopRequestDecoder, ok, opts...)))
	mux.Handle("PUT /api/v1/cart/items/{product_id}", requireUser(kithttp.NewServer(e.SetQuantity, decodeSetQuantity, ok, opts...)))
	mux.Handle("DELETE /api/v1/cart/items/{product_id}", requireUser(kithttp.NewServer(e.RemoveLine, decodeRemoveLine, ok, opts...)))
	mux.Handle("POST /api/v1/cart/checkout", requireUser(kithttp.NewServer(e.Checkout, decodeCheckout, encodeCheckout(logger), opts...)))
	mux.HandleFunc("/", httpkit.NotFound)
	return mux
}

// requireUser answers 401 unless the gateway named an authenticated user,
// before the request body is read.
func requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := domain.ParseID(httpkit.UserID(r)); err != nil {
			httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs an authenticated customer"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// encodeCheckout answers 202: the order is accepted and placed
// asynchronously; its location is the order service's route.
func encodeCheckout(logger *slog.Logger) kithttp.EncodeResponseFunc {
	accepted := httpkit.EncodeJSON(http.StatusAccepted, toProblem, logger)
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		if r, ok := response.(checkoutResponse); ok && r.Err == nil {
			w.Header().Set("Location", "/api/v1/orders/"+r.OrderID)
		}
		return accepted(ctx, w, response)
	}
}

func productID(r *http.Request) (string, error) {
	id, err := domain.ParseID(r.PathValue("product_id"))
	if err != nil {
		return "", httpkit.NewProblem(http.StatusNotFound, "not-found", "no such product")
	}
	return id, nil
}

func decodeSetQuantity(_ context.Context, r *http.Request) (any, error) {
	id, err := productID(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Quantity *int `json:"quantity"`
	}
	if err := httpkit.DecodeJSON(r, maxBody, &body); err != nil {
		return nil, err
	}
	if body.Quantity == nil {
		return nil, httpkit.Validation(httpkit.FieldError{Field: "quantity", Message: "is required"})
	}
	return setQuantityRequest{ProductID: id, Quantity: *body.Quantity}, nil
}

func decodeRemoveLine(_ context.Context, r *http.Request) (any, error) {
	id, err := productID(r)
	if err != nil {
		return nil, err
	}
	return removeLineRequest{ProductID: id}, nil
}

func decodeCheckout(_ context.Context, r *http.Request) (any, error) {
	// The key is checked first: without one, a retry could not be told from
	// a new checkout, so the request is not even read.
	key, err := domain.ParseIdempotencyKey(r.Header.Get(HeaderIdempotencyKey))
	if err != nil {
		return nil, httpkit.NewProblem(http.StatusBadRequest, "idempotency-key", "checkout needs an Idempotency-Key header",
			httpkit.FieldError{Field: HeaderIdempotencyKey, Message: "must be 1 to 255 printable characters without spaces"})
	}
	var body struct {
		ShippingAddress struct {
			Name       string `json:"name"`
			Line1      string `json:"line1"`
			Line2      string `json:"line2"`
			City       string `json:"city"`
			PostalCode string `json:"postal_code"`
			Country    string `json:"country"`
		} `json:"shipping_address"`
		Payment struct {
			Token string `json:"token"`
		} `json:"payment"`
	}
	if err := httpkit.DecodeJSON(r, maxBody, &body); err != nil {
		return nil, err
	}
	a := body.ShippingAddress
	req, err := domain.NewCheckoutRequest(domain.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City,
		PostalCode: a.PostalCode, Country: a.Country}, body.Payment.Token)
	if err != nil {
		return nil, err
	}
	return checkoutRequest{Key: key, Request: req}, nil
}

// toProblem maps the cart's errors to problems; it is the only place that
// knows their HTTP statuses.
func toProblem(err error) *httpkit.Problem {
	var invalid *domain.ValidationError
	switch {
	case errors.As(err, &invalid):
		fields := make([]httpkit.FieldError, len(invalid.Fields))
		for i, f := range invalid.Fields {
			fields[i] = httpkit.FieldError{Field: f.Field, Message: f.Message}
		}
		return httpkit.Validation(fields...)
	case errors.Is(err, domain.ErrProductNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "no such product")
	case errors.Is(err, domain.ErrEmptyCart):
		return httpkit.NewProblem(http.StatusUnprocessableEntity, "empty-cart", "the cart is empty")
	case errors.Is(err, domain.ErrCartFull):
		return httpkit.NewProblem(http.StatusUnprocessableEntity, "cart-full", domain.ErrCartFull.Error())
	case errors.Is(err, domain.ErrCurrencyMismatch):
		return httpkit.NewProblem(http.StatusUnprocessableEntity, "currency-mismatch", domain.ErrCurrencyMismatch.Error())
	case errors.Is(err, domain.ErrKeyReused):
		return httpkit.NewProblem(http.StatusUnprocessableEntity, "idempotency-key-reused",
			"this Idempotency-Key was used for a different checkout; use a new key for a new checkout")
	}
	return nil
}
