// Package domain holds the invoice service's rules: one invoice per
// confirmed order, with lines, VAT and totals; one credit note per refund,
// never crediting more than was invoiced; numbers that run without gaps per
// series and year. It is pure: no I/O, no clock, no id generation, and no
// knowledge of events or HTTP.
package domain

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Errors of the billing rules.
var (
	// ErrNotFound is returned by stores for an order without billing.
	ErrNotFound = errors.New("invoice not found")
	// ErrInvalid is wrapped by the errors of an invoice or refund that
	// cannot be built from what it was given.
	ErrInvalid = errors.New("invalid billing document")
	// ErrAlreadyInvoiced is returned for a second invoice of an order.
	ErrAlreadyInvoiced = errors.New("order already invoiced")
	// ErrNoInvoice is returned for a credit note of an order without invoice.
	ErrNoInvoice = errors.New("order has no invoice")
	// ErrAlreadyCredited is returned for a second credit note of a refund.
	ErrAlreadyCredited = errors.New("refund already credited")
	// ErrOverCredit is returned for a credit note that would credit more
	// than the invoice's total, or in another currency.
	ErrOverCredit = errors.New("credit exceeds the invoice")
	// ErrOtherCustomer is returned when documents of one order name
	// different customers.
	ErrOtherCustomer = errors.New("billing documents of one order name different customers")
)

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

// NewMoney returns a non-negative amount of a currency.
func NewMoney(amountMinor int64, currency string) (Money, error) {
	if amountMinor < 0 {
		return Money{}, fmt.Errorf("%w: amount %d is negative", ErrInvalid, amountMinor)
	}
	if !isCurrencyCode(currency) {
		return Money{}, fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalid, currency)
	}
	return Money{AmountMinor: amountMinor, Currency: currency}, nil
}

// Address is the billing address.
type Address struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

// Series is a sequence of document numbers.
type Series string

// Number series.
const (
	SeriesInvoice    Series = "INV"
	SeriesCreditNote Series = "CN"
)

// Number is a document number: series, year and a sequence that starts at 1
// each year and has no gaps.
type Number struct {
	Series Series
	Year   int
	Seq    int64
}

// String formats the number, e.g. INV-2026-000001.
func (n Number) String() string { return fmt.Sprintf("%s-%04d-%06d", n.Series, n.Year, n.Seq) }

// LineInput is an order line to invoice: prices include VAT.
type LineInput struct {
	ProductID string
	SKU       string
	Name      string
	Quantity  int
	UnitPrice Money
}

// Line is an invoiced line: gross is quantity times unit price, VAT is the
// part of gross that is tax, net the rest.
type Line struct {
	LineInput
	Net   Money
	VAT   Money
	Gross Money
}

// Invoice is the invoice of an order.
type Invoice struct {
	ID        string
	Number    Number
	OrderID   string
	UserID    string
	PaymentID string
	// VATRate is in basis points (1900 is 19 %); prices include it.
	VATRate        int
	Lines          []Line
	Net            Money
	VAT            Money
	Total          Money
	BillingAddress Address
	IssuedAt       time.Time
}

// Refund is a refund of the order's payment, as reported by payment.
type Refund struct {
	RefundID   string
	PaymentID  string
	Amount     Money
	Reason     string
	ReceivedAt time.Time
}

// CreditNote credits (part of) an invoice for a refund.
type CreditNote struct {
	ID        string
	Number    Number
	InvoiceID string
	RefundID  string
	Amount    Money
	Reason    string
	IssuedAt  time.Time
}

// InvoiceDraft is what an invoice is issued from.
type InvoiceDraft struct {
	PaymentID      string
	Lines          []LineInput
	Total          Money
	BillingAddress Address
	// VATRate is in basis points, 0 to 10000.
	VATRate int
}

// Billing is everything billed for one order: its invoice, the refunds
// reported for it and the credit notes issued for them.
type Billing struct {
	orderID, userID string
	invoice         *Invoice
	refunds         []Refund
	creditNotes     []CreditNote
}

// NewBilling returns the empty billing of an order.
func NewBilling(orderID, userID string) (*Billing, error) {
	if orderID == "" || userID == "" {
		return nil, fmt.Errorf("%w: order id and user id are required", ErrInvalid)
	}
	return &Billing{orderID: orderID, userID: userID}, nil
}

