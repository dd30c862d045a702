package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// money is an amount in minor units, as the API carries it.
type money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

func (m money) String() string {
	sign, a := "", m.AmountMinor
	if a < 0 {
		sign, a = "-", -a
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, a/100, a%100, m.Currency)
}

// product is a seeded product.
type product struct {
	ID, SKU, Name string
	Price         money
	Initial       int
	// scarce products are stocked below what the out-of-stock path orders.
	scarce bool
}

// scarceOrder is how many units of a scarce product the out-of-stock path
// orders; scarce products are stocked with one unit less.
const scarceOrder = 2

// maxUnits is the most units of one product an order of the other paths
// takes; regular products are stocked so that every order can have them.
const maxUnits = 3

// catalogue is what the demo sells.
func catalogue() []product {
	eur := func(minor int64) money { return money{AmountMinor: minor, Currency: "EUR"} }
	return []product{
		{SKU: "CUP", Name: "Espresso cup", Price: eur(1299)},
		{SKU: "KETTLE", Name: "Pour-over kettle", Price: eur(4599)},
		{SKU: "GRINDER", Name: "Burr grinder", Price: eur(8900)},
		{SKU: "BEANS", Name: "Coffee beans, 1 kg", Price: eur(2450)},
		{SKU: "DRIPPER", Name: "Hand-thrown dripper (limited)", Price: eur(12900), scarce: true},
	}
}

// seedCatalogue creates the products through the admin API, stocked for
// plays orders, and waits until inventory holds their stock, so that orders
// can reserve it.
func (d *demo) seedCatalogue(ctx context.Context, admin *client, plays int) ([]*product, error) {
	var products []*product
	for _, p := range catalogue() {
		p.SKU = "DEMO-" + d.run + "-" + p.SKU
		p.Initial = maxUnits*plays + 2
		if p.scarce {
			p.Initial = scarceOrder - 1
		}
		var created struct {
			ID string `json:"id"`
		}
		err := admin.call(ctx, http.StatusCreated, &created, http.MethodPost, "/api/v1/admin/products", map[string]any{
			"sku": p.SKU, "name": p.Name, "description": "Seeded by shopmesh demo.", "price": p.Price, "initial_stock": p.Initial,
		})
		if hasStatus(err, http.StatusForbidden) {
			return nil, fmt.Errorf("create product %s: the account is not an administrator: %w", p.SKU, err)
		}
		if err != nil {
			return nil, fmt.Errorf("create product %s: %w", p.SKU, err)
		}
		p.ID = created.ID
		products = append(products, &p)
	}
	for _, p := range products {
		err := poll(ctx, d.deadline(), d.cfg.PollInterval, "inventory stocks "+p.SKU, func(ctx context.Context) error {
			var s stockLevel
			return admin.call(ctx, http.StatusOK, &s, http.MethodGet, "/api/v1/admin/products/"+p.ID+"/stock", nil)
		})
		if err != nil {
			return nil, err
		}
	}
	d.out.write(func(w io.Writer) error { return writeCatalogue(w, products) })
	return products, nil
}

// stockLevel is the admin stock view.
type stockLevel struct {
	OnHand    int `json:"on_hand"`
	Reserved  int `json:"reserved"`
	Available int `json:"available"`
}

// checkStock waits until every product's stock is what the orders left:
// nothing reserved, the initial stock less what delivered orders took. When
// an order did not settle, nothing can be expected: it reads the levels once.
func (d *demo) checkStock(ctx context.Context, admin *client, products []*product, orders []OrderResult, plan []*customerPlan) []StockResult {
	settled := true
	taken := map[string]int{}
	for _, c := range plan {
		for _, o := range c.orders {
			r := orders[o.index]
			switch {
			case r.Settled == 0:
				settled = false
			case r.Status == "delivered":
				for _, l := range o.lines {
					taken[l.product.ID] += l.quantity
				}
			}
		}
	}
	out := make([]StockResult, len(products))
	for i, p := range products {
		res := StockResult{SKU: p.SKU, Name: p.Name, Initial: p.Initial, WantOnHand: p.Initial - taken[p.ID]}
		want := stockLevel{OnHand: res.WantOnHand, Available: res.WantOnHand}
		var got stockLevel
		var readErr error
		check := func(ctx context.Context) error {
			if readErr = admin.call(ctx, http.StatusOK, &got, http.MethodGet, "/api/v1/admin/products/"+p.ID+"/stock", nil); readErr != nil {
				return readErr
			}
			if got != want {
				return fmt.Errorf("on hand %d, reserved %d, available %d; want %d, 0, %d", got.OnHand, got.Reserved, got.Available, want.OnHand, want.Available)
			}
			return nil
		}
		var err error
		if settled {
			err = poll(ctx, d.deadline(), d.cfg.PollInterval, "stock", check)
		} else {
			// Unsettled orders may still hold stock: the levels are shown, not judged.
			_ = check(ctx)
			err = readErr
		}
		res.OnHand, res.Reserved, res.Available = got.OnHand, got.Reserved, got.Available
		if err != nil {
			res.Problem = strings.TrimPrefix(err.Error(), "stock: ")
		}
		out[i] = res
	}
	return out
}

// regular returns the products every path but out-of-stock orders from.
func regular(products []*product) []*product {
	return slices.DeleteFunc(slices.Clone(products), func(p *product) bool { return p.scarce })
}

// scarce returns the products the out-of-stock path orders.
func scarce(products []*product) []*product {
	return slices.DeleteFunc(slices.Clone(products), func(p *product) bool { return !p.scarce })
}
