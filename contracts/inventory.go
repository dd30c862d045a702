package contracts

// Event types published by the inventory service.
const (
	TypeStockReservedV1          = "inventory.stock_reserved.v1"
	TypeStockReservationFailedV1 = "inventory.stock_reservation_failed.v1"
	TypeStockReleasedV1          = "inventory.stock_released.v1"
	TypeStockCommittedV1         = "inventory.stock_committed.v1"
	TypeStockReturnedV1          = "inventory.stock_returned.v1"
	TypeStockAdjustedV1          = "inventory.stock_adjusted.v1"
	TypeStockLevelChangedV1      = "inventory.stock_level_changed.v1"
	TypeLowStockV1               = "inventory.low_stock.v1"
)

// StockReservedV1 is inventory.stock_reserved.v1: every line of an order was
// reserved (all or nothing). There is one reservation per order.
type StockReservedV1 struct {
	OrderID string      `json:"order_id"`
	Lines   []StockLine `json:"lines"`
}

// StockReservationFailedV1 is inventory.stock_reservation_failed.v1: an
// order's lines could not all be reserved, so nothing was.
type StockReservationFailedV1 struct {
	OrderID   string     `json:"order_id"`
	Shortages []Shortage `json:"shortages"`
}

// Shortage is a line inventory could not cover.
type Shortage struct {
	ProductID string `json:"product_id"`
	Requested int    `json:"requested"`
	Available int    `json:"available"`
}

// StockReleasedV1 is inventory.stock_released.v1: a cancelled order's
// reservation was released; Lines is exactly what was reserved.
type StockReleasedV1 struct {
	OrderID string      `json:"order_id"`
	Lines   []StockLine `json:"lines"`
}

// StockCommittedV1 is inventory.stock_committed.v1: a confirmed order's
// reservation was committed and its units left stock on hand.
type StockCommittedV1 struct {
	OrderID string      `json:"order_id"`
	Lines   []StockLine `json:"lines"`
}

// StockReturnedV1 is inventory.stock_returned.v1: the committed units of a
// cancelled order were put back on hand; Lines is exactly what was committed.
type StockReturnedV1 struct {
	OrderID string      `json:"order_id"`
	Lines   []StockLine `json:"lines"`
}

// AdjustmentReason says what caused a stock adjustment.
type AdjustmentReason string

// Adjustment reasons.
const (
	AdjustInitial     AdjustmentReason = "initial"
	AdjustManual      AdjustmentReason = "manual"
	AdjustAutoRestock AdjustmentReason = "auto_restock"
)

// StockAdjustedV1 is inventory.stock_adjusted.v1: stock on hand changed
// outside an order (initial stock, an administrator, an automatic restock).
// The levels are those after the adjustment.
type StockAdjustedV1 struct {
	ProductID string           `json:"product_id"`
	SKU       string           `json:"sku"`
	Delta     int              `json:"delta"`
	Reason    AdjustmentReason `json:"reason"`
	OnHand    int              `json:"on_hand"`
	Reserved  int              `json:"reserved"`
	Available int              `json:"available"`
}

// StockLevelChangedV1 is inventory.stock_level_changed.v1: a product's stock
// levels changed for any reason. It is emitted once per product per change,
// so availability read models need no other inventory event.
type StockLevelChangedV1 struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	OnHand    int    `json:"on_hand"`
	Reserved  int    `json:"reserved"`
	Available int    `json:"available"`
}

// LowStockV1 is inventory.low_stock.v1: available stock fell to or below
// the product's threshold. Inventory reacts to it with an automatic restock.
type LowStockV1 struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Available int    `json:"available"`
	Threshold int    `json:"threshold"`
}
