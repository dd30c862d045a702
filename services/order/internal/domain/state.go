package domain

import "errors"

// State is a saga state. It is finer than the public Status: the saga needs
// to know what it waits for, the customer only where the order stands.
type State string

// Saga states.
const (
	// StateAwaitingStock: placed; inventory is reserving the lines.
	StateAwaitingStock State = "awaiting_stock"
	// StateAwaitingPayment: stock reserved; payment was asked to authorize
	// and the payment timeout is scheduled.
	StateAwaitingPayment State = "awaiting_payment"
	// StateConfirmed: payment authorized; inventory commits the stock and
	// shipping prepares the shipment.
	StateConfirmed State = "confirmed"
	// StateCancellationRequested: the customer cancelled a confirmed order;
	// shipping decides whether the shipment can still be stopped (it answers
	// shipment cancelled) or has left (it answers shipment dispatched).
	StateCancellationRequested State = "cancellation_requested"
	// StateShipped: the carrier has the shipment.
	StateShipped State = "shipped"
	// StateDelivered is final: the order completed.
	StateDelivered State = "delivered"
	// StateCancelled is final; Reason says why.
	StateCancelled State = "cancelled"
)

func (s State) valid() bool {
	switch s {
	case StateAwaitingStock, StateAwaitingPayment, StateConfirmed, StateCancellationRequested,
		StateShipped, StateDelivered, StateCancelled:
		return true
	}
	return false
}

// Status is an order's public status.
type Status string

// Public statuses.
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
)

// Status maps the saga state to the public status. A cancellation that
// shipping has not yet answered is still confirmed: it may be refused.
func (s State) Status() Status {
	switch s {
	case StateAwaitingStock, StateAwaitingPayment:
		return StatusPending
	case StateConfirmed, StateCancellationRequested:
		return StatusConfirmed
	case StateShipped:
		return StatusShipped
	case StateDelivered:
		return StatusDelivered
	default:
		return StatusCancelled
	}
}

// Reason says why an order was cancelled.
type Reason string

// Cancellation reasons (public).
const (
	ReasonOutOfStock      Reason = "out_of_stock"
	ReasonPaymentDeclined Reason = "payment_declined"
	ReasonPaymentTimeout  Reason = "payment_timeout"
	ReasonUndeliverable   Reason = "undeliverable"
	ReasonCustomerRequest Reason = "customer_request"
)

func (r Reason) valid() bool {
	switch r {
	case ReasonOutOfStock, ReasonPaymentDeclined, ReasonPaymentTimeout, ReasonUndeliverable, ReasonCustomerRequest:
		return true
	}
	return false
}

// Compensation is something a cancelled order had taken and its owner now
// gives back.
type Compensation string

// Compensations.
const (
	// CompensateReleaseStock: inventory releases the reservation (if it made
	// one: it reads the placement before the cancellation).
	CompensateReleaseStock Compensation = "release_stock"
	// CompensateReturnStock: inventory puts committed units back on hand.
	CompensateReturnStock Compensation = "return_stock"
	// CompensateRefundPayment: payment refunds; the order also publishes an
	// explicit refund request.
	CompensateRefundPayment Compensation = "refund_payment"
)

// TimelineType names a step in an order's timeline.
type TimelineType string

// Timeline entry types.
const (
	TimelinePlaced                 TimelineType = "placed"
	TimelineStockReserved          TimelineType = "stock_reserved"
	TimelineStockReservationFailed TimelineType = "stock_reservation_failed"
	TimelinePaymentRequested       TimelineType = "payment_requested"
	TimelinePaymentAuthorized      TimelineType = "payment_authorized"
	TimelinePaymentDeclined        TimelineType = "payment_declined"
	TimelinePaymentTimedOut        TimelineType = "payment_timed_out"
	TimelineConfirmed              TimelineType = "confirmed"
	TimelineShipmentCreated        TimelineType = "shipment_created"
	TimelineCancellationRequested  TimelineType = "cancellation_requested"
	TimelineCancellationRefused    TimelineType = "cancellation_refused"
	TimelineShipmentCancelled      TimelineType = "shipment_cancelled"
	TimelineShipped                TimelineType = "shipped"
	TimelineShipmentFailed         TimelineType = "shipment_failed"
	TimelineDelivered              TimelineType = "delivered"
	TimelineCompleted              TimelineType = "completed"
	TimelineCancelled              TimelineType = "cancelled"
	TimelineRefundRequested        TimelineType = "refund_requested"
	TimelineRefunded               TimelineType = "refunded"
	TimelineStockReleased          TimelineType = "stock_released"
	TimelineStockReturned          TimelineType = "stock_returned"
)

// Errors the domain reports. The transport maps them to HTTP problems;
// a message handler treats ErrInvalidOrder and ErrNotFound as permanent.
var (
	ErrInvalidID      = errors.New("invalid id")
	ErrInvalidOrder   = errors.New("invalid order")
	ErrNotFound       = errors.New("order not found")
	ErrAlreadyShipped = errors.New("order already dispatched")
)
