package transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/order/internal/app"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Service is the application as the HTTP API uses it.
type Service interface {
	Get(ctx context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error)
	List(ctx context.Context, user domain.UserID, q app.ListQuery) (app.ListResult, error)
	Cancel(ctx context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error)
}

// maxCancelBody bounds the optional body of a cancellation.
const maxCancelBody = 1 << 10

// NewHTTPHandler serves the order API at the public paths the gateway
// forwards unchanged:
//
//	GET  /api/v1/orders              the caller's orders, newest first (?limit=, ?cursor=)
//	GET  /api/v1/orders/{id}         one of the caller's orders
//	POST /api/v1/orders/{id}/cancel  cancel one of the caller's orders (202)
//
// The caller is the user the gateway authenticated (identity headers); a
// request without one is 401, another customer's order is 404.
func NewHTTPHandler(s Service, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders", kithttp.NewServer(
		makeListOrdersEndpoint(s), decodeListOrders, httpkit.EncodeJSON(http.StatusOK, toProblem, logger), opts...))
	mux.Handle("GET /api/v1/orders/{id}", kithttp.NewServer(
		makeGetOrderEndpoint(s), decodeGetOrder, httpkit.EncodeJSON(http.StatusOK, toProblem, logger), opts...))
	mux.Handle("POST /api/v1/orders/{id}/cancel", kithttp.NewServer(
		makeCancelOrderEndpoint(s), decodeCancelOrder, httpkit.EncodeJSON(http.StatusAccepted, toProblem, logger), opts...))
	mux.Handle("/api/v1/orders", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/v1/orders/{id}", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/v1/orders/{id}/cancel", methodNotAllowed("POST"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusNotFound, "not-found", "no such resource"))
	})
	return mux
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "allowed: "+allow))
	})
}

// toProblem is the service's one mapping of errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "order-not-found", "no such order")
	case errors.Is(err, domain.ErrAlreadyShipped):
		return httpkit.NewProblem(http.StatusConflict, "order-already-dispatched", "the order has been dispatched and can no longer be cancelled")
	case errors.Is(err, domain.ErrInvalidID):
		return httpkit.NewProblem(http.StatusBadRequest, "invalid-id", "order ids are UUIDs")
	case errors.Is(err, app.ErrBadPageSize):
		return httpkit.Validation(httpkit.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", app.MaxPageSize)})
	}
	return nil
}

// Requests and responses, one per method.

type getOrderRequest struct {
	User domain.UserID
	ID   domain.OrderID
}

type cancelOrderRequest struct {
	User domain.UserID
	ID   domain.OrderID
}

type listOrdersRequest struct {
	User  domain.UserID
	Query app.ListQuery
}

// orderResponse is the answer of get and cancel: the order itself.
type orderResponse struct {
	orderView
	err error
}

func (r orderResponse) Failed() error { return r.err }

type listOrdersResponse struct {
	Items      []orderView `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
	err        error
}

func (r listOrdersResponse) Failed() error { return r.err }

func makeGetOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getOrderRequest)
		o, err := s.Get(ctx, req.User, req.ID)
		if err != nil {
			return orderResponse{err: err}, nil
		}
		return orderResponse{orderView: toView(o)}, nil
	}
}

func makeCancelOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(cancelOrderRequest)
		o, err := s.Cancel(ctx, req.User, req.ID)
		if err != nil {
			return orderResponse{err: err}, nil
		}
		return orderResponse{orderView: toView(o)}, nil
	}
}

func makeListOrdersEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(listOrdersRequest)
		res, err := s.List(ctx, req.User, req.Query)
		if err != nil {
			return listOrdersResponse{err: err}, nil
		}
		out := listOrdersResponse{Items: make([]orderView, 0, len(res.Orders))}
		for _, o := range res.Orders {
			out.Items = append(out.Items, toView(o))
		}
		if res.Next != nil {
			out.NextCursor = encodeCursor(*res.Next)
		}
		return out, nil
	}
}

// caller is the authenticated user, or a 401 problem.
func caller(ctx context.Context) (domain.UserID, error) {
	id, err := domain.ParseUserID(httpkit.IdentityFrom(ctx).UserID)
	if err != nil {
		return "", httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "the request carries no authenticated user")
	}
	return id, nil
}

func pathOrderID(r *http.Request) (domain.OrderID, error) {
	id, err := domain.ParseOrderID(r.PathValue("id"))
	if err != nil {
		return "", httpkit.NewProblem(http.StatusBadRequest, "invalid-id", "order ids are UUIDs")
	}
	return id, nil
}

func decodeGetOrder(ctx context.Context, r *http.Request) (any, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := pathOrderID(r)
	if err != nil {
		return nil, err
	}
	return getOrderRequest{User: user, ID: id}, nil
}

// decodeCancelOrder accepts no body or an empty JSON object: a cancellation
// needs nothing but the order, and anything else is refused rather than
// silently ignored.
func decodeCancelOrder(ctx context.Context, r *http.Request) (any, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := pathOrderID(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCancelBody+1))
	if err != nil {
		return nil, httpkit.NewProblem(http.StatusBadRequest, "unreadable-body", "the body could not be read")
	}
	if len(body) > maxCancelBody {
		return nil, httpkit.NewProblem(http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the body exceeds %d bytes", maxCancelBody))
	}
	if len(bytes.TrimSpace(body)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		var none struct{}
		if err := httpkit.DecodeJSON(r, maxCancelBody, &none); err != nil {
			return nil, err
		}
	}
	return cancelOrderRequest{User: user, ID: id}, nil
}

func decodeListOrders(ctx context.Context, r *http.Request) (any, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var (
		q      app.ListQuery
		fields []httpkit.FieldError
	)
	query := r.URL.Query()
	if v, ok := query["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || len(v) > 1 || n < 1 || n > app.MaxPageSize {
			fields = append(fields, httpkit.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", app.MaxPageSize)})
		}
		q.Limit = n
	}
	if v, ok := query["cursor"]; ok {
		c, err := decodeCursor(v[0])
		if err != nil || len(v) > 1 {
			fields = append(fields, httpkit.FieldError{Field: "cursor", Message: "must be a next_cursor of a previous page"})
		}
		q.After = &c
	}
	if len(fields) > 0 {
		return nil, httpkit.Validation(fields...)
	}
	return listOrdersRequest{User: user, Query: q}, nil
}

// A cursor is opaque to clients: the placement time and id of the last
// order of the previous page.
func encodeCursor(c app.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.PlacedAt.UnixMicro(), 10) + "_" + string(c.ID)))
}

func decodeCursor(s string) (app.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return app.Cursor{}, err
	}
	micros, rawID, ok := strings.Cut(string(raw), "_")
	if !ok {
		return app.Cursor{}, errors.New("malformed cursor")
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return app.Cursor{}, err
	}
	id, err := domain.ParseOrderID(rawID)
	if err != nil {
		return app.Cursor{}, err
	}
	return app.Cursor{PlacedAt: time.UnixMicro(n).UTC(), ID: id}, nil
}
