package domain_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func eur(minor int64) domain.Money { return domain.Money{AmountMinor: minor, Currency: "EUR"} }

func draft() domain.InvoiceDraft {
	return domain.InvoiceDraft{
		PaymentID: "pay-1",
		Lines: []domain.LineInput{
			{ProductID: "p1", SKU: "MUG", Name: "Mug", Quantity: 2, UnitPrice: eur(1190)},
			{ProductID: "p2", SKU: "TEA", Name: "Tea", Quantity: 1, UnitPrice: eur(499)},
		},
		Total:   eur(2879),
		VATRate: 1900,
	}
}

func TestNumberFormat(t *testing.T) {
	t.Parallel()
	cases := map[domain.Number]string{
		{Series: domain.SeriesInvoice, Year: 2026, Seq: 1}:         "INV-2026-000001",
		{Series: domain.SeriesCreditNote, Year: 2027, Seq: 123456}: "CN-2027-123456",
		{Series: domain.SeriesInvoice, Year: 2026, Seq: 1_000_000}: "INV-2026-1000000",
	}
	for n, want := range cases {
		if got := n.String(); got != want {
			t.Errorf("%+v = %q, want %q", n, got, want)
		}
	}
}

func TestPriceInvoiceComputesIncludedVAT(t *testing.T) {
	t.Parallel()
	lines, net, vat, total, err := domain.PriceInvoice(draft())
	if err != nil {
		t.Fatalf("PriceInvoice: %v", err)
	}
	// 2380 gross at 19 %: VAT 380, net 2000. 499 gross: VAT 79.67 -> 80, net 419.
	if lines[0].Gross != eur(2380) || lines[0].VAT != eur(380) || lines[0].Net != eur(2000) {
		t.Errorf("line 1 = %+v", lines[0])
	}
	if lines[1].VAT != eur(80) || lines[1].Net != eur(419) {
		t.Errorf("line 2 = %+v", lines[1])
	}
	if total != eur(2879) || vat != eur(460) || net != eur(2419) {
		t.Errorf("totals net %v vat %v total %v", net, vat, total)
	}
	d := draft()
	d.VATRate = 0
	if _, _, vat, _, err := domain.PriceInvoice(d); err != nil || vat != eur(0) {
		t.Errorf("without VAT: vat %v, err %v", vat, err)
	}
}

func TestPriceInvoiceRejectsBadDrafts(t *testing.T) {
	t.Parallel()
	cases := map[string]func(d *domain.InvoiceDraft){
		"total mismatch": func(d *domain.InvoiceDraft) { d.Total = eur(1) },
		"no lines":       func(d *domain.InvoiceDraft) { d.Lines = nil },
		"zero quantity":  func(d *domain.InvoiceDraft) { d.Lines[0].Quantity = 0 },
		"mixed currency": func(d *domain.InvoiceDraft) { d.Lines[0].UnitPrice.Currency = "USD" },
		"rate too high":  func(d *domain.InvoiceDraft) { d.VATRate = 10001 },
		"overflow": func(d *domain.InvoiceDraft) {
			d.Lines[0].UnitPrice, d.Lines[0].Quantity = eur(math.MaxInt64/2), 3
		},
	}
	for name, mod := range cases {
		d := draft()
		d.Lines = append([]domain.LineInput(nil), d.Lines...)
		mod(&d)
		if _, _, _, _, err := domain.PriceInvoice(d); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestOneInvoicePerOrder(t *testing.T) {
	t.Parallel()
	b, err := domain.NewBilling("order-1", "user-1")
	if err != nil {
		t.Fatal(err)
	}
	n := domain.Number{Series: domain.SeriesInvoice, Year: 2026, Seq: 1}
	if _, err := b.IssueInvoice("inv-1", n, draft(), t0); err != nil {
		t.Fatalf("IssueInvoice: %v", err)
	}
	n.Seq = 2
	if _, err := b.IssueInvoice("inv-2", n, draft(), t0); !errors.Is(err, domain.ErrAlreadyInvoiced) {
		t.Errorf("second invoice: err = %v, want ErrAlreadyInvoiced", err)
	}
	if inv, _ := b.Invoice(); inv.ID != "inv-1" || inv.Number.String() != "INV-2026-000001" {
		t.Errorf("invoice = %s %s", inv.ID, inv.Number)
	}
}

func TestOneCreditNotePerRefundAndNeverMoreThanInvoiced(t *testing.T) {
	t.Parallel()
	b, _ := domain.NewBilling("order-1", "user-1")
	cn := func(seq int64) domain.Number {
		return domain.Number{Series: domain.SeriesCreditNote, Year: 2026, Seq: seq}
	}
	if added, err := b.RecordRefund(domain.Refund{RefundID: "r1", Amount: eur(2000), Reason: "undeliverable"}); !added || err != nil {
		t.Fatalf("RecordRefund: %v %v", added, err)
	}
	if added, _ := b.RecordRefund(domain.Refund{RefundID: "r1", Amount: eur(2000), Reason: "undeliverable"}); added {
		t.Error("the same refund was recorded twice")
	}
	if _, err := b.IssueCreditNote("cn-1", cn(1), "r1", t0); !errors.Is(err, domain.ErrNoInvoice) {
		t.Errorf("credit without invoice: err = %v, want ErrNoInvoice", err)
	}
	if _, err := b.IssueInvoice("inv-1", domain.Number{Series: domain.SeriesInvoice, Year: 2026, Seq: 1}, draft(), t0); err != nil {
		t.Fatal(err)
	}
	if got := b.Uncredited(); len(got) != 1 || got[0].RefundID != "r1" {
		t.Fatalf("uncredited = %+v, want r1", got)
	}
	note, err := b.IssueCreditNote("cn-1", cn(1), "r1", t0)
	if err != nil {
		t.Fatalf("IssueCreditNote: %v", err)
	}
	if note.Amount != eur(2000) || note.InvoiceID != "inv-1" || note.Reason != "undeliverable" {
		t.Errorf("credit note = %+v", note)
	}
	if _, err := b.IssueCreditNote("cn-2", cn(2), "r1", t0); !errors.Is(err, domain.ErrAlreadyCredited) {
		t.Errorf("second credit note: err = %v, want ErrAlreadyCredited", err)
	}
	if len(b.Uncredited()) != 0 {
		t.Error("a credited refund is still uncredited")
	}
	// 879 of 2879 remain creditable.
	if _, err := b.RecordRefund(domain.Refund{RefundID: "r2", Amount: eur(880), Reason: "customer_request"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.IssueCreditNote("cn-2", cn(2), "r2", t0); !errors.Is(err, domain.ErrOverCredit) {
		t.Errorf("over-credit: err = %v, want ErrOverCredit", err)
	}
}

func TestFromDatabaseRejectsCreditNotesWithoutTheirDocuments(t *testing.T) {
	t.Parallel()
	note := domain.CreditNote{ID: "cn-1", InvoiceID: "inv-1", RefundID: "r1"}
	if _, err := domain.FromDatabase("o", "u", nil, nil, []domain.CreditNote{note}); err == nil {
		t.Error("credit note without invoice loaded")
	}
	inv := &domain.Invoice{ID: "inv-1"}
	if _, err := domain.FromDatabase("o", "u", inv, nil, []domain.CreditNote{note}); err == nil {
		t.Error("credit note without refund loaded")
	}
	refunds := []domain.Refund{{RefundID: "r1"}}
	if _, err := domain.FromDatabase("o", "u", inv, refunds, []domain.CreditNote{note}); err != nil {
		t.Errorf("consistent billing: %v", err)
	}
}
