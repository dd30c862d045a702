package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"

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
		req := request.(httpkit.OrderRequest)
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
	return httpkit.OrderResourceHandler("payment", eps.GetPayment, toProblem, logger)
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
