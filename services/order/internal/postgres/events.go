package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// toMessage turns a domain event of o into the outbox event of its
// contract. The payload is checked against the contract before it is
// written, so a defect here fails the transaction instead of reaching every
// consumer's dead letters.
func toMessage(o *domain.Order, e domain.Event) (outbox.Event, error) {
	id, user := string(o.ID()), string(o.UserID())
	var (
		typ     string
		payload any
	)
	switch e := e.(type) {
	case domain.Placed:
		total := o.Total()
		typ, payload = contracts.TypeOrderPlacedV2, contracts.OrderPlacedV2{
			OrderID: id, UserID: user, Currency: total.Currency, Lines: toPricedLines(o.Lines()),
			// The order charges no shipping: a placement's total is the
			// sum of its lines (Placement.validate).
			Totals: contracts.OrderTotals{Subtotal: toContractMoney(total),
				Shipping: contracts.Money{Currency: total.Currency}, Total: toContractMoney(total)},
			ShippingAddress: toContractAddress(o.ShippingAddress()),
		}
	case domain.PaymentRequested:
		typ, payload = contracts.TypeOrderPaymentRequestedV1, contracts.OrderPaymentRequestedV1{
			OrderID: id, UserID: user, Amount: toContractMoney(e.Amount), PaymentToken: e.PaymentToken, ExpiresAt: e.ExpiresAt,
		}
	case domain.PaymentTimeoutDue:
		typ, payload = contracts.TypeOrderPaymentTimedOutV1, contracts.OrderPaymentTimedOutV1{OrderID: id, ExpiresAt: e.ExpiresAt}
	case domain.Confirmed:
		typ, payload = contracts.TypeOrderConfirmedV1, contracts.OrderConfirmedV1{
			OrderID: id, UserID: user, PaymentID: e.PaymentID, Lines: toContractLines(o.Lines()),
			Total: toContractMoney(o.Total()), ShippingAddress: toContractAddress(o.ShippingAddress()),
		}
	case domain.CancellationRequested:
		typ, payload = contracts.TypeOrderCancellationRequestedV1, contracts.OrderCancellationRequestedV1{
			OrderID: id, UserID: user, Reason: contracts.CancellationReason(e.Reason),
		}
	case domain.Cancelled:
		var comps []contracts.Compensation
		for _, c := range e.Compensations {
			comps = append(comps, contracts.Compensation(c))
		}
		typ, payload = contracts.TypeOrderCancelledV1, contracts.OrderCancelledV1{
			OrderID: id, UserID: user, Reason: contracts.CancellationReason(e.Reason), Compensations: comps,
			Lines: toContractLines(o.Lines()), Total: toContractMoney(o.Total()),
		}
	case domain.RefundRequested:
		typ, payload = contracts.TypeOrderRefundRequestedV1, contracts.OrderRefundRequestedV1{
			OrderID: id, UserID: user, PaymentID: e.PaymentID, Amount: toContractMoney(e.Amount),
			Reason: contracts.CancellationReason(e.Reason),
		}
	case domain.Shipped:
		typ, payload = contracts.TypeOrderShippedV1, contracts.OrderShippedV1{
			OrderID: id, UserID: user, ShipmentID: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber,
		}
	case domain.Delivered:
		typ, payload = contracts.TypeOrderDeliveredV1, contracts.OrderDeliveredV1{OrderID: id, UserID: user, ShipmentID: e.ShipmentID}
	case domain.Completed:
		typ, payload = contracts.TypeOrderCompletedV1, contracts.OrderCompletedV1{OrderID: id, UserID: user, Total: toContractMoney(o.Total())}
	default:
		return outbox.Event{}, fmt.Errorf("order %s: no contract for event %T", id, e)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Event{}, fmt.Errorf("encode %s of order %s: %w", typ, id, err)
	}
	if err := contracts.Validate(typ, body); err != nil {
		return outbox.Event{}, fmt.Errorf("encode %s of order %s: %w", typ, id, err)
	}
	return outbox.Event{Type: typ, AggregateID: id, Payload: json.RawMessage(body)}, nil
}

func toContractMoney(m domain.Money) contracts.Money {
	return contracts.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

func toContractLines(lines []domain.Line) []contracts.Line {
	out := make([]contracts.Line, 0, len(lines))
	for _, l := range lines {
		out = append(out, contracts.Line{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPrice: toContractMoney(l.UnitPrice)})
	}
	return out
}

func toPricedLines(lines []domain.Line) []contracts.PricedLine {
	out := make([]contracts.PricedLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, contracts.PricedLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: toContractMoney(l.UnitPrice), LineTotal: toContractMoney(l.Total())})
	}
	return out
}

func toContractAddress(a domain.Address) contracts.Address {
	return contracts.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
}
