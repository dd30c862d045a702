package domain

import (
	"errors"
	"fmt"
	"time"
)

// Reply is something the saga reacts to: another service's answer, or the
// saga's own payment timeout.
type Reply interface{ reply() }

// Replies. Ids are the other services' (payment, shipment); the order they
// concern is the one the reply is applied to.
type (
	// StockReserved: inventory reserved every line.
	StockReserved struct{}
	// StockReservationFailed: inventory could not reserve every line and
	// reserved nothing.
	StockReservationFailed struct{}
	// PaymentAuthorized: the provider authorized (and captured) Amount.
	PaymentAuthorized struct {
		PaymentID string
		Amount    Money
	}
	// PaymentDeclined: the provider declined.
	PaymentDeclined struct{ PaymentID string }
	// PaymentTimedOut: the payment deadline passed (the saga's own delayed
	// message).
	PaymentTimedOut struct{ ExpiresAt time.Time }
	// ShipmentCreated: shipping prepared the shipment.
	ShipmentCreated struct{ ShipmentID string }
	// ShipmentDispatched: the carrier picked the shipment up.
	ShipmentDispatched struct{ ShipmentID, Carrier, TrackingNumber string }
	// ShipmentDelivered: the carrier delivered.
	ShipmentDelivered struct{ ShipmentID string }
	// ShipmentFailed: the carrier could not deliver.
	ShipmentFailed struct{ ShipmentID string }
	// ShipmentCancelled: shipping stopped a shipment that had not left,
	// because the order asked it to.
	ShipmentCancelled struct{ ShipmentID string }
	// PaymentRefunded: payment refunded the order's payment.
	PaymentRefunded struct{ PaymentID string }
	// StockReleased: inventory released the order's reservation.
	StockReleased struct{}
	// StockReturned: inventory put the order's committed units back.
	StockReturned struct{}
)

func (StockReserved) reply()          {}
func (StockReservationFailed) reply() {}
func (PaymentAuthorized) reply()      {}
func (PaymentDeclined) reply()        {}
func (PaymentTimedOut) reply()        {}
func (ShipmentCreated) reply()        {}
func (ShipmentDispatched) reply()     {}
func (ShipmentDelivered) reply()      {}
func (ShipmentFailed) reply()         {}
func (ShipmentCancelled) reply()      {}
func (PaymentRefunded) reply()        {}
func (StockReleased) reply()          {}
func (StockReturned) reply()          {}

// Event is something the order tells the other services. The adapters turn
// each into a message; the order they concern is the one that produced it.
type Event interface{ event() }

// Events.
type (
	// Placed: the order exists and waits for stock.
	Placed struct{}
	// PaymentRequested: payment is asked to authorize Amount by ExpiresAt.
	PaymentRequested struct {
		Amount       Money
		PaymentToken string
		ExpiresAt    time.Time
	}
	// PaymentTimeoutDue is the saga's own delayed message: it must come back
	// to the order as PaymentTimedOut at ExpiresAt, not before.
	PaymentTimeoutDue struct{ ExpiresAt time.Time }
	// Confirmed: payment authorized; stock is to be committed and shipped.
	Confirmed struct{ PaymentID string }
	// CancellationRequested: the customer cancelled a confirmed order;
	// shipping must answer with ShipmentCancelled or ShipmentDispatched.
	CancellationRequested struct{ Reason Reason }
	// Cancelled: the order is cancelled (final); Compensations is what the
	// owning services give back.
	Cancelled struct {
		Reason        Reason
		Compensations []Compensation
	}
	// RefundRequested: payment is asked to refund PaymentID. The order asks
	// at most once per payment.
	RefundRequested struct {
		PaymentID string
		Amount    Money
		Reason    Reason
	}
	// Shipped: the order's shipment left.
	Shipped struct{ ShipmentID, Carrier, TrackingNumber string }
	// Delivered: the order's shipment arrived.
	Delivered struct{ ShipmentID string }
	// Completed: the order ended successfully and will not change again.
	Completed struct{}
)

func (Placed) event()                {}
func (PaymentRequested) event()      {}
func (PaymentTimeoutDue) event()     {}
func (Confirmed) event()             {}
func (CancellationRequested) event() {}
func (Cancelled) event()             {}
func (RefundRequested) event()       {}
func (Shipped) event()               {}
func (Delivered) event()             {}
func (Completed) event()             {}

