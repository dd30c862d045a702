package contracts

// Event types published by the shipping service.
const (
	TypeShipmentCreatedV1    = "shipping.shipment_created.v1"
	TypeShipmentDispatchedV1 = "shipping.shipment_dispatched.v1"
	TypeShipmentDeliveredV1  = "shipping.shipment_delivered.v1"
	TypeShipmentFailedV1     = "shipping.shipment_failed.v1"
	TypeShipmentCancelledV1  = "shipping.shipment_cancelled.v1"
)

// ShipmentCreatedV1 is shipping.shipment_created.v1: a shipment was created
// for a confirmed order (one per order) and waits for the carrier.
type ShipmentCreatedV1 struct {
	ShipmentID string      `json:"shipment_id"`
	OrderID    string      `json:"order_id"`
	UserID     string      `json:"user_id"`
	Carrier    string      `json:"carrier"`
	Address    Address     `json:"address"`
	Lines      []StockLine `json:"lines"`
}

// ShipmentDispatchedV1 is shipping.shipment_dispatched.v1: the carrier
// picked up the shipment.
type ShipmentDispatchedV1 struct {
	ShipmentID     string `json:"shipment_id"`
	OrderID        string `json:"order_id"`
	UserID         string `json:"user_id"`
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

// ShipmentDeliveredV1 is shipping.shipment_delivered.v1: the carrier
// delivered the shipment.
type ShipmentDeliveredV1 struct {
	ShipmentID string `json:"shipment_id"`
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
}

// FailureReason says why a shipment could not be delivered.
type FailureReason string

// Shipment failure reasons.
const (
	FailureUndeliverable FailureReason = "undeliverable"
	FailureLost          FailureReason = "lost"
)

// ShipmentFailedV1 is shipping.shipment_failed.v1: the carrier could not
// deliver. The order is cancelled as undeliverable whatever the reason.
type ShipmentFailedV1 struct {
	ShipmentID string        `json:"shipment_id"`
	OrderID    string        `json:"order_id"`
	UserID     string        `json:"user_id"`
	Reason     FailureReason `json:"reason"`
	Detail     string        `json:"detail,omitempty"`
}

// ShipmentCancelledV1 is shipping.shipment_cancelled.v1: a shipment not yet
// dispatched was cancelled because its order was.
type ShipmentCancelledV1 struct {
	ShipmentID string `json:"shipment_id"`
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
}
