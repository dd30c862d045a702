package contracts

// Event types published by the catalog service.
const (
	TypeProductCreatedV1 = "catalog.product_created.v1"
	TypeProductUpdatedV1 = "catalog.product_updated.v1"
	TypePriceChangedV1   = "catalog.price_changed.v1"
)

// ProductCreatedV1 is catalog.product_created.v1: a product was added to the
// catalogue. Inventory creates its stock with InitialStock units on hand.
type ProductCreatedV1 struct {
	ProductID    string `json:"product_id"`
	SKU          string `json:"sku"`
	Name         string `json:"name"`
	Description  string `json:"description,omitempty"`
	Price        Money  `json:"price"`
	InitialStock int    `json:"initial_stock"`
}

// ProductUpdatedV1 is catalog.product_updated.v1: a product's descriptive
// fields changed. It carries their state after the change; a price change is
// PriceChangedV1 instead.
type ProductUpdatedV1 struct {
	ProductID   string `json:"product_id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// PriceChangedV1 is catalog.price_changed.v1: a product's unit price
// changed. Carts reprice their line snapshots; placed orders keep theirs.
type PriceChangedV1 struct {
	ProductID     string `json:"product_id"`
	SKU           string `json:"sku"`
	PreviousPrice Money  `json:"previous_price"`
	Price         Money  `json:"price"`
}
