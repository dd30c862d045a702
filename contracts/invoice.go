package contracts

// Event types published by the invoice service.
const (
	TypeInvoiceIssuedV1    = "invoice.invoice_issued.v1"
	TypeCreditNoteIssuedV1 = "invoice.credit_note_issued.v1"
)

// InvoiceIssuedV1 is invoice.invoice_issued.v1: an invoice was issued for a
// confirmed order, one per order.
type InvoiceIssuedV1 struct {
	InvoiceID      string  `json:"invoice_id"`
	Number         string  `json:"number"`
	OrderID        string  `json:"order_id"`
	UserID         string  `json:"user_id"`
	Lines          []Line  `json:"lines"`
	Total          Money   `json:"total"`
	BillingAddress Address `json:"billing_address"`
}

// CreditNoteIssuedV1 is invoice.credit_note_issued.v1: a credit note was
// issued against an invoice for a refund, one per refunded order.
type CreditNoteIssuedV1 struct {
	CreditNoteID string `json:"credit_note_id"`
	Number       string `json:"number"`
	InvoiceID    string `json:"invoice_id"`
	OrderID      string `json:"order_id"`
	UserID       string `json:"user_id"`
	RefundID     string `json:"refund_id"`
	Amount       Money  `json:"amount"`
}
