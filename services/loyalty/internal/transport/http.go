package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/app"
)

// Service is what the HTTP API needs from the use cases.
type Service interface {
	Points(ctx context.Context, userID string, limit int) (app.Summary, error)
}

// Endpoints are the loyalty service's go-kit endpoints.
type Endpoints struct {
	GetPoints endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc Service) Endpoints {
	return Endpoints{GetPoints: makeGetPointsEndpoint(svc)}
}

type getPointsRequest struct {
	UserID string
	Limit  int
}

// getPointsResponse is a member's standing: balance, whether enrolled, and
// the newest ledger entries.
type getPointsResponse struct {
	Balance  int         `json:"balance"`
	Enrolled bool        `json:"enrolled"`
	Entries  []entryView `json:"entries"`
	Err      error       `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r getPointsResponse) Failed() error { return r.Err }

type entryView struct {
	Points  int       `json:"points"`
	Reason  string    `json:"reason"`
	OrderID *string   `json:"order_id"`
	At      time.Time `json:"at"`
}

func makeGetPointsEndpoint(svc Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getPointsRequest)
		sum, err := svc.Points(ctx, req.UserID, req.Limit)
		if err != nil {
			return getPointsResponse{Err: err}, nil
		}
		resp := getPointsResponse{Balance: sum.Balance, Enrolled: sum.Enrolled, Entries: make([]entryView, 0, len(sum.Entries))}
		for _, e := range sum.Entries {
			v := entryView{Points: e.Points, Reason: string(e.Reason), At: e.At.UTC()}
			if e.OrderID != "" {
				id := e.OrderID
				v.OrderID = &id
			}
			resp.Entries = append(resp.Entries, v)
		}
		return resp, nil
	}
}

// NewHTTPHandler serves the loyalty service's public route as the gateway
// forwards it: GET /api/v1/me/points (?limit=1..100, default 50 entries).
func NewHTTPHandler(eps Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/me/points", kithttp.NewServer(eps.GetPoints, decodeGetPoints,
		httpkit.EncodeJSON(http.StatusOK, toProblem, logger), opts...))
	mux.HandleFunc("/api/v1/me/points", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "allowed: GET, HEAD"))
	})
	mux.HandleFunc("/", httpkit.NotFound)
	return mux
}

func decodeGetPoints(ctx context.Context, r *http.Request) (any, error) {
	id := httpkit.IdentityFrom(ctx)
	if id.UserID == "" {
		return nil, app.ErrUnauthenticated
	}
	req := getPointsRequest{UserID: id.UserID}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, httpkit.NewProblem(http.StatusBadRequest, "malformed-query", "the query string is malformed")
	}
	var fields []httpkit.FieldError
	for name, values := range q {
		switch {
		case name != "limit":
			fields = append(fields, httpkit.FieldError{Field: name, Message: "unknown query parameter"})
		case len(values) > 1:
			fields = append(fields, httpkit.FieldError{Field: name, Message: "must be given once"})
		default:
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 1 || n > app.MaxEntries {
				fields = append(fields, limitField())
			}
			req.Limit = n
		}
	}
	if len(fields) > 0 {
		return nil, httpkit.Validation(fields...)
	}
	return req, nil
}

func limitField() httpkit.FieldError {
	return httpkit.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", app.MaxEntries)}
}

// toProblem is the service's one mapping of errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, app.ErrUnauthenticated):
		return httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs an authenticated user")
	case errors.Is(err, app.ErrBadLimit):
		return httpkit.Validation(limitField())
	}
	return nil
}
