package app

import (
	"context"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// IssueInvoice is a confirmed order to invoice.
type IssueInvoice struct {
	OrderID        string
	UserID         string
	PaymentID      string
	Lines          []domain.LineInput
	Total          domain.Money
	BillingAddress domain.Address
}

// IssueInvoice issues the order's one invoice, numbered in its year's
// sequence, and publishes invoice.invoice_issued.v1. An order already
// invoiced is left alone. Refunds reported before the invoice (a reordered
// delivery) are credited right after it, in the same transaction.
func (s *Service) IssueInvoice(ctx context.Context, cmd IssueInvoice) error {
	return s.billings.Update(ctx, cmd.OrderID, func(b *domain.Billing, numbers Numbers) (*domain.Billing, []outbox.Event, error) {
		if b == nil {
			var err error
			if b, err = domain.NewBilling(cmd.OrderID, cmd.UserID); err != nil {
				return nil, nil, err
			}
		} else if err := b.CheckCustomer(cmd.UserID); err != nil {
			return nil, nil, err
		}
		if _, ok := b.Invoice(); ok {
			return nil, nil, nil
		}
		draft := domain.InvoiceDraft{PaymentID: cmd.PaymentID, Lines: cmd.Lines, Total: cmd.Total,
			BillingAddress: cmd.BillingAddress, VATRate: s.vatRate}
		// Reject a bad order before taking a number for it.
		if _, _, _, _, err := domain.PriceInvoice(draft); err != nil {
			return nil, nil, err
		}
		now := s.now()
		number, err := numbers.Next(ctx, domain.SeriesInvoice, now.Year())
		if err != nil {
			return nil, nil, err
		}
		inv, err := b.IssueInvoice(s.newID(), number, draft, now)
		if err != nil {
			return nil, nil, err
		}
		lines := make([]contracts.Line, 0, len(inv.Lines))
		for _, l := range inv.Lines {
			lines = append(lines, contracts.Line{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
				UnitPrice: toMoney(l.UnitPrice)})
		}
		a := inv.BillingAddress
		events := []outbox.Event{{
			Type: contracts.TypeInvoiceIssuedV1, AggregateID: b.OrderID(), OccurredAt: now,
			Payload: contracts.InvoiceIssuedV1{
				InvoiceID: inv.ID, Number: inv.Number.String(), OrderID: b.OrderID(), UserID: b.UserID(),
				Lines: lines, Total: toMoney(inv.Total),
				BillingAddress: contracts.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City,
					PostalCode: a.PostalCode, Country: a.Country},
			},
		}}
		credits, err := s.creditPending(ctx, b, numbers, now)
		if err != nil {
			return nil, nil, err
		}
		return b, append(events, credits...), nil
	})
}
