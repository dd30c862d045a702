package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

const id = "0190d6a2-0f11-7a22-8b33-4c44d55e66f7"

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("got %v, want a validation error", err)
	}
	if !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("validation error is not ErrInvalid")
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field)
	}
	return out
}

func product(t *testing.T) domain.Product {
	t.Helper()
	p, err := domain.NewProduct(id, "CUP-ESP-01", "Espresso cup", "Porcelain, 80 ml.", 1250, "", 40)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewProduct(t *testing.T) {
	p := product(t)
	if p.Price().Currency() != "EUR" || p.Price().AmountMinor() != 1250 {
		t.Errorf("price %+v", p.Price())
	}
	if !p.Available() || p.Stock() != 40 {
		t.Errorf("stock %d available %v", p.Stock(), p.Available())
	}
	tests := []struct {
		name        string
		sku, pname  string
		desc        string
		price       int64
		currency    string
		stock       int
		wantInvalid []string
	}{
		{"lower-case sku", "cup-1", "Cup", "", 100, "EUR", 0, []string{"sku"}},
		{"empty sku", "", "Cup", "", 100, "EUR", 0, []string{"sku"}},
		{"sku with spaces", "CUP 1", "Cup", "", 100, "EUR", 0, []string{"sku"}},
		{"sku with trailing dash", "CUP-", "Cup", "", 100, "EUR", 0, []string{"sku"}},
		{"long sku", strings.Repeat("A", domain.MaxSKULength+1), "Cup", "", 100, "EUR", 0, []string{"sku"}},
		{"empty name", "CUP", "", "", 100, "EUR", 0, []string{"name"}},
		{"padded name", "CUP", " Cup", "", 100, "EUR", 0, []string{"name"}},
		{"long name", "CUP", strings.Repeat("é", domain.MaxNameLength+1), "", 100, "EUR", 0, []string{"name"}},
		{"control in name", "CUP", "Cup\x07", "", 100, "EUR", 0, []string{"name"}},
		{"long description", "CUP", "Cup", strings.Repeat("x", domain.MaxDescriptionLength+1), 100, "EUR", 0, []string{"description"}},
		{"zero price", "CUP", "Cup", "", 0, "EUR", 0, []string{"price.amount_minor"}},
		{"negative price", "CUP", "Cup", "", -5, "EUR", 0, []string{"price.amount_minor"}},
		{"absurd price", "CUP", "Cup", "", domain.MaxPriceMinor + 1, "EUR", 0, []string{"price.amount_minor"}},
		{"unknown currency", "CUP", "Cup", "", 100, "ABC", 0, []string{"price.currency"}},
		{"lower-case currency", "CUP", "Cup", "", 100, "eur", 0, []string{"price.currency"}},
		{"gold is not a currency", "CUP", "Cup", "", 100, "XAU", 0, []string{"price.currency"}},
		{"negative stock", "CUP", "Cup", "", 100, "EUR", -1, []string{"initial_stock"}},
		{"absurd stock", "CUP", "Cup", "", 100, "EUR", domain.MaxInitialStock + 1, []string{"initial_stock"}},
		{"everything", "", "", "", 0, "??", -1, []string{"sku", "name", "price.amount_minor", "price.currency", "initial_stock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := domain.NewProduct(id, tt.sku, tt.pname, tt.desc, tt.price, tt.currency, tt.stock)
			if got := fieldsOf(t, err); !slices.Equal(got, tt.wantInvalid) {
				t.Errorf("invalid fields %v, want %v", got, tt.wantInvalid)
			}
		})
	}
	for _, ok := range []string{"USD", "JPY", "GBP", "CHF"} {
		if _, err := domain.NewProduct(id, "A_1-B", "Cup", "Line one\nline two", 1, ok, 0); err != nil {
			t.Errorf("currency %s: %v", ok, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestUpdate(t *testing.T) {
	p := product(t)
	ch, err := p.Update(domain.Patch{PriceMinor: ptr[int64](990)})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Price || ch.Details || ch.PreviousPrice.AmountMinor() != 1250 {
		t.Errorf("change %+v", ch)
	}
	if p.Price().AmountMinor() != 990 || p.Price().Currency() != "EUR" {
		t.Errorf("price %+v", p.Price())
	}

	ch, err = p.Update(domain.Patch{Name: ptr("Espresso cup, white"), PriceMinor: ptr[int64](990)})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Price || !ch.Details {
		t.Errorf("change %+v, want details only", ch)
	}

	ch, err = p.Update(domain.Patch{Description: ptr(p.Description())})
	if err != nil || ch.Price || ch.Details {
		t.Errorf("no-op update: %+v %v", ch, err)
	}

	before := p
	for name, patch := range map[string]domain.Patch{
		"empty":                  {},
		"bad name":               {Name: ptr(""), PriceMinor: ptr[int64](5)},
		"bad price":              {PriceMinor: ptr[int64](0)},
		"currency without price": {Currency: ptr("USD")},
		"bad currency":           {PriceMinor: ptr[int64](5), Currency: ptr("EURO")},
	} {
		if _, err := p.Update(patch); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
		if p != before {
			t.Errorf("%s: a refused update changed the product", name)
		}
	}
}

func TestApplyStockLevelIgnoresOlderReports(t *testing.T) {
	p := product(t)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	if !p.ApplyStockLevel(3, t0) || p.Stock() != 3 {
		t.Fatalf("first report: stock %d", p.Stock())
	}
	if p.ApplyStockLevel(0, t0.Add(-time.Second)) {
		t.Errorf("an older report was applied")
	}
	if p.Stock() != 3 || !p.Available() {
		t.Errorf("stock %d after an older report", p.Stock())
	}
	if !p.ApplyStockLevel(0, t0.Add(time.Second)) || p.Available() {
		t.Errorf("newer report: stock %d, available %v", p.Stock(), p.Available())
	}
}

func TestParseID(t *testing.T) {
	if got, err := domain.ParseID(strings.ToUpper(id)); err != nil || got != id {
		t.Errorf("upper-case id: %q %v", got, err)
	}
	for _, bad := range []string{"", "1", "urn:uuid:" + id, "{" + id + "}", id + "0"} {
		if _, err := domain.ParseID(bad); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
