package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/notification/internal/app"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

// Endpoints are the notification service's go-kit endpoints.
type Endpoints struct {
	List endpoint.Endpoint
}

// MakeEndpoints builds the endpoints of s.
func MakeEndpoints(s *app.Service) Endpoints {
	return Endpoints{List: makeList(s)}
}

type listRequest struct {
	caller app.Caller
	query  app.ListQuery
}

// notificationBody is one notification on the wire.
type notificationBody struct {
	ID        string     `json:"id"`
	Channel   string     `json:"channel"`
	Subject   string     `json:"subject"`
	Body      string     `json:"body"`
	EventType string     `json:"event_type"`
	OrderID   *string    `json:"order_id"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

type listResponse struct {
	items []notificationBody
	next  string
	limit int
	Err   error
}

func (r listResponse) Failed() error { return r.Err }

func makeList(s *app.Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(listRequest)
		res, err := s.List(ctx, req.caller, req.query)
		if err != nil {
			return listResponse{Err: err}, nil
		}
		items := make([]notificationBody, 0, len(res.Items))
		for _, n := range res.Items {
			items = append(items, toBody(n))
		}
		limit := req.query.Limit
		if limit == 0 {
			limit = app.DefaultPageSize
		}
		return listResponse{items: items, next: res.Next, limit: limit}, nil
	}
}

func toBody(n *domain.Notification) notificationBody {
	b := notificationBody{ID: n.ID(), Channel: string(n.Channel()), Subject: n.Subject(), Body: n.Body(),
		EventType: n.EventType(), Status: string(n.Status()), CreatedAt: n.CreatedAt()}
	if id := n.OrderID(); id != "" {
		b.OrderID = &id
	}
	if t := n.SentAt(); !t.IsZero() {
		b.SentAt = &t
	}
	return b
}

// NewHandler serves GET /api/v1/notifications: the caller's notifications,
// newest first, as a JSON array. Paging: ?limit=1..100 (default 20) and
// ?before=<id of the last item seen>; a Link header with rel="next" points
// to the next page when there is one.
func NewHandler(e Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/notifications", kithttp.NewServer(e.List, decodeList, encodeList(logger), opts...))
	return mux
}

func decodeList(ctx context.Context, r *http.Request) (any, error) {
	id := httpkit.IdentityFrom(ctx)
	if id.UserID == "" {
		return nil, app.ErrUnauthenticated
	}
	q := r.URL.Query()
	req := listRequest{caller: app.Caller{UserID: id.UserID, Role: id.Role}}
	var fields []httpkit.FieldError
	for name := range q {
		if name != "limit" && name != "before" {
			fields = append(fields, httpkit.FieldError{Field: name, Message: "unknown query parameter"})
		} else if len(q[name]) > 1 {
			fields = append(fields, httpkit.FieldError{Field: name, Message: "must be given once"})
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fields = append(fields, httpkit.FieldError{Field: "limit", Message: "must be an integer"})
		}
		req.query.Limit = n
		if err == nil && n == 0 {
			req.query.Limit = -1 // explicit 0 is out of range, not "default"
		}
	} else if q.Has("limit") {
		fields = append(fields, httpkit.FieldError{Field: "limit", Message: "must be an integer"})
	}
	req.query.Before = q.Get("before")
	if len(fields) > 0 {
		return nil, httpkit.Validation(fields...)
	}
	return req, nil
}

func encodeList(logger *slog.Logger) kithttp.EncodeResponseFunc {
	encodeErr := httpkit.ErrorEncoder(toProblem, logger)
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		res := response.(listResponse)
		if res.Err != nil {
			encodeErr(ctx, res.Err, w)
			return nil
		}
		if res.next != "" {
			next := url.Values{"limit": {strconv.Itoa(res.limit)}, "before": {res.next}}
			w.Header().Set("Link", `</api/v1/notifications?`+next.Encode()+`>; rel="next"`)
		}
		w.Header().Set("Cache-Control", "no-store")
		httpkit.WriteJSON(w, http.StatusOK, res.items)
		return nil
	}
}

// toProblem is the service's one mapping from errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	var q *app.InvalidQueryError
	switch {
	case errors.As(err, &q):
		return httpkit.Validation(httpkit.FieldError{Field: q.Field, Message: q.Message})
	case errors.Is(err, app.ErrUnauthenticated):
		return httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs a signed-in user")
	}
	return nil
}
