package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/customer/internal/app"
	"github.com/shopmesh/shopmesh/services/customer/internal/domain"
)

// Service is what the HTTP API needs from the use cases.
type Service interface {
	Me(ctx context.Context, userID string) (app.Me, error)
	History(ctx context.Context, userID string, q app.HistoryQuery) (app.HistoryPage, error)
}

// Endpoints are the customer service's go-kit endpoints.
type Endpoints struct {
	GetMe      endpoint.Endpoint
	GetHistory endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc Service) Endpoints {
	return Endpoints{GetMe: makeGetMeEndpoint(svc), GetHistory: makeGetHistoryEndpoint(svc)}
}

type getMeRequest struct{ UserID string }

// getMeResponse is a customer's profile.
type getMeResponse struct {
	ID          string       `json:"id"`
	Email       string       `json:"email"`
	Name        string       `json:"name"`
	Address     *addressView `json:"address"`
	OrdersCount int          `json:"orders_count"`
	Err         error        `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r getMeResponse) Failed() error { return r.Err }

type addressView struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type getHistoryRequest struct {
	UserID string
	Query  app.HistoryQuery
}

// getHistoryResponse is one page of a customer's orders, newest first.
type getHistoryResponse struct {
	Items      []orderView `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
	Err        error       `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r getHistoryResponse) Failed() error { return r.Err }

type orderView struct {
	OrderID            string         `json:"order_id"`
	Status             string         `json:"status"`
	Total              *moneyView     `json:"total"`
	CancellationReason *string        `json:"cancellation_reason"`
	PlacedAt           time.Time      `json:"placed_at"`
	UpdatedAt          time.Time      `json:"updated_at"`
	Timeline           []timelineView `json:"timeline"`
}

type moneyView struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type timelineView struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

func makeGetMeEndpoint(svc Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getMeRequest)
		me, err := svc.Me(ctx, req.UserID)
		if err != nil {
			return getMeResponse{Err: err}, nil
		}
		p := me.Profile
		resp := getMeResponse{ID: p.UserID(), Email: p.Email(), Name: p.Name(), OrdersCount: me.OrdersCount}
		if a, ok := p.Address(); ok {
			resp.Address = &addressView{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
		}
		return resp, nil
	}
}

func makeGetHistoryEndpoint(svc Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getHistoryRequest)
		page, err := svc.History(ctx, req.UserID, req.Query)
		if err != nil {
			return getHistoryResponse{Err: err}, nil
		}
		resp := getHistoryResponse{Items: make([]orderView, 0, len(page.Orders))}
		for _, o := range page.Orders {
			resp.Items = append(resp.Items, toOrderView(o))
		}
		if page.Next != nil {
			resp.NextCursor = encodeCursor(*page.Next)
		}
		return resp, nil
	}
}

func toOrderView(o *domain.Order) orderView {
	v := orderView{OrderID: o.ID(), Status: string(o.Status()), PlacedAt: o.PlacedAt().UTC(), UpdatedAt: o.UpdatedAt().UTC(),
		Timeline: []timelineView{}}
	if t, ok := o.Total(); ok {
		v.Total = &moneyView{AmountMinor: t.AmountMinor, Currency: t.Currency}
	}
	if r := o.CancellationReason(); r != "" {
		v.CancellationReason = &r
	}
	for _, e := range o.Timeline() {
		v.Timeline = append(v.Timeline, timelineView{Type: string(e.Step), At: e.At.UTC()})
	}
	return v
}

// NewHTTPHandler serves the customer service's public routes as the gateway
// forwards them:
//
//	GET /api/v1/me          the caller's profile
//	GET /api/v1/me/history  the caller's orders, newest first (?limit=1..100, ?cursor=)
func NewHTTPHandler(eps Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	ok := httpkit.EncodeJSON(http.StatusOK, toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/me", kithttp.NewServer(eps.GetMe, decodeGetMe, ok, opts...))
	mux.Handle("GET /api/v1/me/history", kithttp.NewServer(eps.GetHistory, decodeGetHistory, ok, opts...))
	mux.Handle("/api/v1/me", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/v1/me/history", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", httpkit.NotFound)
	return mux
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "allowed: "+allow))
	})
}

func decodeGetMe(ctx context.Context, r *http.Request) (any, error) {
	id := httpkit.IdentityFrom(ctx)
	if id.UserID == "" {
		return nil, app.ErrUnauthenticated
	}
	q, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	if len(q) > 0 {
		var fields []httpkit.FieldError
		for name := range q {
			fields = append(fields, httpkit.FieldError{Field: name, Message: "unknown query parameter"})
		}
		return nil, httpkit.Validation(fields...)
	}
	return getMeRequest{UserID: id.UserID}, nil
}

func decodeGetHistory(ctx context.Context, r *http.Request) (any, error) {
	id := httpkit.IdentityFrom(ctx)
	if id.UserID == "" {
		return nil, app.ErrUnauthenticated
	}
	q, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	req := getHistoryRequest{UserID: id.UserID}
	var fields []httpkit.FieldError
	for name, values := range q {
		switch {
		case name != "limit" && name != "cursor":
			fields = append(fields, httpkit.FieldError{Field: name, Message: "unknown query parameter"})
		case len(values) > 1:
			fields = append(fields, httpkit.FieldError{Field: name, Message: "must be given once"})
		case name == "limit":
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 1 || n > app.MaxPageSize {
				fields = append(fields, limitField())
			}
			req.Query.Limit = n
		default:
			c, err := decodeCursor(values[0])
			if err != nil {
				fields = append(fields, httpkit.FieldError{Field: "cursor", Message: "must be a next_cursor of a previous page"})
			}
			req.Query.After = &c
		}
	}
	if len(fields) > 0 {
		return nil, httpkit.Validation(fields...)
	}
	return req, nil
}

// parseQuery parses the query string strictly: a malformed one is a 400
// rather than silently losing parameters.
func parseQuery(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, httpkit.NewProblem(http.StatusBadRequest, "malformed-query", "the query string is malformed")
	}
	return q, nil
}

func limitField() httpkit.FieldError {
	return httpkit.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", app.MaxPageSize)}
}

// A cursor is opaque to clients: the placement time and id of the last
// order of the previous page.
func encodeCursor(c app.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.PlacedAt.UnixMicro(), 10) + "_" + c.OrderID))
}

func decodeCursor(s string) (app.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return app.Cursor{}, err
	}
	micros, id, ok := strings.Cut(string(raw), "_")
	if !ok {
		return app.Cursor{}, errors.New("malformed cursor")
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return app.Cursor{}, err
	}
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return app.Cursor{}, errors.New("malformed cursor id")
	}
	return app.Cursor{PlacedAt: time.UnixMicro(n).UTC(), OrderID: id}, nil
}

// toProblem is the service's one mapping of errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, app.ErrUnauthenticated):
		return httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs an authenticated user")
	case errors.Is(err, app.ErrBadPageSize):
		return httpkit.Validation(limitField())
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "profile-not-found", "there is no profile for this account yet")
	}
	return nil
}
