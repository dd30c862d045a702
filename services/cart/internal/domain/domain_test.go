package domain_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

const (
	user    = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"
	cupID   = "0190d6a2-0f11-7a22-8b33-4c44d55e66f7"
	grindID = "0190d6a2-0f11-7a22-8b33-4c44d55e6708"
	orderID = "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func product(t *testing.T, id string, price int64, currency string) domain.Product {
	t.Helper()
	p, err := domain.NewProduct(id, "SKU-"+id[len(id)-2:], "Product "+id[len(id)-2:], domain.Money{AmountMinor: price, Currency: currency}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cart(t *testing.T) domain.Cart {
	t.Helper()
	c, err := domain.NewCart(user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSetAndRemoveLines(t *testing.T) {
	c := cart(t)
	cup, grinder := product(t, cupID, 1250, "EUR"), product(t, grindID, 4990, "EUR")
	if prev, err := c.Set(cup, 2, t0); err != nil || prev != 0 {
		t.Fatalf("add cup: %d %v", prev, err)
	}
	if prev, err := c.Set(grinder, 1, t0.Add(time.Second)); err != nil || prev != 0 {
		t.Fatalf("add grinder: %d %v", prev, err)
	}
	if prev, err := c.Set(cup, 3, t0.Add(2*time.Second)); err != nil || prev != 2 {
		t.Fatalf("change cup: %d %v", prev, err)
	}
	lines := c.Lines()
	if len(lines) != 2 || lines[0].ProductID != cup.ID() || lines[0].Quantity != 3 || !lines[0].AddedAt.Equal(t0) {
		t.Errorf("lines %+v", lines)
	}
	total, err := c.Total()
	if err != nil || total != (domain.Money{AmountMinor: 3*1250 + 4990, Currency: "EUR"}) {
		t.Errorf("total %+v %v", total, err)
	}
	for _, q := range []int{0, -1, 100, 1 << 40} {
		var invalid *domain.ValidationError
		if _, err := c.Set(cup, q, t0); !errors.As(err, &invalid) || invalid.Fields[0].Field != "quantity" {
			t.Errorf("quantity %d: %v", q, err)
		}
	}
	if prev, err := c.Remove(cup.ID()); err != nil || prev != 3 {
		t.Errorf("remove: %d %v", prev, err)
	}
	if _, err := c.Remove(cup.ID()); !errors.Is(err, domain.ErrLineNotFound) {
		t.Errorf("remove again: %v", err)
	}
	if got := c.Lines(); len(got) != 1 || got[0].ProductID != grinder.ID() {
		t.Errorf("after removal %+v", got)
	}
}

func TestCartLimits(t *testing.T) {
	c := cart(t)
	if _, err := c.Set(product(t, cupID, 100, "EUR"), 1, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(product(t, grindID, 100, "USD"), 1, t0); !errors.Is(err, domain.ErrCurrencyMismatch) {
		t.Errorf("second currency: %v", err)
	}
	for i := 1; i < domain.MaxLines; i++ {
		id := fmt.Sprintf("0190d6a2-0f11-7a22-8b33-4c44d55e6%03d", i)
		if _, err := c.Set(product(t, id, 100, "EUR"), domain.MaxQuantity, t0); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	if _, err := c.Set(product(t, grindID, 100, "EUR"), 1, t0); !errors.Is(err, domain.ErrCartFull) {
		t.Errorf("line %d: %v", domain.MaxLines+1, err)
	}
	empty := cart(t)
	if total, err := empty.Total(); err != nil || total != (domain.Money{Currency: "EUR"}) {
		t.Errorf("empty total %+v %v", total, err)
	}
}

func TestProductChangesApplyInOrder(t *testing.T) {
	p := product(t, cupID, 1250, "EUR")
	if ok, err := p.Reprice(domain.Money{AmountMinor: 990, Currency: "EUR"}, t0.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("reprice: %v %v", ok, err)
	}
	if ok, _ := p.Reprice(domain.Money{AmountMinor: 1100, Currency: "EUR"}, t0.Add(time.Second)); ok || p.Price().AmountMinor != 990 {
		t.Errorf("an older price was applied: %+v", p.Price())
	}
	if ok, _ := p.Describe("CUP-2", "Cup", t0); !ok || p.SKU() != "CUP-2" {
		t.Errorf("describe: %s", p.SKU())
	}
	if _, err := p.Reprice(domain.Money{AmountMinor: -1, Currency: "EUR"}, t0.Add(time.Hour)); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("negative price: %v", err)
	}
}

func address() domain.Address {
	return domain.Address{Name: "Ada Lovelace", Line1: "12 Analytical Row", City: "London", PostalCode: "NW1 6XE", Country: "GB"}
}

func TestCheckoutRequestValidation(t *testing.T) {
	req, err := domain.NewCheckoutRequest(domain.Address{Name: " Ada ", Line1: "Row 1", City: "London", PostalCode: "N1", Country: "gb"}, "tok_ok")
	if err != nil {
		t.Fatal(err)
	}
	if req.Address.Name != "Ada" || req.Address.Country != "GB" {
		t.Errorf("not normalised: %+v", req.Address)
	}
	var invalid *domain.ValidationError
	_, err = domain.NewCheckoutRequest(domain.Address{Line2: strings.Repeat("x", 201), Country: "GBR"}, "tok with space")
	if !errors.As(err, &invalid) {
		t.Fatalf("got %v", err)
	}
	var got []string
	for _, f := range invalid.Fields {
		got = append(got, f.Field)
	}
	want := []string{"shipping_address.name", "shipping_address.line1", "shipping_address.line2", "shipping_address.city",
		"shipping_address.postal_code", "shipping_address.country", "payment.token"}
	if !slices.Equal(got, want) {
		t.Errorf("invalid fields %v, want %v", got, want)
	}
	for _, bad := range []string{"", "D", "D1", "1A", "ÄB"} {
		a := address()
		a.Country = bad
		if _, err := domain.NewCheckoutRequest(a, "tok_ok"); err == nil {
			t.Errorf("country %q accepted", bad)
		}
	}
}

func TestRequestHash(t *testing.T) {
	a, _ := domain.NewCheckoutRequest(address(), "tok_ok")
	lower := address()
	lower.Country, lower.City = "gb", "  London "
	b, _ := domain.NewCheckoutRequest(lower, "tok_ok")
	if a.Hash() != b.Hash() {
		t.Errorf("the same request normalised hashes differently")
	}
	if len(a.Hash()) != 64 {
		t.Errorf("hash %q is not hex SHA-256", a.Hash())
	}
	for name, mod := range map[string]func(*domain.Address, *string){
		"token":   func(_ *domain.Address, tok *string) { *tok = "tok_decline" },
		"country": func(a *domain.Address, _ *string) { a.Country = "ZZ" },
		"line2":   func(a *domain.Address, _ *string) { a.Line2 = "Flat 2" },
		// Shifting text between fields must change the hash.
		"shifted": func(a *domain.Address, _ *string) { a.Name, a.Line1 = "Ada Lovelace12", " Analytical Row" },
	} {
		addr, tok := address(), "tok_ok"
		mod(&addr, &tok)
		c, err := domain.NewCheckoutRequest(addr, tok)
		if err != nil {
			t.Fatal(err)
		}
		if c.Hash() == a.Hash() {
			t.Errorf("%s: a different request hashes the same", name)
		}
	}
}

func TestCheckout(t *testing.T) {
	c := cart(t)
	req, _ := domain.NewCheckoutRequest(address(), "tok_ok")
	if _, err := c.Checkout("k1", req, orderID, t0); !errors.Is(err, domain.ErrEmptyCart) {
		t.Errorf("empty cart: %v", err)
	}
	if _, err := c.Set(product(t, cupID, 1250, "EUR"), 2, t0); err != nil {
		t.Fatal(err)
	}
	co, err := c.Checkout("k1", req, orderID, t0)
	if err != nil {
		t.Fatal(err)
	}
	if co.OrderID != orderID || co.Total.AmountMinor != 2500 || len(co.Lines) != 1 || co.RequestHash != req.Hash() || co.UserID != user {
		t.Errorf("checkout %+v", co)
	}
	if !c.Empty() {
		t.Errorf("cart not emptied")
	}
	if again, err := co.Replay(req.Hash()); err != nil || again.OrderID != orderID {
		t.Errorf("replay: %+v %v", again, err)
	}
	other, _ := domain.NewCheckoutRequest(address(), "tok_decline")
	if _, err := co.Replay(other.Hash()); !errors.Is(err, domain.ErrKeyReused) {
		t.Errorf("replay with another request: %v", err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	for _, ok := range []string{"a", "3f8e2a9c-checkout-1", strings.Repeat("k", domain.MaxKeyLength)} {
		if _, err := domain.ParseIdempotencyKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "with space", "tab\t", "é", strings.Repeat("k", domain.MaxKeyLength+1)} {
		if _, err := domain.ParseIdempotencyKey(bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
