package invoice_test

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type money = contracts.Money

type invoiceView struct {
	Invoice *struct {
		InvoiceID string `json:"invoice_id"`
		Number    string `json:"number"`
		OrderID   string `json:"order_id"`
		Lines     []struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
			Net      money  `json:"net"`
			VAT      money  `json:"vat"`
			Total    money  `json:"total"`
		} `json:"lines"`
		VATRateBasisPoints int   `json:"vat_rate_basis_points"`
		Net                money `json:"net"`
		VAT                money `json:"vat"`
		Total              money `json:"total"`
	} `json:"invoice"`
	CreditNotes []struct {
		CreditNoteID string `json:"credit_note_id"`
		Number       string `json:"number"`
		InvoiceID    string `json:"invoice_id"`
		RefundID     string `json:"refund_id"`
		Amount       money  `json:"amount"`
		Reason       string `json:"reason"`
	} `json:"credit_notes"`
}

func confirmed(orderID, userID string) contracts.OrderConfirmedV1 {
	return contracts.OrderConfirmedV1{
		OrderID: orderID, UserID: userID, PaymentID: newID(),
		Lines: []contracts.Line{
			{ProductID: newID(), SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: eur(1190)},
			{ProductID: newID(), SKU: "TEA-1", Name: "Tea", Quantity: 1, UnitPrice: eur(499)},
		},
		Total: eur(2879),
		ShippingAddress: contracts.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "Berlin", PostalCode: "10115",
			Country: "DE"},
	}
}

func refunded(orderID, userID, refundID string) contracts.PaymentRefundedV1 {
	return contracts.PaymentRefundedV1{RefundID: refundID, PaymentID: newID(), OrderID: orderID, UserID: userID,
		Amount: eur(2879), Reason: contracts.ReasonUndeliverable}
}

func (h *harness) invoice(orderID, userID string) invoiceView {
	h.t.Helper()
	var v invoiceView
	if status, _ := h.get(http.MethodGet, fmtPath("/api/v1/orders/%s/invoice", orderID), userID, &v); status != http.StatusOK {
		h.t.Fatalf("GET invoice of %s: %d, want 200", orderID, status)
	}
	return v
}

