package domain

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"text/template"
)

// Template names. Each is rendered into a subject line and a plain-text body.
const (
	TemplateWelcome            = "welcome"
	TemplateAddressChanged     = "address_changed"
	TemplateAccountDeactivated = "account_deactivated"
	TemplateOrderPlaced        = "order_placed"
	TemplateOrderConfirmed     = "order_confirmed"
	TemplateOrderCancelled     = "order_cancelled"
	TemplateOrderShipped       = "order_shipped"
	TemplateOrderDelivered     = "order_delivered"
	TemplateRefundIssued       = "refund_issued"
	TemplateInvoiceIssued      = "invoice_issued"
	TemplateCreditNoteIssued   = "credit_note_issued"
	TemplatePointsAwarded      = "points_awarded"

	TemplateStaffLowStock             = "staff_low_stock"
	TemplateStaffShipmentFailed       = "staff_shipment_failed"
	TemplateStaffEnrolmentBonusFailed = "staff_enrolment_bonus_failed"
)

// Data is what templates can use. The app fills the fields an event
// provides; money is already formatted (FormatMoney).
type Data struct {
	// Name is the customer's display name ("" when not known yet).
	Name   string
	UserID string

	OrderID string
	Lines   []LineData
	Total   string
	// Reason is a sentence fragment saying why (a cancellation, a failure).
	Reason string
	// Refund says a cancelled order's payment is being refunded.
	Refund bool

	Carrier        string
	TrackingNumber string

	InvoiceNumber    string
	CreditNoteNumber string
	Amount           string

	Points  int
	Balance int

	Address string

	ProductID string
	SKU       string
	Available int
	Threshold int
	Detail    string
}

// LineData is one order line for templates.
type LineData struct {
	Name      string
	SKU       string
	Quantity  int
	UnitPrice string
	Total     string
}

// Template is a named subject and body for one audience.
type Template struct {
	Name     string
	Audience Audience
	// Transactional templates concern the recipient's orders, money or
	// account; they reach deactivated accounts too.
	Transactional bool
	subject, body *template.Template
}

type source struct {
	name          string
	audience      Audience
	transactional bool
	subject, body string
}

const greeting = `Hello{{with .Name}} {{.}}{{end}},
`

const signature = `
-- 
shopmesh
`

const lines = `{{range .Lines}}  {{.Quantity}} x {{.Name}} ({{.SKU}}) at {{.UnitPrice}} = {{.Total}}
{{end}}`

var sources = []source{
	{TemplateWelcome, AudienceCustomer, false,
		`Welcome to shopmesh`,
		greeting + `
your shopmesh account is ready. Happy shopping!
` + signature},
	{TemplateAddressChanged, AudienceCustomer, true,
		`Your default address was changed`,
		greeting + `
your default shipping address is now:

  {{.Address}}

If you did not make this change, please contact us.
` + signature},
	{TemplateAccountDeactivated, AudienceCustomer, true,
		`Your shopmesh account was deactivated`,
		greeting + `
your shopmesh account has been deactivated and can no longer be used to sign in.
Your order history is kept. Please contact us if you think this is a mistake.
` + signature},
	{TemplateOrderPlaced, AudienceCustomer, true,
		`We received your order {{.OrderID}}`,
		greeting + `
thank you for your order {{.OrderID}}. We are checking stock and payment now.

` + lines + `
Total: {{.Total}}
` + signature},
	{TemplateOrderConfirmed, AudienceCustomer, true,
		`Your order {{.OrderID}} is confirmed`,
		greeting + `
your order {{.OrderID}} is confirmed and your payment of {{.Total}} was accepted.
We will let you know when it ships.
` + signature},
	{TemplateOrderCancelled, AudienceCustomer, true,
		`Your order {{.OrderID}} was cancelled`,
		greeting + `
we are sorry: your order {{.OrderID}} was cancelled because {{.Reason}}.
{{if .Refund}}Your payment of {{.Total}} will be refunded.
{{else}}You have not been charged.
{{end}}` + signature},
	{TemplateOrderShipped, AudienceCustomer, true,
		`Your order {{.OrderID}} is on its way`,
		greeting + `
your order {{.OrderID}} has shipped with {{.Carrier}}.
Tracking number: {{.TrackingNumber}}
` + signature},
	{TemplateOrderDelivered, AudienceCustomer, true,
		`Your order {{.OrderID}} was delivered`,
		greeting + `
your order {{.OrderID}} was delivered. Enjoy!
` + signature},
	{TemplateRefundIssued, AudienceCustomer, true,
		`Refund of {{.Amount}} for order {{.OrderID}}`,
		greeting + `
we have refunded {{.Amount}} for your order {{.OrderID}}{{with .Reason}} ({{.}}){{end}}.
It may take a few days to appear on your statement.
` + signature},
	{TemplateInvoiceIssued, AudienceCustomer, true,
		`Invoice {{.InvoiceNumber}} for order {{.OrderID}}`,
		greeting + `
your invoice {{.InvoiceNumber}} for order {{.OrderID}} is ready.

` + lines + `
Total: {{.Total}}
` + signature},
	{TemplateCreditNoteIssued, AudienceCustomer, true,
		`Credit note {{.CreditNoteNumber}} for order {{.OrderID}}`,
		greeting + `
we issued credit note {{.CreditNoteNumber}} over {{.Amount}} for your order {{.OrderID}}.
` + signature},
	{TemplatePointsAwarded, AudienceCustomer, false,
		`You earned {{.Points}} loyalty points`,
		greeting + `
you earned {{.Points}} loyalty points{{with .Reason}} {{.}}{{end}}. Your balance is now {{.Balance}} points.
` + signature},

	{TemplateStaffLowStock, AudienceStaff, true,
		`Low stock: {{.SKU}} ({{.Available}} left)`,
		`Product {{.SKU}} ({{.ProductID}}) is low on stock: {{.Available}} available, threshold {{.Threshold}}.
An automatic restock has been requested; check that it arrives.
`},
	{TemplateStaffShipmentFailed, AudienceStaff, true,
		`Shipment failed for order {{.OrderID}}`,
		`The shipment of order {{.OrderID}} could not be delivered: {{.Reason}}{{with .Detail}} ({{.}}){{end}}.
The order is being cancelled and refunded automatically; follow up with the carrier.
`},
	{TemplateStaffEnrolmentBonusFailed, AudienceStaff, true,
		`Loyalty enrolment bonus failed for user {{.UserID}}`,
		`The loyalty enrolment bonus for user {{.UserID}} could not be awarded: {{.Reason}}.
The enrolment was rolled back; the user may need to be enrolled again.
`},
}