// FromDatabase rebuilds an order's billing from its stored documents.
func FromDatabase(orderID, userID string, invoice *Invoice, refunds []Refund, notes []CreditNote) (*Billing, error) {
	b, err := NewBilling(orderID, userID)
	if err != nil {
		return nil, err
	}
	if invoice != nil {
		inv := *invoice
		b.invoice = &inv
	}
	b.refunds = append([]Refund(nil), refunds...)
	for _, n := range notes {
		if b.invoice == nil || n.InvoiceID != b.invoice.ID {
			return nil, fmt.Errorf("credit note %s of order %s does not credit its invoice", n.ID, orderID)
		}
		if _, ok := b.refund(n.RefundID); !ok {
			return nil, fmt.Errorf("credit note %s of order %s credits unknown refund %s", n.ID, orderID, n.RefundID)
		}
	}
	b.creditNotes = append([]CreditNote(nil), notes...)
	return b, nil
}

// OrderID is the order billed.
func (b *Billing) OrderID() string { return b.orderID }

// UserID is the customer billed.
func (b *Billing) UserID() string { return b.userID }

// Invoice returns the order's invoice, if issued.
func (b *Billing) Invoice() (Invoice, bool) {
	if b.invoice == nil {
		return Invoice{}, false
	}
	inv := *b.invoice
	inv.Lines = append([]Line(nil), inv.Lines...)
	return inv, true
}

// Refunds are the refunds reported for the order.
func (b *Billing) Refunds() []Refund { return append([]Refund(nil), b.refunds...) }

// CreditNotes are the credit notes issued, oldest first.
func (b *Billing) CreditNotes() []CreditNote { return append([]CreditNote(nil), b.creditNotes...) }

// CheckCustomer reports whether userID is the order's customer.
func (b *Billing) CheckCustomer(userID string) error {
	if userID != b.userID {
		return fmt.Errorf("order %s: %w", b.orderID, ErrOtherCustomer)
	}
	return nil
}

// PriceInvoice checks a draft and computes its lines and totals, so that an
// invalid draft is rejected before a number is taken for it. The lines'
// gross amounts must add up to the draft's total.
func PriceInvoice(d InvoiceDraft) (lines []Line, net, vat, total Money, err error) {
	if d.VATRate < 0 || d.VATRate > 10000 {
		return nil, Money{}, Money{}, Money{}, fmt.Errorf("%w: VAT rate %d basis points", ErrInvalid, d.VATRate)
	}
	if len(d.Lines) == 0 {
		return nil, Money{}, Money{}, Money{}, fmt.Errorf("%w: no lines", ErrInvalid)
	}
	cur := d.Total.Currency
	if _, err := NewMoney(d.Total.AmountMinor, cur); err != nil {
		return nil, Money{}, Money{}, Money{}, err
	}
	net, vat, total = Money{Currency: cur}, Money{Currency: cur}, Money{Currency: cur}
	for _, in := range d.Lines {
		if in.ProductID == "" || in.Quantity < 1 || in.UnitPrice.Currency != cur || in.UnitPrice.AmountMinor < 0 {
			return nil, Money{}, Money{}, Money{}, fmt.Errorf("%w: line %+v", ErrInvalid, in)
		}
		hi, gross := bits.Mul64(uint64(in.UnitPrice.AmountMinor), uint64(in.Quantity))
		if hi != 0 || gross > math.MaxInt64 || total.AmountMinor > math.MaxInt64-int64(gross) {
			return nil, Money{}, Money{}, Money{}, fmt.Errorf("%w: amounts overflow", ErrInvalid)
		}
		lineVAT := includedVAT(int64(gross), d.VATRate)
		l := Line{LineInput: in,
			Gross: Money{int64(gross), cur}, VAT: Money{lineVAT, cur}, Net: Money{int64(gross) - lineVAT, cur}}
		lines = append(lines, l)
		total.AmountMinor += l.Gross.AmountMinor
		vat.AmountMinor += l.VAT.AmountMinor
		net.AmountMinor += l.Net.AmountMinor
	}
	if total != d.Total {
		return nil, Money{}, Money{}, Money{}, fmt.Errorf("%w: lines add up to %d %s, the order's total is %d %s",
			ErrInvalid, total.AmountMinor, cur, d.Total.AmountMinor, d.Total.Currency)
	}
	return lines, net, vat, total, nil
}