func (h *harness) outboxCount(eventType string) int {
	return h.Query(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1`, eventType)
}

func number(series string, seq int) string {
	return fmt.Sprintf("%s-%04d-%06d", series, time.Now().UTC().Year(), seq)
}

func TestOneInvoicePerOrderAndOneCreditNotePerRefund(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	orderID, userID := newID(), newID()
	id := newID()
	h.Publish(id, contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID))
	h.Publish(id, contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID))      // redelivered
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID)) // published again
	h.Eventually("the invoice", func() bool { return len(h.Events(contracts.TypeInvoiceIssuedV1)) == 1 })
	h.Eventually("all three deliveries", func() bool {
		return h.Duplicates() == 1 && h.Query(`SELECT count(*) FROM inbox`) == 2
	})
	if n := h.outboxCount(contracts.TypeInvoiceIssuedV1); n != 1 {
		t.Errorf("invoices issued = %d, want 1", n)
	}
	issued := published[contracts.InvoiceIssuedV1](h, contracts.TypeInvoiceIssuedV1)[0]
	if issued.Number != number("INV", 1) || issued.OrderID != orderID || issued.UserID != userID || issued.Total != eur(2879) ||
		len(issued.Lines) != 2 || issued.BillingAddress.City != "Berlin" {
		t.Errorf("invoice issued = %+v", issued)
	}
	v := h.invoice(orderID, userID)
	if v.Invoice == nil || v.Invoice.InvoiceID != issued.InvoiceID || v.Invoice.Number != issued.Number || len(v.CreditNotes) != 0 {
		t.Fatalf("invoice = %+v", v)
	}
	// 19 % included: 2380 -> VAT 380; 499 -> VAT 80.
	if v.Invoice.Total != eur(2879) || v.Invoice.VAT != eur(460) || v.Invoice.Net != eur(2419) || v.Invoice.VATRateBasisPoints != 1900 {
		t.Errorf("totals: net %v vat %v total %v rate %d", v.Invoice.Net, v.Invoice.VAT, v.Invoice.Total, v.Invoice.VATRateBasisPoints)
	}
	if l := v.Invoice.Lines[0]; l.SKU != "MUG-1" || l.Quantity != 2 || l.Total != eur(2380) || l.VAT != eur(380) || l.Net != eur(2000) {
		t.Errorf("line = %+v", l)
	}

	refundID := newID()
	id = newID()
	h.Publish(id, contracts.TypePaymentRefundedV1, orderID, refunded(orderID, userID, refundID))
	h.Publish(id, contracts.TypePaymentRefundedV1, orderID, refunded(orderID, userID, refundID))
	h.Publish(newID(), contracts.TypePaymentRefundedV1, orderID, refunded(orderID, userID, refundID))
	h.Eventually("the credit note", func() bool { return len(h.Events(contracts.TypeCreditNoteIssuedV1)) == 1 })
	h.Eventually("all refund deliveries", func() bool {
		return h.Duplicates() == 2 && h.Query(`SELECT count(*) FROM inbox`) == 4
	})
	if n := h.outboxCount(contracts.TypeCreditNoteIssuedV1); n != 1 {
		t.Errorf("credit notes issued = %d, want 1", n)
	}
	note := published[contracts.CreditNoteIssuedV1](h, contracts.TypeCreditNoteIssuedV1)[0]
	if note.Number != number("CN", 1) || note.InvoiceID != issued.InvoiceID || note.RefundID != refundID || note.Amount != eur(2879) {
		t.Errorf("credit note issued = %+v", note)
	}
	v = h.invoice(orderID, userID)
	if len(v.CreditNotes) != 1 || v.CreditNotes[0].CreditNoteID != note.CreditNoteID || v.CreditNotes[0].Reason != "undeliverable" {
		t.Errorf("credit notes = %+v", v.CreditNotes)
	}
}

func TestConcurrentInvoicesAreNumberedWithoutGaps(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	const orders = 30
	userID := newID()
	for range orders {
		orderID := newID()
		h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID))
	}
	h.Eventually("every invoice", func() bool { return len(h.Events(contracts.TypeInvoiceIssuedV1)) == orders })
	var numbers []string
	for _, e := range published[contracts.InvoiceIssuedV1](h, contracts.TypeInvoiceIssuedV1) {
		numbers = append(numbers, e.Number)
	}
	sort.Strings(numbers)
	for i, n := range numbers {
		if want := number("INV", i+1); n != want {
			t.Fatalf("numbers %v: #%d is %s, want %s", numbers, i+1, n, want)
		}
	}
}

func TestRefundBeforeInvoiceIsCreditedWithTheInvoice(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	orderID, userID := newID(), newID()
	refundID := newID()
	h.Publish(newID(), contracts.TypePaymentRefundedV1, orderID, refunded(orderID, userID, refundID))
	h.Eventually("the refund", func() bool { return h.Query(`SELECT count(*) FROM refunds`) == 1 })
	if n := h.Query(`SELECT count(*) FROM watermill_outbox`); n != 0 {
		t.Errorf("published %d events for a refund without invoice, want 0", n)
	}
	h.ExpectProblem(http.MethodGet, fmtPath("/api/v1/orders/%s/invoice", orderID), servicetest.AsCustomer(userID), http.StatusNotFound)

	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID))
	h.Eventually("the credit note", func() bool { return len(h.Events(contracts.TypeCreditNoteIssuedV1)) == 1 })
	v := h.invoice(orderID, userID)
	if v.Invoice == nil || len(v.CreditNotes) != 1 || v.CreditNotes[0].RefundID != refundID || v.CreditNotes[0].InvoiceID != v.Invoice.InvoiceID {
		t.Errorf("invoice = %+v", v)
	}
}

func TestInvoiceAPI(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID))
	path := fmtPath("/api/v1/orders/%s/invoice", orderID)
	h.Eventually("the invoice", func() bool { s, _ := h.get(http.MethodGet, path, userID, nil); return s == http.StatusOK })
	cases := []struct {
		name, method, path, user string
		want                     int
	}{
		{"another customer's invoice", http.MethodGet, path, newID(), http.StatusNotFound},
		{"no identity", http.MethodGet, path, "", http.StatusUnauthorized},
		{"unknown order", http.MethodGet, fmtPath("/api/v1/orders/%s/invoice", newID()), userID, http.StatusNotFound},
		{"malformed id", http.MethodGet, "/api/v1/orders/INV-2026-000001/invoice", userID, http.StatusBadRequest},
		{"wrong method", http.MethodPut, path, userID, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.For(t).ExpectProblem(c.method, c.path, servicetest.AsCustomer(c.user), c.want)
		})
	}
}
