package contracts

// Event types published by the payment service.
const (
	TypePaymentAuthorizedV1 = "payment.authorized.v1"
	TypePaymentDeclinedV1   = "payment.declined.v1"
	TypePaymentRefundedV1   = "payment.refunded.v1"
)

// PaymentAuthorizedV1 is payment.authorized.v1: the provider authorized the
// order's amount. There is one payment per order; the simulated provider
// captures on authorization.
type PaymentAuthorizedV1 struct {
	PaymentID         string `json:"payment_id"`
	OrderID           string `json:"order_id"`
	UserID            string `json:"user_id"`
	Amount            Money  `json:"amount"`
	ProviderReference string `json:"provider_reference"`
}

// PaymentDeclinedV1 is payment.declined.v1: the provider declined the
// payment. Reason is the provider's decline code.
type PaymentDeclinedV1 struct {
	PaymentID string `json:"payment_id"`
	OrderID   string `json:"order_id"`
	UserID    string `json:"user_id"`
	Amount    Money  `json:"amount"`
	Reason    string `json:"reason"`
}

// PaymentRefundedV1 is payment.refunded.v1: a payment was refunded, at most
// once per payment. Invoice issues a credit note for it.
type PaymentRefundedV1 struct {
	RefundID  string             `json:"refund_id"`
	PaymentID string             `json:"payment_id"`
	OrderID   string             `json:"order_id"`
	UserID    string             `json:"user_id"`
	Amount    Money              `json:"amount"`
	Reason    CancellationReason `json:"reason"`
}
