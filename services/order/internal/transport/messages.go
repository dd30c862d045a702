// Package transport connects the order service to the outside: the saga's
// messages (contracts in, domain replies out) and the public HTTP API
// (go-kit endpoints, problem+json errors). It decodes, validates and maps;
// it must not decide anything about orders, and it never touches the
// database except through the application it is given.
package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Saga is what the message handler needs from the application.
type Saga interface {
	Place(ctx context.Context, p domain.Placement) error
	Apply(ctx context.Context, id domain.OrderID, r domain.Reply) error
}

// decoder turns a payload, upcast to its type's latest version (and
// validated on the way), into the order it concerns and a placement or a
// reply.
type decoder func(payload []byte) (domain.OrderID, any, error)

// decoders lists every consumed event type with its decoder.
func decoders() map[string]decoder {
	return map[string]decoder{
		contracts.TypeCartCheckedOutV1: decodeWith(contracts.TypeCartCheckedOutV1, func(e contracts.CartCheckedOutV1) (string, any) {
			return e.OrderID, placement(e)
		}),
		contracts.TypeStockReservedV1: decodeWith(contracts.TypeStockReservedV1, func(e contracts.StockReservedV1) (string, any) {
			return e.OrderID, domain.StockReserved{}
		}),
		contracts.TypeStockReservationFailedV1: decodeWith(contracts.TypeStockReservationFailedV1, func(e contracts.StockReservationFailedV1) (string, any) {
			return e.OrderID, domain.StockReservationFailed{}
		}),
		contracts.TypeStockReleasedV1: decodeWith(contracts.TypeStockReleasedV1, func(e contracts.StockReleasedV1) (string, any) {
			return e.OrderID, domain.StockReleased{}
		}),
		contracts.TypeStockReturnedV1: decodeWith(contracts.TypeStockReturnedV1, func(e contracts.StockReturnedV1) (string, any) {
			return e.OrderID, domain.StockReturned{}
		}),
		contracts.TypePaymentAuthorizedV1: decodeWith(contracts.TypePaymentAuthorizedV1, func(e contracts.PaymentAuthorizedV1) (string, any) {
			return e.OrderID, domain.PaymentAuthorized{PaymentID: e.PaymentID, Amount: domain.Money{AmountMinor: e.Amount.AmountMinor, Currency: e.Amount.Currency}}
		}),
		contracts.TypePaymentDeclinedV1: decodeWith(contracts.TypePaymentDeclinedV1, func(e contracts.PaymentDeclinedV1) (string, any) {
			return e.OrderID, domain.PaymentDeclined{PaymentID: e.PaymentID}
		}),
		contracts.TypePaymentRefundedV1: decodeWith(contracts.TypePaymentRefundedV1, func(e contracts.PaymentRefundedV1) (string, any) {
			return e.OrderID, domain.PaymentRefunded{PaymentID: e.PaymentID}
		}),
		contracts.TypeOrderPaymentTimedOutV1: decodeWith(contracts.TypeOrderPaymentTimedOutV1, func(e contracts.OrderPaymentTimedOutV1) (string, any) {
			return e.OrderID, domain.PaymentTimedOut{ExpiresAt: e.ExpiresAt}
		}),
		contracts.TypeShipmentCreatedV1: decodeWith(contracts.TypeShipmentCreatedV1, func(e contracts.ShipmentCreatedV1) (string, any) {
			return e.OrderID, domain.ShipmentCreated{ShipmentID: e.ShipmentID}
		}),
		contracts.TypeShipmentDispatchedV1: decodeWith(contracts.TypeShipmentDispatchedV1, func(e contracts.ShipmentDispatchedV1) (string, any) {
			return e.OrderID, domain.ShipmentDispatched{ShipmentID: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber}
		}),
		contracts.TypeShipmentDeliveredV1: decodeWith(contracts.TypeShipmentDeliveredV1, func(e contracts.ShipmentDeliveredV1) (string, any) {
			return e.OrderID, domain.ShipmentDelivered{ShipmentID: e.ShipmentID}
		}),
		contracts.TypeShipmentFailedV1: decodeWith(contracts.TypeShipmentFailedV1, func(e contracts.ShipmentFailedV1) (string, any) {
			return e.OrderID, domain.ShipmentFailed{ShipmentID: e.ShipmentID}
		}),
		contracts.TypeShipmentCancelledV1: decodeWith(contracts.TypeShipmentCancelledV1, func(e contracts.ShipmentCancelledV1) (string, any) {
			return e.OrderID, domain.ShipmentCancelled{ShipmentID: e.ShipmentID}
		}),
	}
}