// Saga is the order saga's state machine. For an order and a reply it
// decides the transition and the events to publish. A reply that does not
// apply to the order's state (a duplicate, a late or reordered answer)
// changes nothing, so any sequence of replies, repeated in any way, moves an
// order at most once per step and never compensates twice.
//
//	state                   reply                      next state              events
//	awaiting_stock          stock reserved             awaiting_payment        payment requested, timeout scheduled
//	awaiting_stock          stock reservation failed   cancelled out_of_stock  cancelled []
//	awaiting_payment        payment authorized         confirmed               confirmed
//	awaiting_payment        payment declined           cancelled payment_declined  cancelled [release_stock]
//	awaiting_payment        payment timed out          cancelled payment_timeout   cancelled [release_stock]
//	confirmed, canc._requested shipment created        unchanged               - (records the shipment id)
//	confirmed               shipment dispatched        shipped                 shipped
//	confirmed, shipped      shipment delivered         delivered               delivered, completed
//	confirmed, shipped      shipment failed            cancelled undeliverable cancelled [refund_payment return_stock], refund requested
//	cancellation_requested  shipment cancelled         cancelled customer_request  cancelled [refund_payment return_stock], refund requested
//	cancellation_requested  shipment dispatched        shipped (refused)       shipped
//	cancellation_requested  shipment delivered/failed  as from confirmed
//	cancelled               payment authorized         cancelled               refund requested (first authorization only)
//	cancelled               payment refunded, stock released, stock returned: a timeline entry, once each
//	any other pair                                     unchanged               none
//
// The customer's cancellation (Cancel): awaiting_stock and awaiting_payment
// are cancelled at once (customer_request, [release_stock]); confirmed
// becomes cancellation_requested and asks shipping, which alone knows
// whether the parcel can still be stopped; cancellation_requested and
// cancelled are left as they are; shipped and delivered refuse it.
type Saga struct {
	paymentTimeout time.Duration
}

// NewSaga returns the state machine; paymentTimeout is how long an order
// waits for a payment answer.
func NewSaga(paymentTimeout time.Duration) (Saga, error) {
	if paymentTimeout <= 0 {
		return Saga{}, fmt.Errorf("payment timeout %s must be positive", paymentTimeout)
	}
	return Saga{paymentTimeout: paymentTimeout}, nil
}

// Place creates the order of a checkout. It waits for stock.
func (s Saga) Place(p Placement, at time.Time) (*Order, []Event, error) {
	if err := p.validate(); err != nil {
		return nil, nil, err
	}
	o := &Order{
		id: p.ID, userID: p.UserID, lines: p.Lines, total: p.Total, address: p.ShippingAddress,
		paymentToken: p.PaymentToken, state: StateAwaitingStock, placedAt: at, updatedAt: at,
	}
	o.lines = o.Lines() // own the slice
	o.record(at, TimelinePlaced)
	return o, []Event{Placed{}}, nil
}

