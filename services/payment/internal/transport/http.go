package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// Service is what the HTTP API needs from the use cases.
type Service interface {
	Payment(ctx context.Context, userID, orderID string) (*domain.Payment, error)
}

// Endpoints are the payment service's go-kit endpoints.
type Endpoints struct {
	GetPayment endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc Service) Endpoints {
	return Endpoints{GetPayment: makeGetPaymentEndpoint(svc)}
}

type getPaymentRequest struct {
	UserID  string
	OrderID string
}

// getPaymentResponse is the public view of a payment.
type getPaymentResponse struct {
	OrderID           string       `json:"order_id"`
	PaymentID         string       `json:"payment_id"`
	Status            string       `json:"status"`
	Amount            money        `json:"amount"`
	ProviderReference string       `json:"provider_reference,omitempty"`
	DeclineReason     string       `json:"decline_reason,omitempty"`
	Refunds           []refundView `json:"refunds"`
	CreatedAt         time.Time    `json:"created_at"`
	UpdatedAt         time.Time    `json:"updated_at"`
	Err               error        `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r getPaymentResponse) Failed() error { return r.Err }

type money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type refundView struct {
	RefundID  string    `json:"refund_id"`
	Amount    money     `json:"amount"`
	Reason    string    `json:"reason"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

func makeGetPaymentEndpoint(svc Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getPaymentRequest)
		p, err := svc.Payment(ctx, req.UserID, req.OrderID)
		if err != nil {
			return getPaymentResponse{Err: err}, nil
		}
		return toPaymentResponse(p), nil
	}
}

func toPaymentResponse(p *domain.Payment) getPaymentResponse {
	resp := getPaymentResponse{
		OrderID: p.OrderID(), PaymentID: p.ID(), Status: string(p.Status()),
		Amount:            money{p.Amount().AmountMinor, p.Amount().Currency},
		ProviderReference: p.ProviderReference(), DeclineReason: p.DeclineReason(),
		Refunds:   []refundView{},
		CreatedAt: p.CreatedAt(), UpdatedAt: p.UpdatedAt(),
	}
	if r, ok := p.Refund(); ok {
		resp.Refunds = append(resp.Refunds, refundView{
			RefundID: r.ID, Amount: money{r.Amount.AmountMinor, r.Amount.Currency},
			Reason: r.Reason, Status: "succeeded", CreatedAt: r.At,
		})
	}
	return resp
}

// NewHTTPHandler serves the payment service's public routes as the gateway
// forwards them: GET /api/v1/orders/{id}/payment.
func NewHTTPHandler(eps Endpoints, logger *slog.Logger) http.Handler {
	opts := []kithttp.ServerOption{
		kithttp.ServerBefore(httpkit.ServerBefore),
		kithttp.ServerErrorEncoder(httpkit.ErrorEncoder(toProblem, logger)),
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/orders/{id}/payment", allow(http.MethodGet,
		kithttp.NewServer(eps.GetPayment, decodeGetPayment, httpkit.EncodeJSON(http.StatusOK, toProblem, logger), opts...)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusNotFound, "not-found", "no such route"))
	})
	return mux
}

func decodeGetPayment(_ context.Context, r *http.Request) (any, error) {
	userID := httpkit.UserID(r)
	if userID == "" {
		return nil, httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs an authenticated user")
	}
	orderID, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	return getPaymentRequest{UserID: userID, OrderID: orderID}, nil
}

// pathID returns a path value that must be a UUID, in canonical form.
func pathID(r *http.Request, name string) (string, error) {
	raw := r.PathValue(name)
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return "", httpkit.NewProblem(http.StatusBadRequest, "invalid-id", "the order id in the path must be a UUID",
			httpkit.FieldError{Field: name, Message: "must be a UUID"})
	}
	return id.String(), nil
}

// toProblem is the service's one mapping of domain errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "there is no payment for this order")
	default:
		return nil
	}
}

// allow answers 405 problems for methods other than method.
func allow(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "use "+method))
			return
		}
		h.ServeHTTP(w, r)
	})
}
