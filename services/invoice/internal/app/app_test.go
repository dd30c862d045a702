package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice/internal/app"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// fakeNumbers is a gapless counter per series and year; a failed update
// rolls its numbers back, as the database does.
type fakeNumbers struct{ last map[string]int64 }

func (n *fakeNumbers) Next(_ context.Context, series domain.Series, year int) (domain.Number, error) {
	key := fmt.Sprintf("%s-%d", series, year)
	n.last[key]++
	return domain.Number{Series: series, Year: year, Seq: n.last[key]}, nil
}

// fakeBillings is an in-memory store: a failed update changes nothing.
type fakeBillings struct {
	billings map[string]*domain.Billing
	numbers  *fakeNumbers
	events   []outbox.Event
}

func newFakeBillings() *fakeBillings {
	return &fakeBillings{billings: map[string]*domain.Billing{}, numbers: &fakeNumbers{last: map[string]int64{}}}
}

func (f *fakeBillings) Billing(_ context.Context, orderID string) (*domain.Billing, error) {
	b, ok := f.billings[orderID]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return clone(b)
}

func (f *fakeBillings) Update(_ context.Context, orderID string, fn app.UpdateFunc) error {
	var cur *domain.Billing
	if b, ok := f.billings[orderID]; ok {
		var err error
		if cur, err = clone(b); err != nil {
			return err
		}
	}
	saved := map[string]int64{}
	for k, v := range f.numbers.last {
		saved[k] = v
	}
	next, events, err := fn(cur, f.numbers)
	if err != nil {
		f.numbers.last = saved
		return err
	}
	if next != nil {
		if f.billings[orderID], err = clone(next); err != nil {
			return err
		}
	}
	f.events = append(f.events, events...)
	return nil
}

func clone(b *domain.Billing) (*domain.Billing, error) {
	var inv *domain.Invoice
	if i, ok := b.Invoice(); ok {
		inv = &i
	}
	return domain.FromDatabase(b.OrderID(), b.UserID(), inv, b.Refunds(), b.CreditNotes())
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newService(t *testing.T, store *fakeBillings, c *clock) *app.Service {
	t.Helper()
	n := 0
	svc, err := app.NewService(store, 1900, app.WithClock(c.Now), app.WithIDs(func() string { n++; return fmt.Sprintf("id-%d", n) }))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func eur(minor int64) domain.Money { return domain.Money{AmountMinor: minor, Currency: "EUR"} }

func issue(orderID string) app.IssueInvoice {
	return app.IssueInvoice{OrderID: orderID, UserID: "user-1", PaymentID: "pay-1",
		Lines: []domain.LineInput{{ProductID: "p1", SKU: "MUG", Name: "Mug", Quantity: 2, UnitPrice: eur(1190)}},
		Total: eur(2380), BillingAddress: domain.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}}
}

func refund(orderID, refundID string) app.CreditRefund {
	return app.CreditRefund{RefundID: refundID, PaymentID: "pay-1", OrderID: orderID, UserID: "user-1", Amount: eur(2380), Reason: "undeliverable"}
}

func numbersOf(events []outbox.Event) []string {
	var out []string
	for _, e := range events {
		switch p := e.Payload.(type) {
		case contracts.InvoiceIssuedV1:
			out = append(out, p.Number)
		case contracts.CreditNoteIssuedV1:
			out = append(out, p.Number)
		}
	}
	return out
}

func TestInvoicesAreNumberedWithoutGapsPerYear(t *testing.T) {
	t.Parallel()
	store, c := newFakeBillings(), &clock{now: time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)}
	svc := newService(t, store, c)
	ctx := context.Background()
	if err := svc.IssueInvoice(ctx, issue("order-1")); err != nil {
		t.Fatal(err)
	}
	if err := svc.IssueInvoice(ctx, issue("order-1")); err != nil { // the same order again
		t.Fatal(err)
	}
	bad := issue("order-2")
	bad.Total = eur(1) // lines do not add up: rejected, takes no number
	if err := svc.IssueInvoice(ctx, bad); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("bad order: err = %v, want ErrInvalid", err)
	}
	if err := svc.IssueInvoice(ctx, issue("order-3")); err != nil {
		t.Fatal(err)
	}
	c.now = time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC)
	if err := svc.IssueInvoice(ctx, issue("order-4")); err != nil {
		t.Fatal(err)
	}
	want := []string{"INV-2026-000001", "INV-2026-000002", "INV-2027-000001"}
	if got := numbersOf(store.events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("numbers = %v, want %v", got, want)
	}
	e := store.events[0].Payload.(contracts.InvoiceIssuedV1)
	if e.OrderID != "order-1" || e.Total.AmountMinor != 2380 || len(e.Lines) != 1 || e.BillingAddress.City != "Berlin" {
		t.Errorf("invoice issued = %+v", e)
	}
	inv, _ := store.billings["order-1"].Invoice()
	if inv.VAT != eur(380) || inv.Net != eur(2000) {
		t.Errorf("VAT %v net %v, want 380 and 2000", inv.VAT, inv.Net)
	}
}

