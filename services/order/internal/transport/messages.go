// Package transport connects the order service to the outside: the saga's
// messages (contracts in, domain replies out) and the public HTTP API
// (go-kit endpoints, problem+json errors). It decodes, validates and maps;
// it must not decide anything about orders, and it never touches the
// database except through the application it is given.
package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
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
// reply. name is the type whose contract struct it decodes into.
type decoder struct {
	name   string
	decode func(payload []byte) (domain.OrderID, any, error)
}

// decoders lists every consumed event type with its decoder.
func decoders() map[string]decoder {
	return map[string]decoder{
		contracts.TypeCartCheckedOutV1: decodeWith(func(e contracts.CartCheckedOutV1) (string, any) {
			return e.OrderID, placement(e)
		}),
		contracts.TypeStockReservedV1: decodeWith(func(e contracts.StockReservedV1) (string, any) {
			return e.OrderID, domain.StockReserved{}
		}),
		contracts.TypeStockReservationFailedV1: decodeWith(func(e contracts.StockReservationFailedV1) (string, any) {
			return e.OrderID, domain.StockReservationFailed{}
		}),
		contracts.TypeStockReleasedV1: decodeWith(func(e contracts.StockReleasedV1) (string, any) {
			return e.OrderID, domain.StockReleased{}
		}),
		contracts.TypeStockReturnedV1: decodeWith(func(e contracts.StockReturnedV1) (string, any) {
			return e.OrderID, domain.StockReturned{}
		}),
		contracts.TypePaymentAuthorizedV1: decodeWith(func(e contracts.PaymentAuthorizedV1) (string, any) {
			return e.OrderID, domain.PaymentAuthorized{PaymentID: e.PaymentID, Amount: domain.Money{AmountMinor: e.Amount.AmountMinor, Currency: e.Amount.Currency}}
		}),
		contracts.TypePaymentDeclinedV1: decodeWith(func(e contracts.PaymentDeclinedV1) (string, any) {
			return e.OrderID, domain.PaymentDeclined{PaymentID: e.PaymentID}
		}),
		contracts.TypePaymentRefundedV1: decodeWith(func(e contracts.PaymentRefundedV1) (string, any) {
			return e.OrderID, domain.PaymentRefunded{PaymentID: e.PaymentID}
		}),
		contracts.TypeOrderPaymentTimedOutV1: decodeWith(func(e contracts.OrderPaymentTimedOutV1) (string, any) {
			return e.OrderID, domain.PaymentTimedOut{ExpiresAt: e.ExpiresAt}
		}),
		contracts.TypeShipmentCreatedV1: decodeWith(func(e contracts.ShipmentCreatedV1) (string, any) {
			return e.OrderID, domain.ShipmentCreated{ShipmentID: e.ShipmentID}
		}),
		contracts.TypeShipmentDispatchedV1: decodeWith(func(e contracts.ShipmentDispatchedV1) (string, any) {
			return e.OrderID, domain.ShipmentDispatched{ShipmentID: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber}
		}),
		contracts.TypeShipmentDeliveredV1: decodeWith(func(e contracts.ShipmentDeliveredV1) (string, any) {
			return e.OrderID, domain.ShipmentDelivered{ShipmentID: e.ShipmentID}
		}),
		contracts.TypeShipmentFailedV1: decodeWith(func(e contracts.ShipmentFailedV1) (string, any) {
			return e.OrderID, domain.ShipmentFailed{ShipmentID: e.ShipmentID}
		}),
		contracts.TypeShipmentCancelledV1: decodeWith(func(e contracts.ShipmentCancelledV1) (string, any) {
			return e.OrderID, domain.ShipmentCancelled{ShipmentID: e.ShipmentID}
		}),
	}
}

// HandledTypes are the event types the order service consumes, sorted.
func HandledTypes() []string { return slices.Sorted(maps.Keys(decoders())) }

// decodeWith decodes a payload (already upcast to the latest version and
// validated) into the contract's struct and maps it.
func decodeWith[E any](mapping func(e E) (string, any)) decoder {
	return decoder{name: contractName[E](), decode: func(payload []byte) (domain.OrderID, any, error) {
		var e E
		if err := json.Unmarshal(payload, &e); err != nil {
			return "", nil, fmt.Errorf("decode payload: %w", err)
		}
		rawID, v := mapping(e)
		id, err := domain.ParseOrderID(rawID)
		if err != nil {
			return "", nil, err
		}
		return id, v, nil
	}}
}

// contractName finds the registry name of a contract struct, so a decoder
// cannot be paired with another type's schema.
func contractName[E any]() string {
	for _, t := range contracts.Registry() {
		if _, ok := t.New().(*E); ok {
			return t.Name
		}
	}
	return fmt.Sprintf("unregistered %T", *new(E))
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
// listed under here, and a mismatch (a wiring mistake) panics at start.
func NewMessageHandler(sagaIn func(tx pgx.Tx) Saga) outbox.Handler {
	decoders := decoders()
	for t, d := range decoders {
		if d.name != t {
			panic(fmt.Sprintf("order: the decoder listed for %s decodes %s", t, d.name))
		}
	}
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		eventType, payload, err := contracts.Upcast(msg.Type, msg.Payload)
		if err != nil {
			return outbox.Permanent(fmt.Errorf("message %s: %w", msg.ID, err))
		}
		decode, ok := decoders[eventType]
		if !ok {
			return outbox.Permanent(fmt.Errorf("message %s: the order service does not handle %s", msg.ID, eventType))
		}
		id, v, err := decode.decode(payload)
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
		return nil
	}
}