// Templates is the parsed set of templates.
type Templates struct {
	byName map[string]*Template
}

// NewTemplates parses every built-in template. Missing data fields are
// errors at render time, never silently empty output.
func NewTemplates() (*Templates, error) {
	ts := &Templates{byName: map[string]*Template{}}
	for _, s := range sources {
		subject, err := template.New(s.name + ".subject").Option("missingkey=error").Parse(s.subject)
		if err != nil {
			return nil, fmt.Errorf("template %s subject: %w", s.name, err)
		}
		body, err := template.New(s.name + ".body").Option("missingkey=error").Parse(s.body)
		if err != nil {
			return nil, fmt.Errorf("template %s body: %w", s.name, err)
		}
		ts.byName[s.name] = &Template{Name: s.name, Audience: s.audience, Transactional: s.transactional, subject: subject, body: body}
	}
	return ts, nil
}

// Lookup returns the named template.
func (ts *Templates) Lookup(name string) (*Template, bool) {
	t, ok := ts.byName[name]
	return t, ok
}

// Names lists every template, sorted.
func (ts *Templates) Names() []string {
	names := make([]string, 0, len(ts.byName))
	for n := range ts.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// maxSubject bounds a rendered subject (mail headers fold beyond ~78).
const maxSubject = 200

// Render fills t with data. The subject is one line, collapsed and trimmed.
func (t *Template) Render(data Data) (subject, body string, err error) {
	var sb, bb bytes.Buffer
	if err := t.subject.Execute(&sb, data); err != nil {
		return "", "", fmt.Errorf("render %s: %w", t.Name, err)
	}
	if err := t.body.Execute(&bb, data); err != nil {
		return "", "", fmt.Errorf("render %s: %w", t.Name, err)
	}
	subject = strings.Join(strings.Fields(sb.String()), " ")
	if r := []rune(subject); len(r) > maxSubject {
		subject = string(r[:maxSubject-1]) + "…"
	}
	return subject, bb.String(), nil
}

// minorDigits are the ISO 4217 minor unit exponents that differ from 2.
var minorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// FormatMoney renders an amount in minor units: FormatMoney(1250, "EUR")
// is "EUR 12.50".
func FormatMoney(amountMinor int64, currency string) string {
	digits, ok := minorDigits[currency]
	if !ok {
		digits = 2
	}
	sign := ""
	if amountMinor < 0 {
		sign = "-"
		amountMinor = -amountMinor
	}
	if digits == 0 {
		return fmt.Sprintf("%s %s%d", currency, sign, amountMinor)
	}
	scale := int64(1)
	for range digits {
		scale *= 10
	}
	return fmt.Sprintf("%s %s%d.%0*d", currency, sign, amountMinor/scale, digits, amountMinor%scale)
}
