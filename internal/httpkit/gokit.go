package httpkit

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/outbox"
)

// Failer is implemented by go-kit responses that carry a business error
// (the go-kit examples' `Failed() error`), so the transport can encode it.
type Failer interface {
	Failed() error
}

// ErrorEncoder returns a go-kit error encoder that maps errors with toProblem
// (the service's one place where domain errors become HTTP statuses; it
// returns nil for errors it does not know) and writes problem+json. Unknown
// errors are logged and answered with an opaque 500.
func ErrorEncoder(toProblem func(error) *Problem, logger *slog.Logger) kithttp.ErrorEncoder {
	return func(ctx context.Context, err error, w http.ResponseWriter) {
		p := toProblem(err)
		if p == nil {
			p = AsProblem(err)
			if p.Status == http.StatusInternalServerError {
				logger.Error("request failed", "err", err)
			}
		}
		WriteProblem(w, nil, p)
	}
}

// EncodeJSON returns a go-kit response encoder writing status and the
// response as JSON, or the response's business error as a problem.
func EncodeJSON(status int, toProblem func(error) *Problem, logger *slog.Logger) kithttp.EncodeResponseFunc {
	encodeErr := ErrorEncoder(toProblem, logger)
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		if f, ok := response.(Failer); ok && f.Failed() != nil {
			encodeErr(ctx, f.Failed(), w)
			return nil
		}
		WriteJSON(w, status, response)
		return nil
	}
}

// ServerBefore is the go-kit request function every service installs: it
// puts the caller's identity and the request's correlation id into ctx, so
// events published while serving the request carry it.
func ServerBefore(ctx context.Context, r *http.Request) context.Context {
	ctx = WithIdentity(ctx, r)
	if id := r.Header.Get(HeaderRequestID); id != "" {
		ctx = outbox.WithCorrelation(ctx, id)
	}
	return ctx
}

// ServerOptions are the go-kit server options every service's routes share:
// ServerBefore, and ErrorEncoder over the service's toProblem.
func ServerOptions(toProblem func(error) *Problem, logger *slog.Logger) []kithttp.ServerOption {
	return []kithttp.ServerOption{
		kithttp.ServerBefore(ServerBefore),
		kithttp.ServerErrorEncoder(ErrorEncoder(toProblem, logger)),
	}
}

// OrderRequest asks for what a service holds about one of the caller's
// orders; DecodeOrderRequest reads it.
type OrderRequest struct {
	UserID  string
	OrderID string
}

// DecodeOrderRequest is the go-kit decoder of GET
// /api/v1/orders/{id}/<resource> into an OrderRequest (see CallerOrder).
func DecodeOrderRequest(_ context.Context, r *http.Request) (any, error) {
	userID, orderID, err := CallerOrder(r)
	if err != nil {
		return nil, err
	}
	return OrderRequest{UserID: userID, OrderID: orderID}, nil
}

// OrderResourceHandler serves the one route of a service that shows the
// caller what it holds about an order, GET /api/v1/orders/{id}/<resource>,
// with ep (taking an OrderRequest) and answers any other path 404.
func OrderResourceHandler(resource string, ep endpoint.Endpoint, toProblem func(error) *Problem, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/orders/{id}/"+resource, AllowMethod(http.MethodGet,
		kithttp.NewServer(ep, DecodeOrderRequest, EncodeJSON(http.StatusOK, toProblem, logger), ServerOptions(toProblem, logger)...)))
	mux.HandleFunc("/", NotFound)
	return mux
}
