package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// Service is what the HTTP API needs from the use cases.
type Service interface {
	Shipment(ctx context.Context, userID, orderID string) (*domain.Shipment, error)
}

// Endpoints are the shipping service's go-kit endpoints.
type Endpoints struct {
	GetShipment endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc Service) Endpoints {
	return Endpoints{GetShipment: makeGetShipmentEndpoint(svc)}
}

// getShipmentResponse is the public view of a shipment: its tracking.
type getShipmentResponse struct {
	OrderID       string     `json:"order_id"`
	ShipmentID    string     `json:"shipment_id"`
	Status        string     `json:"status"`
	Carrier       string     `json:"carrier"`
	Tracking      *string    `json:"tracking"`
	FailureReason string     `json:"failure_reason,omitempty"`
	FailureDetail string     `json:"failure_detail,omitempty"`
	Events        []stepView `json:"events"`
	Err           error      `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r getShipmentResponse) Failed() error { return r.Err }

type stepView struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

func makeGetShipmentEndpoint(svc Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(httpkit.OrderRequest)
		s, err := svc.Shipment(ctx, req.UserID, req.OrderID)
		if err != nil {
			return getShipmentResponse{Err: err}, nil
		}
		return toShipmentResponse(s), nil
	}
}

func toShipmentResponse(s *domain.Shipment) getShipmentResponse {
	resp := getShipmentResponse{
		OrderID: s.OrderID(), ShipmentID: s.ID(), Status: string(s.Status()), Carrier: s.Carrier(),
		FailureReason: s.FailureReason(), FailureDetail: s.FailureDetail(), Events: []stepView{},
	}
	if t := s.Tracking(); t != "" {
		resp.Tracking = &t
	}
	for _, step := range s.History() {
		resp.Events = append(resp.Events, stepView{Status: string(step.Status), At: step.At})
	}
	return resp
}

// NewHTTPHandler serves the shipping service's public routes as the gateway
// forwards them: GET /api/v1/orders/{id}/shipment.
func NewHTTPHandler(eps Endpoints, logger *slog.Logger) http.Handler {
	return httpkit.OrderResourceHandler("shipment", eps.GetShipment, toProblem, logger)
}

// toProblem is the service's one mapping of domain errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "there is no shipment for this order")
	default:
		return nil
	}
}
