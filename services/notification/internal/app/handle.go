package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

// intent is one notification an event asks for, before rendering.
type intent struct {
	template string
	// userID is the customer; empty for a staff alert.
	userID  string
	orderID string
	data    domain.Data
}

// Handle applies one event inside tx: it updates the customer read model and
// records the notifications the event asks for, each at most once. A
// redelivered event is absorbed by the inbox before Handle; a notification
// already recorded for the same event, recipient and channel is skipped.
func (s *Service) Handle(ctx context.Context, tx Tx, ev Event) error {
	intents, err := s.apply(ctx, tx, ev)
	if err != nil {
		return err
	}
	for _, in := range intents {
		if err := s.record(ctx, tx, ev, in); err != nil {
			return err
		}
	}
	return nil
}

// apply updates the read model and says which notifications ev asks for.
// Every type the registry lets this service consume has a case here.
func (s *Service) apply(ctx context.Context, tx Tx, ev Event) ([]intent, error) {
	switch e := ev.Payload.(type) {
	case *contracts.UserRegisteredV1:
		if err := tx.Registered(ctx, e.UserID, e.Email, e.Name, ev.OccurredAt); err != nil {
			return nil, err
		}
		return []intent{{template: domain.TemplateWelcome, userID: e.UserID}}, nil
	case *contracts.UserAddressChangedV1:
		return []intent{{template: domain.TemplateAddressChanged, userID: e.UserID,
			data: domain.Data{Address: oneLine(e.Address)}}}, nil
	case *contracts.UserDeactivatedV1:
		if err := tx.Deactivated(ctx, e.UserID, ev.OccurredAt); err != nil {
			return nil, err
		}
		return []intent{{template: domain.TemplateAccountDeactivated, userID: e.UserID}}, nil

	case *contracts.OrderPlacedV2:
		return []intent{{template: domain.TemplateOrderPlaced, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, Lines: pricedLineData(e.Lines), Total: money(e.Totals.Total)}}}, nil
	case *contracts.OrderConfirmedV1:
		return []intent{{template: domain.TemplateOrderConfirmed, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, Total: money(e.Total)}}}, nil
	case *contracts.OrderCancelledV1:
		return []intent{{template: domain.TemplateOrderCancelled, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, Total: money(e.Total), Reason: cancellationText(e.Reason),
				Refund: slices.Contains(e.Compensations, contracts.CompensateRefundPayment)}}}, nil
	case *contracts.OrderShippedV1:
		return []intent{{template: domain.TemplateOrderShipped, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber}}}, nil
	case *contracts.OrderDeliveredV1:
		return []intent{{template: domain.TemplateOrderDelivered, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID}}}, nil

	case *contracts.PaymentRefundedV1:
		return []intent{{template: domain.TemplateRefundIssued, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, Amount: money(e.Amount), Reason: refundText(e.Reason)}}}, nil
	case *contracts.InvoiceIssuedV1:
		return []intent{{template: domain.TemplateInvoiceIssued, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, InvoiceNumber: e.Number, Lines: lineData(e.Lines), Total: money(e.Total)}}}, nil
	case *contracts.CreditNoteIssuedV1:
		return []intent{{template: domain.TemplateCreditNoteIssued, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, CreditNoteNumber: e.Number, Amount: money(e.Amount)}}}, nil
	case *contracts.PointsAwardedV1:
		return []intent{{template: domain.TemplatePointsAwarded, userID: e.UserID, orderID: e.OrderID,
			data: domain.Data{Points: e.Points, Balance: e.Balance, Reason: pointsText(e.Reason)}}}, nil

	// Staff hear only about failures.
	case *contracts.LowStockV1:
		return []intent{{template: domain.TemplateStaffLowStock,
			data: domain.Data{ProductID: e.ProductID, SKU: e.SKU, Available: e.Available, Threshold: e.Threshold}}}, nil
	case *contracts.ShipmentFailedV1:
		return []intent{{template: domain.TemplateStaffShipmentFailed, orderID: e.OrderID,
			data: domain.Data{OrderID: e.OrderID, UserID: e.UserID, Reason: string(e.Reason), Detail: e.Detail}}}, nil
	case *contracts.EnrolmentBonusFailedV1:
		return []intent{{template: domain.TemplateStaffEnrolmentBonusFailed,
			data: domain.Data{UserID: e.UserID, Reason: e.Reason}}}, nil
	}
	return nil, fmt.Errorf("%w: no notification rule for %s (%T)", ErrUnhandled, ev.Type, ev.Payload)
}