func TestOneCreditNotePerRefund(t *testing.T) {
	t.Parallel()
	store, c := newFakeBillings(), &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	svc := newService(t, store, c)
	ctx := context.Background()
	if err := svc.IssueInvoice(ctx, issue("order-1")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := svc.CreditRefund(ctx, refund("order-1", "refund-1")); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"INV-2026-000001", "CN-2026-000001"}
	if got := numbersOf(store.events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("numbers = %v, want %v", got, want)
	}
	n := store.events[1].Payload.(contracts.CreditNoteIssuedV1)
	inv := store.events[0].Payload.(contracts.InvoiceIssuedV1)
	if n.InvoiceID != inv.InvoiceID || n.RefundID != "refund-1" || n.Amount.AmountMinor != 2380 || n.UserID != "user-1" {
		t.Errorf("credit note = %+v", n)
	}
}

func TestRefundBeforeInvoiceIsCreditedWhenTheInvoiceIsIssued(t *testing.T) {
	t.Parallel()
	store, c := newFakeBillings(), &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	svc := newService(t, store, c)
	ctx := context.Background()
	if err := svc.CreditRefund(ctx, refund("order-1", "refund-1")); err != nil {
		t.Fatal(err)
	}
	if len(store.events) != 0 {
		t.Fatalf("events = %d, want none before the invoice", len(store.events))
	}
	if _, err := svc.Billing(ctx, "user-1", "order-1"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("billing without invoice: err = %v, want ErrNotFound", err)
	}
	if err := svc.IssueInvoice(ctx, issue("order-1")); err != nil {
		t.Fatal(err)
	}
	want := []string{"INV-2026-000001", "CN-2026-000001"}
	if got := numbersOf(store.events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("numbers = %v, want %v", got, want)
	}
}

func TestDocumentsOfOneOrderMustNameOneCustomer(t *testing.T) {
	t.Parallel()
	store, c := newFakeBillings(), &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	svc := newService(t, store, c)
	ctx := context.Background()
	if err := svc.IssueInvoice(ctx, issue("order-1")); err != nil {
		t.Fatal(err)
	}
	r := refund("order-1", "refund-1")
	r.UserID = "user-2"
	if err := svc.CreditRefund(ctx, r); !errors.Is(err, domain.ErrOtherCustomer) {
		t.Errorf("err = %v, want ErrOtherCustomer", err)
	}
}

func TestInvoiceIsVisibleToItsOwnerOnly(t *testing.T) {
	t.Parallel()
	store, c := newFakeBillings(), &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	svc := newService(t, store, c)
	ctx := context.Background()
	if err := svc.IssueInvoice(ctx, issue("order-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Billing(ctx, "user-1", "order-1"); err != nil {
		t.Errorf("owner: %v", err)
	}
	if _, err := svc.Billing(ctx, "user-2", "order-1"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("other user: err = %v, want ErrNotFound", err)
	}
}