// HandledTypes are the event types the order service consumes, sorted.
func HandledTypes() []string { return slices.Sorted(maps.Keys(decoders())) }

// decodeWith decodes eventType's payloads (already upcast to the latest
// version and validated) into its contract struct E and maps them. It
// panics, at start, when E is not eventType's contract (servicekit.DecodeAs).
func decodeWith[E any](eventType string, mapping func(e E) (string, any)) decoder {
	decode := servicekit.DecodeAs[E](eventType)
	return func(payload []byte) (domain.OrderID, any, error) {
		e, err := decode(payload)
		if err != nil {
			return "", nil, err
		}
		rawID, v := mapping(e)
		id, err := domain.ParseOrderID(rawID)
		if err != nil {
			return "", nil, err
		}
		return id, v, nil
	}
}

func placement(e contracts.CartCheckedOutV1) domain.Placement {
	p := domain.Placement{
		Total:        domain.Money{AmountMinor: e.Total.AmountMinor, Currency: e.Total.Currency},
		PaymentToken: e.PaymentToken,
		ShippingAddress: domain.Address{
			Name: e.ShippingAddress.Name, Line1: e.ShippingAddress.Line1, Line2: e.ShippingAddress.Line2,
			City: e.ShippingAddress.City, PostalCode: e.ShippingAddress.PostalCode, Country: e.ShippingAddress.Country,
		},
	}
	// Ids are made canonical here; Place refuses any that are not UUIDs.
	p.ID = domain.OrderID(canonical(e.OrderID))
	p.UserID = domain.UserID(canonical(e.UserID))
	for _, l := range e.Lines {
		p.Lines = append(p.Lines, domain.Line{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: domain.Money{AmountMinor: l.UnitPrice.AmountMinor, Currency: l.UnitPrice.Currency}})
	}
	return p
}

// canonical is id in its canonical form, or id unchanged if it is no UUID.
func canonical(id string) string {
	if c, err := domain.ParseOrderID(id); err == nil {
		return string(c)
	}
	return id
}

// NewMessageHandler returns the handler of every type in HandledTypes.
// sagaIn binds the application to the consumer's transaction, the one that
// holds the message's inbox claim, so the saga advances only with it.
//
// Failures are classified for the consumer: a payload that breaks its
// contract, a checkout that cannot become an order, or a reply for an order
// that does not exist cannot be fixed by retrying and is dead-lettered with
// the reason; anything else (the database) is retried.
//
// Payloads are validated once, by contracts.Upcast, not again when decoded;
// instead every decoder's contract struct is checked against the type it is
// listed under, and a mismatch (a wiring mistake) panics at start. Once the
// consumer's transaction has committed a saga step, changes hears of the
// order.
func NewMessageHandler(sagaIn func(tx pgx.Tx) Saga, changes *Changes) outbox.Handler {
	decoders := decoders()
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		eventType, payload, err := contracts.Upcast(msg.Type, msg.Payload)
		if err != nil {
			return outbox.Permanent(fmt.Errorf("message %s: %w", msg.ID, err))
		}
		decode, ok := decoders[eventType]
		if !ok {
			return outbox.Permanent(fmt.Errorf("message %s: the order service does not handle %s", msg.ID, eventType))
		}
		id, v, err := decode(payload)
		if err != nil {
			return outbox.Permanent(fmt.Errorf("message %s (%s): %w", msg.ID, eventType, err))
		}
		saga := sagaIn(tx)
		switch v := v.(type) {
		case domain.Placement:
			err = saga.Place(ctx, v)
		case domain.Reply:
			err = saga.Apply(ctx, id, v)
		}
		if errors.Is(err, domain.ErrInvalidOrder) || errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrInvalidID) {
			return outbox.Permanent(fmt.Errorf("message %s (%s): %w", msg.ID, eventType, err))
		}
		if err != nil {
			return fmt.Errorf("message %s (%s): %w", msg.ID, eventType, err)
		}
		if !outbox.AfterCommit(ctx, func() { changes.Changed(id) }) {
			changes.Changed(id) // not a consumer's transaction: nothing later to wait for
		}
		return nil
	}
}