// Apply moves o as reply r demands and returns the events to publish.
// A reply that does not apply leaves o unchanged (same Revision) and returns
// no events.
func (s Saga) Apply(o *Order, r Reply, at time.Time) []Event {
	switch r := r.(type) {
	case StockReserved:
		if o.state != StateAwaitingStock {
			return nil
		}
		deadline := at.Add(s.paymentTimeout)
		token := o.paymentToken
		o.state, o.paymentDeadline, o.paymentToken = StateAwaitingPayment, deadline, ""
		o.record(at, TimelineStockReserved, TimelinePaymentRequested)
		return []Event{
			PaymentRequested{Amount: o.total, PaymentToken: token, ExpiresAt: deadline},
			PaymentTimeoutDue{ExpiresAt: deadline},
		}

	case StockReservationFailed:
		if o.state != StateAwaitingStock {
			return nil
		}
		return o.cancel(at, ReasonOutOfStock, nil, TimelineStockReservationFailed)

	case PaymentAuthorized:
		switch {
		case o.state == StateAwaitingPayment:
			o.payment = Payment{ID: r.PaymentID, Amount: r.Amount}
			o.state = StateConfirmed
			o.record(at, TimelinePaymentAuthorized, TimelineConfirmed)
			return []Event{Confirmed{PaymentID: r.PaymentID}}
		case o.state == StateCancelled && o.payment.ID == "":
			// The answer came after the order gave up waiting (timeout,
			// customer cancel): the money goes back, once.
			o.payment = Payment{ID: r.PaymentID, Amount: r.Amount}
			o.refundRequested = true
			o.record(at, TimelinePaymentAuthorized, TimelineRefundRequested)
			return []Event{RefundRequested{PaymentID: r.PaymentID, Amount: r.Amount, Reason: o.reason}}
		}
		// One payment per order: a repeated authorization is the same one.
		return nil

	case PaymentDeclined:
		if o.state != StateAwaitingPayment {
			return nil
		}
		return o.cancel(at, ReasonPaymentDeclined, []Compensation{CompensateReleaseStock}, TimelinePaymentDeclined)

	case PaymentTimedOut:
		if o.state != StateAwaitingPayment {
			return nil
		}
		return o.cancel(at, ReasonPaymentTimeout, []Compensation{CompensateReleaseStock}, TimelinePaymentTimedOut)

	case ShipmentCreated:
		if (o.state != StateConfirmed && o.state != StateCancellationRequested) || o.shipmentID != "" {
			return nil
		}
		o.shipmentID = r.ShipmentID
		o.record(at, TimelineShipmentCreated)
		return nil

	case ShipmentDispatched:
		if o.state != StateConfirmed && o.state != StateCancellationRequested {
			return nil
		}
		types := []TimelineType{TimelineShipped}
		if o.state == StateCancellationRequested {
			// Shipping decides the race: the parcel left before it could
			// stop it, so the cancellation is refused.
			types = []TimelineType{TimelineCancellationRefused, TimelineShipped}
		}
		if o.shipmentID == "" {
			o.shipmentID = r.ShipmentID
		}
		o.state = StateShipped
		o.record(at, types...)
		return []Event{Shipped{ShipmentID: o.shipmentID, Carrier: r.Carrier, TrackingNumber: r.TrackingNumber}}

	case ShipmentDelivered:
		var types []TimelineType
		switch o.state {
		case StateShipped:
		case StateConfirmed:
			// The dispatch report is missing or late; delivery implies it.
		case StateCancellationRequested:
			types = append(types, TimelineCancellationRefused)
		default:
			return nil
		}
		if o.shipmentID == "" {
			o.shipmentID = r.ShipmentID
		}
		o.state = StateDelivered
		o.record(at, append(types, TimelineDelivered, TimelineCompleted)...)
		return []Event{Delivered{ShipmentID: o.shipmentID}, Completed{}}

	case ShipmentFailed:
		switch o.state {
		case StateConfirmed, StateCancellationRequested, StateShipped:
			return o.cancel(at, ReasonUndeliverable, []Compensation{CompensateRefundPayment, CompensateReturnStock}, TimelineShipmentFailed)
		}
		return nil

	case ShipmentCancelled:
		if o.state != StateCancellationRequested {
			// Shipping only cancels a shipment on the order's request.
			return nil
		}
		return o.cancel(at, ReasonCustomerRequest, []Compensation{CompensateRefundPayment, CompensateReturnStock}, TimelineShipmentCancelled)

	case PaymentRefunded:
		if o.state != StateCancelled || !o.refundRequested || o.progress.Refunded || r.PaymentID != o.payment.ID {
			return nil
		}
		o.progress.Refunded = true
		o.record(at, TimelineRefunded)
		return nil

	case StockReleased:
		if o.state != StateCancelled || o.progress.StockReleased {
			return nil
		}
		o.progress.StockReleased = true
		o.record(at, TimelineStockReleased)
		return nil

	case StockReturned:
		if o.state != StateCancelled || o.progress.StockReturned {
			return nil
		}
		o.progress.StockReturned = true
		o.record(at, TimelineStockReturned)
		return nil
	}
	return nil
}

// Cancel is the customer's cancellation. Before payment it cancels at once
// and releases the reservation; a confirmed order asks shipping first, since
// only shipping knows whether the parcel can still be stopped. Cancelling an
// order already cancelled or waiting for shipping's answer changes nothing;
// after dispatch it is refused with ErrAlreadyShipped.
func (s Saga) Cancel(o *Order, at time.Time) ([]Event, error) {
	switch o.state {
	case StateAwaitingStock, StateAwaitingPayment:
		// Inventory reads the placement before the cancellation, so it
		// knows whether it holds a reservation to release.
		return o.cancel(at, ReasonCustomerRequest, []Compensation{CompensateReleaseStock}, TimelineCancellationRequested), nil
	case StateConfirmed:
		o.state = StateCancellationRequested
		o.record(at, TimelineCancellationRequested)
		return []Event{CancellationRequested{Reason: ReasonCustomerRequest}}, nil
	case StateCancellationRequested, StateCancelled:
		return nil, nil
	case StateShipped, StateDelivered:
		return nil, fmt.Errorf("cancel order %s (%s): %w", o.id, o.state, ErrAlreadyShipped)
	}
	return nil, errors.New("cancel order " + string(o.id) + ": unknown state " + string(o.state))
}

// cancel ends the order with reason; cause are the timeline entries of what
// led to it. A refund is requested with the cancellation when the
// compensations include one and the order holds a payment not yet refunded.
func (o *Order) cancel(at time.Time, reason Reason, comps []Compensation, cause ...TimelineType) []Event {
	o.state, o.reason = StateCancelled, reason
	types := append(cause, TimelineCancelled)
	events := []Event{Cancelled{Reason: reason, Compensations: comps}}
	for _, c := range comps {
		if c == CompensateRefundPayment && o.payment.ID != "" && !o.refundRequested {
			o.refundRequested = true
			types = append(types, TimelineRefundRequested)
			events = append(events, RefundRequested{PaymentID: o.payment.ID, Amount: o.payment.Amount, Reason: reason})
		}
	}
	o.record(at, types...)
	return events
}
