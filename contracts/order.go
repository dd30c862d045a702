package contracts

import "time"

// Event types published by the order service, which orchestrates the order
// saga.
const (
	TypeOrderPlacedV1           = "order.placed.v1"
	TypeOrderPlacedV2           = "order.placed.v2"
	TypeOrderPaymentRequestedV1 = "order.payment_requested.v1"
	TypeOrderPaymentTimedOutV1  = "order.payment_timed_out.v1"
	TypeOrderConfirmedV1        = "order.confirmed.v1"
	TypeOrderCancelledV1        = "order.cancelled.v1"
	TypeOrderRefundRequestedV1  = "order.refund_requested.v1"
	TypeOrderShippedV1          = "order.shipped.v1"
	TypeOrderDeliveredV1        = "order.delivered.v1"
	TypeOrderCompletedV1        = "order.completed.v1"

	TypeOrderCancellationRequestedV1 = "order.cancellation_requested.v1"
)

// OrderPlacedV1 is order.placed.v1: an order was placed from a checkout and
// is pending. Inventory reserves its lines.
type OrderPlacedV1 struct {
	OrderID         string  `json:"order_id"`
	UserID          string  `json:"user_id"`
	Lines           []Line  `json:"lines"`
	Total           Money   `json:"total"`
	ShippingAddress Address `json:"shipping_address"`
}

// OrderPlacedV2 is order.placed.v2: an order was placed from a checkout and
// is pending. Inventory reserves its lines.
//
// It restructures v1's money, which v1 readers cannot follow: the order
// names its one Currency, every line carries its LineTotal, and the
// order's amounts are broken down in Totals (v1's total is Totals.Total).
// Every amount of the order is in Currency. A v1 event upcasts to v2 with
// the line totals computed and a zero shipping charge.
type OrderPlacedV2 struct {
	OrderID         string       `json:"order_id"`
	UserID          string       `json:"user_id"`
	Currency        string       `json:"currency"`
	Lines           []PricedLine `json:"lines"`
	Totals          OrderTotals  `json:"totals"`
	ShippingAddress Address      `json:"shipping_address"`
}

// PricedLine is an order line with its total: UnitPrice times Quantity.
type PricedLine struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
	LineTotal Money  `json:"line_total"`
}

// OrderTotals break an order's amount down: Subtotal is the sum of the line
// totals and Total is Subtotal plus Shipping.
type OrderTotals struct {
	Subtotal Money `json:"subtotal"`
	Shipping Money `json:"shipping"`
	Total    Money `json:"total"`
}

// OrderPaymentRequestedV1 is order.payment_requested.v1: the order's stock
// is reserved and payment is asked to authorize Amount. The order stops
// waiting at ExpiresAt.
type OrderPaymentRequestedV1 struct {
	OrderID      string    `json:"order_id"`
	UserID       string    `json:"user_id"`
	Amount       Money     `json:"amount"`
	PaymentToken string    `json:"payment_token"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// OrderPaymentTimedOutV1 is order.payment_timed_out.v1, the saga's own
// delayed message: the payment deadline passed. It is a no-op for an order
// whose payment answer already arrived.
type OrderPaymentTimedOutV1 struct {
	OrderID   string    `json:"order_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// OrderConfirmedV1 is order.confirmed.v1: stock is reserved and payment
// authorized. Inventory commits the stock, invoice issues the invoice and
// shipping creates the shipment.
type OrderConfirmedV1 struct {
	OrderID         string  `json:"order_id"`
	UserID          string  `json:"user_id"`
	PaymentID       string  `json:"payment_id"`
	Lines           []Line  `json:"lines"`
	Total           Money   `json:"total"`
	ShippingAddress Address `json:"shipping_address"`
}

// Compensation is a step that undoes part of a cancelled order.
type Compensation string

// Compensations, each carried out by the service that owns what is undone.
// A refund is also requested explicitly with OrderRefundRequestedV1, and
// invoice issues the credit note when the refund is done.
const (
	CompensateReleaseStock   Compensation = "release_stock"   // inventory: reserved, not yet committed
	CompensateReturnStock    Compensation = "return_stock"    // inventory: committed at confirmation
	CompensateRefundPayment  Compensation = "refund_payment"  // payment
	CompensateCancelShipment Compensation = "cancel_shipment" // shipping: created, not yet dispatched
)

// OrderCancelledV1 is order.cancelled.v1: the order was cancelled, a final
// state. Compensations lists what the order had taken at that moment (none
// for an order that took nothing); a reply arriving afterwards, such as a
// late authorization, is compensated by its own refund request.
type OrderCancelledV1 struct {
	OrderID       string             `json:"order_id"`
	UserID        string             `json:"user_id"`
	Reason        CancellationReason `json:"reason"`
	Compensations []Compensation     `json:"compensations,omitempty"`
	Lines         []Line             `json:"lines"`
	Total         Money              `json:"total"`
}

// OrderCancellationRequestedV1 is order.cancellation_requested.v1: the
// customer asked to cancel a confirmed order, whose shipment may be leaving
// at this very moment. Shipping decides that race, because it alone
// serialises dispatch: if the shipment has not been dispatched it cancels
// it, never dispatches it afterwards, and publishes
// shipping.shipment_cancelled.v1, upon which the order is cancelled
// (customer_request) with its compensations. If the shipment was already
// dispatched, delivered or failed, shipping publishes nothing new: the order
// follows the shipment event it already sent and refuses the cancellation.
// Shipping reads order.confirmed.v1 of the order before this event (same
// aggregate, commit order), so the shipment always exists when it arrives.
type OrderCancellationRequestedV1 struct {
	OrderID string             `json:"order_id"`
	UserID  string             `json:"user_id"`
	Reason  CancellationReason `json:"reason"`
}

// OrderRefundRequestedV1 is order.refund_requested.v1: payment is asked to
// refund an authorized payment. Payment refunds at most once per payment.
type OrderRefundRequestedV1 struct {
	OrderID   string             `json:"order_id"`
	UserID    string             `json:"user_id"`
	PaymentID string             `json:"payment_id"`
	Amount    Money              `json:"amount"`
	Reason    CancellationReason `json:"reason"`
}

// OrderShippedV1 is order.shipped.v1: the order's shipment left the
// warehouse.
type OrderShippedV1 struct {
	OrderID        string `json:"order_id"`
	UserID         string `json:"user_id"`
	ShipmentID     string `json:"shipment_id"`
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

// OrderDeliveredV1 is order.delivered.v1: the order's shipment was
// delivered.
type OrderDeliveredV1 struct {
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
	ShipmentID string `json:"shipment_id"`
}

// OrderCompletedV1 is order.completed.v1: the order reached its successful
// end and will not change again. Loyalty awards points on Total.
type OrderCompletedV1 struct {
	OrderID string `json:"order_id"`
	UserID  string `json:"user_id"`
	Total   Money  `json:"total"`
}
