package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/catalog/internal/app"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// maxBody bounds request bodies: a product with the longest description
// (5000 characters of up to 4 bytes) fits with room to spare.
const maxBody = 32 << 10

// NewHTTPHandler serves the catalogue's routes. The gateway forwards them
// unchanged; product reads are public, the admin routes need an
// administrator's identity headers.
func NewHTTPHandler(e Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	ok := httpkit.EncodeJSON(http.StatusOK, toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/products", kithttp.NewServer(e.ListProducts, decodeListProducts, ok, opts...))
	mux.Handle("GET /api/v1/products/{id}", kithttp.NewServer(e.GetProduct, decodeGetProduct, ok, opts...))
	mux.Handle("POST /api/v1/admin/products",
		httpkit.RequireAdmin(kithttp.NewServer(e.CreateProduct, decodeCreateProduct, encodeCreated(logger), opts...)))
	mux.Handle("PATCH /api/v1/admin/products/{id}",
		httpkit.RequireAdmin(kithttp.NewServer(e.UpdateProduct, decodeUpdateProduct, ok, opts...)))
	mux.HandleFunc("/", httpkit.NotFound)
	return mux
}

// encodeCreated answers 201 with the product and its public location.
func encodeCreated(logger *slog.Logger) kithttp.EncodeResponseFunc {
	created := httpkit.EncodeJSON(http.StatusCreated, toProblem, logger)
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		if r, ok := response.(productResponse); ok && r.Err == nil {
			w.Header().Set("Location", "/api/v1/products/"+r.ID)
		}
		return created(ctx, w, response)
	}
}

func decodeListProducts(_ context.Context, r *http.Request) (any, error) {
	values := r.URL.Query()
	q := app.Query{Search: strings.TrimSpace(values.Get("q")), Limit: app.DefaultLimit}
	var errs []httpkit.FieldError
	if !utf8.ValidString(q.Search) || utf8.RuneCountInString(q.Search) > app.MaxSearchLength {
		errs = append(errs, httpkit.FieldError{Field: "q", Message: "must be valid text of at most " + strconv.Itoa(app.MaxSearchLength) + " characters"})
	}
	if v, ok := intParam(values, "limit", 1, app.MaxLimit, &errs); ok {
		q.Limit = v
	}
	if v, ok := intParam(values, "offset", 0, app.MaxOffset, &errs); ok {
		q.Offset = v
	}
	if len(errs) > 0 {
		return nil, httpkit.Validation(errs...)
	}
	return q, nil
}

// intParam parses an optional integer query parameter within lo..hi.
func intParam(values url.Values, name string, lo, hi int, errs *[]httpkit.FieldError) (int, bool) {
	if !values.Has(name) {
		return 0, false
	}
	v, err := strconv.Atoi(values.Get(name))
	if err != nil || v < lo || v > hi {
		*errs = append(*errs, httpkit.FieldError{Field: name, Message: "must be an integer from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi)})
		return 0, false
	}
	return v, true
}

func productID(r *http.Request) (string, error) {
	id, err := domain.ParseID(r.PathValue("id"))
	if err != nil {
		return "", httpkit.NewProblem(http.StatusNotFound, "not-found", "no such product")
	}
	return id, nil
}

func decodeGetProduct(_ context.Context, r *http.Request) (any, error) {
	id, err := productID(r)
	if err != nil {
		return nil, err
	}
	return getProductRequest{ID: id}, nil
}

type priceBody struct {
	AmountMinor *int64  `json:"amount_minor"`
	Currency    *string `json:"currency"`
}

func decodeCreateProduct(_ context.Context, r *http.Request) (any, error) {
	var body struct {
		SKU          string     `json:"sku"`
		Name         string     `json:"name"`
		Description  string     `json:"description"`
		Price        *priceBody `json:"price"`
		InitialStock int        `json:"initial_stock"`
	}
	if err := httpkit.DecodeJSON(r, maxBody, &body); err != nil {
		return nil, err
	}
	req := createProductRequest{SKU: body.SKU, Name: body.Name, Description: body.Description, InitialStock: body.InitialStock}
	if body.Price != nil {
		if body.Price.AmountMinor != nil {
			req.PriceMinor = *body.Price.AmountMinor
		}
		if body.Price.Currency != nil {
			req.Currency = *body.Price.Currency
		}
	}
	return req, nil
}

func decodeUpdateProduct(_ context.Context, r *http.Request) (any, error) {
	id, err := productID(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Name        *string    `json:"name"`
		Description *string    `json:"description"`
		Price       *priceBody `json:"price"`
	}
	if err := httpkit.DecodeJSON(r, maxBody, &body); err != nil {
		return nil, err
	}
	patch := domain.Patch{Name: body.Name, Description: body.Description}
	if body.Price != nil {
		if body.Price.AmountMinor == nil {
			return nil, httpkit.Validation(httpkit.FieldError{Field: "price.amount_minor", Message: "is required"})
		}
		patch.PriceMinor, patch.Currency = body.Price.AmountMinor, body.Price.Currency
	}
	return updateProductRequest{ID: id, Patch: patch}, nil
}

// toProblem maps the catalogue's errors to problems; it is the only place
// that knows their HTTP statuses.
func toProblem(err error) *httpkit.Problem {
	var invalid *domain.ValidationError
	switch {
	case errors.As(err, &invalid):
		fields := make([]httpkit.FieldError, len(invalid.Fields))
		for i, f := range invalid.Fields {
			fields[i] = httpkit.FieldError{Field: f.Field, Message: f.Message}
		}
		return httpkit.Validation(fields...)
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "no such product")
	case errors.Is(err, domain.ErrSKUTaken):
		return httpkit.NewProblem(http.StatusConflict, "sku-taken", "a product with this sku exists")
	}
	return nil
}