// record renders one intent and stores it unless already recorded.
func (s *Service) record(ctx context.Context, tx Tx, ev Event, in intent) error {
	t, ok := s.templates.Lookup(in.template)
	if !ok {
		return fmt.Errorf("%w: unknown template %q", ErrUnhandled, in.template)
	}
	d := domain.Draft{ID: s.newID(), EventID: ev.ID, EventType: ev.Type, Audience: t.Audience,
		Channel: domain.ChannelEmail, Template: t.Name, OrderID: in.orderID, CorrelationID: outbox.CorrelationID(ctx)}
	switch t.Audience {
	case domain.AudienceStaff:
		if s.cfg.StaffEmail == "" {
			return nil // staff alerts are switched off
		}
		d.StaffAddress = s.cfg.StaffEmail
	case domain.AudienceCustomer:
		c, known, err := tx.Contact(ctx, in.userID)
		if err != nil {
			return fmt.Errorf("contact %s: %w", in.userID, err)
		}
		if !domain.Receives(t, c, known) {
			return nil
		}
		d.UserID = in.userID
		in.data.Name = c.Name
	}
	subject, body, err := t.Render(in.data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnhandled, err)
	}
	d.Subject, d.Body = subject, body
	n, err := domain.New(d, s.now())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnhandled, err)
	}
	if err := tx.Record(ctx, n); err != nil {
		return fmt.Errorf("record %s for %s: %w", t.Name, ev.ID, err)
	}
	return nil
}

func money(m contracts.Money) string { return domain.FormatMoney(m.AmountMinor, m.Currency) }

func lineData(ls []contracts.Line) []domain.LineData {
	out := make([]domain.LineData, 0, len(ls))
	for _, l := range ls {
		out = append(out, domain.LineData{
			Name: l.Name, SKU: l.SKU, Quantity: l.Quantity, UnitPrice: money(l.UnitPrice),
			Total: domain.FormatMoney(l.UnitPrice.AmountMinor*int64(l.Quantity), l.UnitPrice.Currency),
		})
	}
	return out
}

func pricedLineData(ls []contracts.PricedLine) []domain.LineData {
	out := make([]domain.LineData, 0, len(ls))
	for _, l := range ls {
		out = append(out, domain.LineData{Name: l.Name, SKU: l.SKU, Quantity: l.Quantity, UnitPrice: money(l.UnitPrice), Total: money(l.LineTotal)})
	}
	return out
}

func oneLine(a contracts.Address) string {
	parts := []string{a.Name, a.Line1}
	if a.Line2 != "" {
		parts = append(parts, a.Line2)
	}
	parts = append(parts, a.PostalCode+" "+a.City, a.Country)
	return strings.Join(parts, ", ")
}

func cancellationText(r contracts.CancellationReason) string {
	switch r {
	case contracts.ReasonOutOfStock:
		return "some items are out of stock"
	case contracts.ReasonPaymentDeclined:
		return "your payment was declined"
	case contracts.ReasonPaymentTimeout:
		return "we did not receive a payment confirmation in time"
	case contracts.ReasonUndeliverable:
		return "the carrier could not deliver it"
	case contracts.ReasonCustomerRequest:
		return "you asked us to cancel it"
	}
	return strings.ReplaceAll(string(r), "_", " ")
}

func refundText(r contracts.CancellationReason) string {
	if r == "" {
		return ""
	}
	return "the order was cancelled because " + cancellationText(r)
}

func pointsText(r contracts.PointsReason) string {
	switch r {
	case contracts.PointsEnrolmentBonus:
		return "as a welcome bonus"
	case contracts.PointsOrderCompleted:
		return "for your order"
	}
	return ""
}
