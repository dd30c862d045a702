package contracts

// Money is an amount in integer minor units of an ISO 4217 currency:
// {"amount_minor": 1250, "currency": "EUR"} is EUR 12.50. Amounts in events
// are never negative; the direction is in the event's meaning (a refund).
type Money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Address is a postal address. Country is an ISO 3166-1 alpha-2 code.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// Line is one order line: a snapshot of the product taken at checkout and the
// quantity. Later catalogue changes never alter a line already in an order.
type Line struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

// StockLine is a quantity of one product, as inventory and shipping count
// it: the part of a Line that stock compensations need.
type StockLine struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// CancellationReason says why an order was cancelled. The values are the
// public cancellation reasons of the order API.
type CancellationReason string

// Cancellation reasons.
const (
	ReasonOutOfStock      CancellationReason = "out_of_stock"
	ReasonPaymentDeclined CancellationReason = "payment_declined"
	ReasonPaymentTimeout  CancellationReason = "payment_timeout"
	ReasonUndeliverable   CancellationReason = "undeliverable"
	ReasonCustomerRequest CancellationReason = "customer_request"
)
