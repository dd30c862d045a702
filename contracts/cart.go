package contracts

// Event types published by the cart service.
const (
	TypeCartLineUpdatedV1 = "cart.line_updated.v1"
	TypeCartLineRemovedV1 = "cart.line_removed.v1"
	TypeCartCheckedOutV1  = "cart.checked_out.v1"
)

// CartLineUpdatedV1 is cart.line_updated.v1: a customer put a product in
// their cart or changed its quantity. PreviousQuantity is 0 for a new line.
type CartLineUpdatedV1 struct {
	UserID           string `json:"user_id"`
	ProductID        string `json:"product_id"`
	SKU              string `json:"sku"`
	Quantity         int    `json:"quantity"`
	PreviousQuantity int    `json:"previous_quantity"`
	UnitPrice        Money  `json:"unit_price"`
}

// CartLineRemovedV1 is cart.line_removed.v1: a customer removed a product
// from their cart.
type CartLineRemovedV1 struct {
	UserID           string `json:"user_id"`
	ProductID        string `json:"product_id"`
	PreviousQuantity int    `json:"previous_quantity"`
}

// CartCheckedOutV1 is cart.checked_out.v1: a customer checked out. OrderID
// is chosen at checkout, so placing the order is idempotent however often
// the checkout or this event is retried.
type CartCheckedOutV1 struct {
	OrderID         string  `json:"order_id"`
	UserID          string  `json:"user_id"`
	Lines           []Line  `json:"lines"`
	Total           Money   `json:"total"`
	ShippingAddress Address `json:"shipping_address"`
	// PaymentToken is the provider's token; only payment interprets it.
	PaymentToken   string `json:"payment_token"`
	IdempotencyKey string `json:"idempotency_key"`
}
