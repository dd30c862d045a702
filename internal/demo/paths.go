package demo

// Path is one way through the order saga (DESIGN.md §3) that the demo
// plays. Its name is what the report prints.
type Path string

// The paths, in the order the demo deals them out.
const (
	// PathDelivered: payment authorized (tok_ok), shipped, delivered.
	PathDelivered Path = "delivered"
	// PathPaymentDeclined: the provider declines (tok_decline); the
	// reservation is released.
	PathPaymentDeclined Path = "payment_declined"
	// PathPaymentTimeout: the provider never answers (tok_timeout); the
	// order's payment timeout cancels it and releases the reservation.
	PathPaymentTimeout Path = "payment_timeout"
	// PathOutOfStock: more units than the warehouse holds; nothing is
	// reserved, nothing charged.
	PathOutOfStock Path = "out_of_stock"
	// PathUndeliverable: confirmed, then the carrier refuses country ZZ;
	// the payment is refunded, the stock returned, a credit note issued.
	PathUndeliverable Path = "undeliverable"
	// PathCustomerCancel: the customer cancels while the order is pending
	// (awaiting a payment that would never come); the reservation is released.
	PathCustomerCancel Path = "customer_cancel"
)

// Paths returns every path the demo plays.
func Paths() []Path {
	specs := pathSpecs()
	out := make([]Path, len(specs))
	for i, s := range specs {
		out[i] = s.path
	}
	return out
}

// Simulated payment provider tokens and the undeliverable country.
const (
	tokenOK            = "tok_ok"
	tokenDecline       = "tok_decline"
	tokenTimeout       = "tok_timeout"
	countryDeliverable = "GB"
	countryNowhere     = "ZZ"
)

// expectation is what a path must end in, across every service that shows
// the order.
type expectation struct {
	token, country string
	// cancel: the customer cancels once the order is pending with its
	// stock reserved.
	cancel bool
	// status and reason are the order's public terminal state.
	status, reason string
	// settledBy are timeline entries that must be there before the order
	// counts as settled: the end of the happy path, or the compensations a
	// cancellation asked for (each recorded when its owner reports back).
	settledBy []string
	// payment is the payment's status; "" means no payment exists (404).
	payment string
	// refunds is how many refunds the payment holds.
	refunds int
	// shipment is the shipment's status; "" means no shipment (404).
	shipment string
	// invoice: an invoice exists; creditNotes is how many credit notes.
	invoice     bool
	creditNotes int
	// keepsStock: the ordered units leave the warehouse for good.
	keepsStock bool
}

// pathSpec is a path and what it must end in.
type pathSpec struct {
	path Path
	want expectation
}

// pathSpecs returns every path with its expectation, in the order the demo
// deals them out.
func pathSpecs() []pathSpec {
	return []pathSpec{
		{PathDelivered, expectation{token: tokenOK, country: countryDeliverable, status: "delivered",
			settledBy: []string{"delivered", "completed"}, payment: "authorized", shipment: "delivered", invoice: true, keepsStock: true}},
		{PathPaymentDeclined, expectation{token: tokenDecline, country: countryDeliverable, status: "cancelled", reason: "payment_declined",
			settledBy: []string{"stock_released"}, payment: "declined"}},
		{PathPaymentTimeout, expectation{token: tokenTimeout, country: countryDeliverable, status: "cancelled", reason: "payment_timeout",
			settledBy: []string{"stock_released"}, payment: "pending"}},
		{PathOutOfStock, expectation{token: tokenOK, country: countryDeliverable, status: "cancelled", reason: "out_of_stock"}},
		{PathUndeliverable, expectation{token: tokenOK, country: countryNowhere, status: "cancelled", reason: "undeliverable",
			settledBy: []string{"refunded", "stock_returned"}, payment: "refunded", refunds: 1, shipment: "failed", invoice: true, creditNotes: 1}},
		{PathCustomerCancel, expectation{token: tokenTimeout, country: countryDeliverable, cancel: true, status: "cancelled", reason: "customer_request",
			settledBy: []string{"stock_released"}, payment: "pending"}},
	}
}
