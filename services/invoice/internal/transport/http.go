package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// Service is what the HTTP API needs from the use cases.
type Service interface {
	Billing(ctx context.Context, userID, orderID string) (*domain.Billing, error)
}

// Endpoints are the invoice service's go-kit endpoints.
type Endpoints struct {
	GetInvoice endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc Service) Endpoints {
	return Endpoints{GetInvoice: makeGetInvoiceEndpoint(svc)}
}

// getInvoiceResponse is an order's invoice and credit notes.
type getInvoiceResponse struct {
	Invoice     *invoiceView     `json:"invoice"`
	CreditNotes []creditNoteView `json:"credit_notes"`
	Err         error            `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r getInvoiceResponse) Failed() error { return r.Err }

type money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

func toMoney(m domain.Money) money { return money{m.AmountMinor, m.Currency} }

type address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type lineView struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice money  `json:"unit_price"`
	Net       money  `json:"net"`
	VAT       money  `json:"vat"`
	Total     money  `json:"total"`
}

type invoiceView struct {
	InvoiceID          string     `json:"invoice_id"`
	Number             string     `json:"number"`
	OrderID            string     `json:"order_id"`
	IssuedAt           time.Time  `json:"issued_at"`
	Lines              []lineView `json:"lines"`
	VATRateBasisPoints int        `json:"vat_rate_basis_points"`
	Net                money      `json:"net"`
	VAT                money      `json:"vat"`
	Total              money      `json:"total"`
	BillingAddress     address    `json:"billing_address"`
}

type creditNoteView struct {
	CreditNoteID string    `json:"credit_note_id"`
	Number       string    `json:"number"`
	InvoiceID    string    `json:"invoice_id"`
	RefundID     string    `json:"refund_id"`
	Amount       money     `json:"amount"`
	Reason       string    `json:"reason"`
	IssuedAt     time.Time `json:"issued_at"`
}

func makeGetInvoiceEndpoint(svc Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(httpkit.OrderRequest)
		b, err := svc.Billing(ctx, req.UserID, req.OrderID)
		if err != nil {
			return getInvoiceResponse{Err: err}, nil
		}
		return toInvoiceResponse(b), nil
	}
}

func toInvoiceResponse(b *domain.Billing) getInvoiceResponse {
	resp := getInvoiceResponse{CreditNotes: []creditNoteView{}}
	if inv, ok := b.Invoice(); ok {
		v := &invoiceView{InvoiceID: inv.ID, Number: inv.Number.String(), OrderID: inv.OrderID, IssuedAt: inv.IssuedAt,
			VATRateBasisPoints: inv.VATRate, Net: toMoney(inv.Net), VAT: toMoney(inv.VAT), Total: toMoney(inv.Total),
			BillingAddress: address(inv.BillingAddress), Lines: []lineView{}}
		for _, l := range inv.Lines {
			v.Lines = append(v.Lines, lineView{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
				UnitPrice: toMoney(l.UnitPrice), Net: toMoney(l.Net), VAT: toMoney(l.VAT), Total: toMoney(l.Gross)})
		}
		resp.Invoice = v
	}
	for _, n := range b.CreditNotes() {
		resp.CreditNotes = append(resp.CreditNotes, creditNoteView{CreditNoteID: n.ID, Number: n.Number.String(),
			InvoiceID: n.InvoiceID, RefundID: n.RefundID, Amount: toMoney(n.Amount), Reason: n.Reason, IssuedAt: n.IssuedAt})
	}
	return resp
}

// NewHTTPHandler serves the invoice service's public routes as the gateway
// forwards them: GET /api/v1/orders/{id}/invoice.
func NewHTTPHandler(eps Endpoints, logger *slog.Logger) http.Handler {
	return httpkit.OrderResourceHandler("invoice", eps.GetInvoice, toProblem, logger)
}

// toProblem is the service's one mapping of domain errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "there is no invoice for this order")
	default:
		return nil
	}
}
