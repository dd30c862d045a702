package transport

import (
	"time"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// orderView is an order as customers see it: the public status, never the
// saga's internal state, and never the payment token.
type orderView struct {
	ID                 string         `json:"id"`
	Status             string         `json:"status"`
	CancellationReason *string        `json:"cancellation_reason"`
	Lines              []lineView     `json:"lines"`
	Total              moneyView      `json:"total"`
	ShippingAddress    addressView    `json:"shipping_address"`
	Timeline           []timelineView `json:"timeline"`
	PlacedAt           time.Time      `json:"placed_at"`
	UpdatedAt          time.Time      `json:"updated_at"`
}

type moneyView struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type lineView struct {
	ProductID string    `json:"product_id"`
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Quantity  int       `json:"quantity"`
	UnitPrice moneyView `json:"unit_price"`
}

type addressView struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type timelineView struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

func toView(o *domain.Order) orderView {
	v := orderView{
		ID:        string(o.ID()),
		Status:    string(o.Status()),
		Total:     toMoneyView(o.Total()),
		PlacedAt:  o.PlacedAt(),
		UpdatedAt: o.UpdatedAt(),
	}
	if r := o.CancellationReason(); r != "" {
		s := string(r)
		v.CancellationReason = &s
	}
	for _, l := range o.Lines() {
		v.Lines = append(v.Lines, lineView{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPrice: toMoneyView(l.UnitPrice)})
	}
	a := o.ShippingAddress()
	v.ShippingAddress = addressView{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
	for _, e := range o.Timeline() {
		v.Timeline = append(v.Timeline, timelineView{Type: string(e.Type), At: e.At})
	}
	return v
}

func toMoneyView(m domain.Money) moneyView {
	return moneyView{AmountMinor: m.AmountMinor, Currency: m.Currency}
}