// includedVAT is the VAT included in a gross amount at rate basis points,
// rounded half up: gross * rate / (10000 + rate), computed in 128 bits.
func includedVAT(gross int64, rate int) int64 {
	if rate == 0 || gross == 0 {
		return 0
	}
	den := uint64(10000 + rate)
	hi, lo := bits.Mul64(uint64(gross), uint64(rate))
	lo, carry := bits.Add64(lo, den/2, 0)
	hi += carry
	q, _ := bits.Div64(hi, lo, den) // hi < den: the quotient is below gross
	return int64(q)
}

// IssueInvoice issues the order's one invoice.
func (b *Billing) IssueInvoice(id string, number Number, d InvoiceDraft, at time.Time) (Invoice, error) {
	if b.invoice != nil {
		return Invoice{}, fmt.Errorf("order %s has invoice %s: %w", b.orderID, b.invoice.Number, ErrAlreadyInvoiced)
	}
	if id == "" || number.Series != SeriesInvoice || number.Seq < 1 {
		return Invoice{}, fmt.Errorf("%w: invoice id %q number %s", ErrInvalid, id, number)
	}
	lines, net, vat, total, err := PriceInvoice(d)
	if err != nil {
		return Invoice{}, err
	}
	b.invoice = &Invoice{ID: id, Number: number, OrderID: b.orderID, UserID: b.userID, PaymentID: d.PaymentID,
		VATRate: d.VATRate, Lines: lines, Net: net, VAT: vat, Total: total, BillingAddress: d.BillingAddress, IssuedAt: at}
	inv, _ := b.Invoice()
	return inv, nil
}

// RecordRefund notes a refund reported for the order; it reports false for
// a refund already known.
func (b *Billing) RecordRefund(r Refund) (bool, error) {
	if r.RefundID == "" || r.Reason == "" {
		return false, fmt.Errorf("%w: refund id and reason are required", ErrInvalid)
	}
	if _, err := NewMoney(r.Amount.AmountMinor, r.Amount.Currency); err != nil {
		return false, err
	}
	if _, ok := b.refund(r.RefundID); ok {
		return false, nil
	}
	b.refunds = append(b.refunds, r)
	return true, nil
}

// Uncredited returns the refunds without a credit note, oldest first.
func (b *Billing) Uncredited() []Refund {
	var out []Refund
	for _, r := range b.refunds {
		if !b.credited(r.RefundID) {
			out = append(out, r)
		}
	}
	return out
}

// IssueCreditNote credits the invoice for a known refund, once per refund,
// and never for more than the invoice's total minus what was credited
// before.
func (b *Billing) IssueCreditNote(id string, number Number, refundID string, at time.Time) (CreditNote, error) {
	if b.invoice == nil {
		return CreditNote{}, fmt.Errorf("credit refund %s of order %s: %w", refundID, b.orderID, ErrNoInvoice)
	}
	r, ok := b.refund(refundID)
	if !ok {
		return CreditNote{}, fmt.Errorf("%w: unknown refund %s", ErrInvalid, refundID)
	}
	if b.credited(refundID) {
		return CreditNote{}, fmt.Errorf("refund %s: %w", refundID, ErrAlreadyCredited)
	}
	if id == "" || number.Series != SeriesCreditNote || number.Seq < 1 {
		return CreditNote{}, fmt.Errorf("%w: credit note id %q number %s", ErrInvalid, id, number)
	}
	var credited int64
	for _, n := range b.creditNotes {
		credited += n.Amount.AmountMinor
	}
	if r.Amount.Currency != b.invoice.Total.Currency || r.Amount.AmountMinor > b.invoice.Total.AmountMinor-credited {
		return CreditNote{}, fmt.Errorf("credit %d %s on invoice %s of %d %s (%d credited): %w", r.Amount.AmountMinor,
			r.Amount.Currency, b.invoice.Number, b.invoice.Total.AmountMinor, b.invoice.Total.Currency, credited, ErrOverCredit)
	}
	n := CreditNote{ID: id, Number: number, InvoiceID: b.invoice.ID, RefundID: refundID, Amount: r.Amount,
		Reason: r.Reason, IssuedAt: at}
	b.creditNotes = append(b.creditNotes, n)
	return n, nil
}

func (b *Billing) refund(id string) (Refund, bool) {
	for _, r := range b.refunds {
		if r.RefundID == id {
			return r, true
		}
	}
	return Refund{}, false
}

func (b *Billing) credited(refundID string) bool {
	for _, n := range b.creditNotes {
		if n.RefundID == refundID {
			return true
		}
	}
	return false
}

// isCurrencyCode reports whether s has the shape of an ISO 4217 code.
func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
