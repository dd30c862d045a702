package demo

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// customerPlan is a customer and the orders it places, one after another.
type customerPlan struct {
	name, email string
	orders      []*orderPlan
}

// orderPlan is one order: the path it must take and what it holds.
type orderPlan struct {
	index int // in the plan, and in Summary.Orders
	spec  pathSpec
	lines []orderLine
}

type orderLine struct {
	product  *product
	quantity int
}

func (o *orderPlan) describe() string {
	parts := make([]string, len(o.lines))
	for i, l := range o.lines {
		parts[i] = fmt.Sprintf("%d × %s", l.quantity, l.product.Name)
	}
	return strings.Join(parts, ", ")
}

// customerNames are who shops in the demo.
func customerNames() []string {
	return []string{"Ada", "Grace", "Alan", "Barbara", "Edsger", "Margaret", "Ken", "Radia",
		"Dennis", "Frances", "Tony", "Hedy", "Niklaus", "Sophie", "John", "Annie"}
}

// plan deals the paths out to the customers in turn and chooses, with the
// run's seed, who the customers are and what each order holds.
func (d *demo) plan(products []*product, plays int) []*customerPlan {
	names := customerNames()
	d.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	customers := make([]*customerPlan, d.cfg.Customers)
	for i := range customers {
		name := names[i%len(names)]
		if round := i / len(names); round > 0 {
			name += " " + strconv.Itoa(round+1)
		}
		local := strings.ToLower(strings.ReplaceAll(name, " ", ""))
		customers[i] = &customerPlan{name: name, email: fmt.Sprintf("%s.%s@example.com", local, strings.ToLower(d.run))}
	}
	specs, reg, sc := pathSpecs(), regular(products), scarce(products)
	for i := range plays {
		o := &orderPlan{index: i, spec: specs[i%len(specs)]}
		if o.spec.path == PathOutOfStock {
			o.lines = []orderLine{{sc[d.rng.IntN(len(sc))], scarceOrder}}
		} else {
			for _, k := range d.rng.Perm(len(reg))[:1+d.rng.IntN(2)] {
				o.lines = append(o.lines, orderLine{reg[k], 1 + d.rng.IntN(maxUnits)})
			}
		}
		c := customers[i%len(customers)]
		c.orders = append(c.orders, o)
	}
	return customers
}

// playCustomer registers the customer and checks out its orders in turn;
// each order is then followed in its own goroutine (added to wg) while the
// next is placed. It writes each order's result at its index in results.
func (d *demo) playCustomer(ctx context.Context, c *customerPlan, results []OrderResult, wg *sync.WaitGroup) {
	api, err := d.register(ctx, c)
	if err != nil {
		for _, o := range c.orders {
			results[o.index] = d.unplaced(c, o, fmt.Errorf("register %s: %w", c.email, err))
		}
		return
	}
	for _, o := range c.orders {
		id, err := d.checkout(ctx, api, o)
		if err != nil {
			results[o.index] = d.unplaced(c, o, err)
			continue
		}
		checkedOut := time.Now()
		d.printPlaced(c, o, id)
		wg.Go(func() { results[o.index] = d.follow(ctx, api, c, o, id, checkedOut) })
	}
}

// register creates the customer's account and logs it in.
func (d *demo) register(ctx context.Context, c *customerPlan) (*client, error) {
	password := "demo-" + crand.Text()
	if err := d.api.call(ctx, http.StatusCreated, nil, http.MethodPost, "/api/v1/auth/register",
		map[string]string{"email": c.email, "password": password, "name": c.name}); err != nil {
		return nil, err
	}
	tok, err := d.login(ctx, c.email, password)
	if err != nil {
		return nil, err
	}
	return d.api.as(tok), nil
}

// checkout fills the cart with the order's lines and checks it out. The
// cart learns products from catalogue events, so a product it does not know
// yet is tried again; a checkout whose answer is lost is sent again with the
// same Idempotency-Key, which yields the same order.
func (d *demo) checkout(ctx context.Context, api *client, o *orderPlan) (string, error) {
	for _, l := range o.lines {
		path := "/api/v1/cart/items/" + l.product.ID
		err := poll(ctx, d.deadline(), d.cfg.PollInterval, "put "+l.product.SKU+" in the cart", func(ctx context.Context) error {
			err := api.call(ctx, http.StatusOK, nil, http.MethodPut, path, map[string]int{"quantity": l.quantity})
			if err != nil && !hasStatus(err, http.StatusNotFound) && isClientError(err) {
				return permanent(err)
			}
			return err
		})
		if err != nil {
			d.emptyCart(ctx, api, o)
			return "", err
		}
	}
	want := o.spec.want
	body := map[string]any{
		"shipping_address": map[string]string{"name": "Demo Customer", "line1": "1 Analytical Way", "city": "London",
			"postal_code": "N1 9GU", "country": want.country},
		"payment": map[string]string{"token": want.token},
	}
	key := "demo-" + crand.Text()
	var placed struct {
		OrderID string `json:"order_id"`
	}
	err := poll(ctx, d.deadline(), d.cfg.PollInterval, "checkout", func(ctx context.Context) error {
		err := api.call(ctx, http.StatusAccepted, &placed, http.MethodPost, "/api/v1/cart/checkout", body, "Idempotency-Key", key)
		if isClientError(err) {
			return permanent(err)
		}
		return err
	})
	if err == nil && placed.OrderID == "" {
		err = fmt.Errorf("checkout answered without an order id")
	}
	if err != nil {
		d.emptyCart(ctx, api, o)
		return "", err
	}
	return placed.OrderID, nil
}

// emptyCart removes an order's lines after a failed checkout, so that they
// do not end up in the customer's next order. Best effort: the failure that
// led here is what gets reported.
func (d *demo) emptyCart(ctx context.Context, api *client, o *orderPlan) {
	for _, l := range o.lines {
		_ = api.call(ctx, http.StatusOK, nil, http.MethodDelete, "/api/v1/cart/items/"+l.product.ID, nil)
	}
}

// isClientError reports whether err is a 4xx answer other than 429 (which
// call already retries): a request that sending again cannot fix.
func isClientError(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status >= 400 && se.Status < 500
}

// orderView is the public order view.
type orderView struct {
	Status             string          `json:"status"`
	CancellationReason *string         `json:"cancellation_reason"`
	Total              money           `json:"total"`
	Timeline           []TimelineEntry `json:"timeline"`
}

func (v orderView) reason() string {
	if v.CancellationReason == nil {
		return ""
	}
	return *v.CancellationReason
}

// terminal reports whether an order in status s can no longer change status.
func terminal(s string) bool { return s == "delivered" || s == "cancelled" }

// follow watches a placed order until it settles (its terminal state and,
// when it ends as expected, the timeline entries its path settles with) or
// its deadline passes; the customer-cancel path cancels it first, once it is
// pending with its stock reserved. It prints the order when it settles, then
// waits for its payment, shipment and invoice views to agree.
func (d *demo) follow(ctx context.Context, api *client, c *customerPlan, o *orderPlan, id string, checkedOut time.Time) OrderResult {
	want := o.spec.want
	res := OrderResult{Customer: c.name, Path: o.spec.path, OrderID: id, WantStatus: want.status, WantReason: want.reason}
	deadline := checkedOut.Add(d.cfg.Wait)
	var seen orderView
	read := func(ctx context.Context) error {
		var v orderView
		if err := api.call(ctx, http.StatusOK, &v, http.MethodGet, "/api/v1/orders/"+id, nil); err != nil {
			return err
		}
		seen = v
		return nil
	}

	if want.cancel {
		err := poll(ctx, deadline, d.cfg.PollInterval, "wait until pending with stock reserved", func(ctx context.Context) error {
			if err := read(ctx); err != nil {
				return err
			}
			if seen.Status != "pending" {
				return permanent(fmt.Errorf("the order became %s first", seen.Status))
			}
			if !hasAll(seen.Timeline, []string{"payment_requested"}) {
				return fmt.Errorf("pending: %s", timelineTypes(seen.Timeline))
			}
			return nil
		})
		if err == nil {
			err = api.call(ctx, http.StatusAccepted, nil, http.MethodPost, "/api/v1/orders/"+id+"/cancel", nil)
		}
		if err != nil {
			res.Problems = append(res.Problems, "customer cancel: "+err.Error())
		} else {
			d.printCancelled(c, o, id)
		}
	}

	err := poll(ctx, deadline, d.cfg.PollInterval, "settle", func(ctx context.Context) error {
		if err := read(ctx); err != nil {
			return err
		}
		if terminal(seen.Status) && (seen.Status != want.status || seen.reason() != want.reason) {
			return nil // a wrong end: final, judged below
		}
		if seen.Status != want.status || !hasAll(seen.Timeline, want.settledBy) {
			return fmt.Errorf("%s: %s", seen.Status, timelineTypes(seen.Timeline))
		}
		return nil
	})
	res.Status, res.Reason, res.Timeline = seen.Status, seen.reason(), seen.Timeline
	switch {
	case err != nil:
		res.Problems = append(res.Problems, err.Error())
	case res.Status != want.status || res.Reason != want.reason:
		res.Settled = time.Since(checkedOut)
		res.Problems = append(res.Problems, fmt.Sprintf("ended %s, want %s", statusText(res.Status, res.Reason), statusText(want.status, want.reason)))
	default:
		res.Settled = time.Since(checkedOut)
	}
	d.printSettled(res)

	// Views settle after the order: a refund or a credit note follows the
	// cancellation. An order that went astray is shown as it is, not waited on.
	viewsDeadline := d.deadline()
	if !res.OK() {
		viewsDeadline = time.Now()
	}
	v, err := d.views(ctx, api, id, want, viewsDeadline)
	res.Payment, res.Shipment, res.Invoice = v.payment, v.shipment, v.invoice
	if err != nil && res.OK() {
		res.Problems = append(res.Problems, err.Error())
	}
	return res
}

// unplaced is the result of an order that could not be placed.
func (d *demo) unplaced(c *customerPlan, o *orderPlan, err error) OrderResult {
	want := o.spec.want
	res := OrderResult{Customer: c.name, Path: o.spec.path, WantStatus: want.status, WantReason: want.reason,
		Problems: []string{"not placed: " + err.Error()}}
	d.printSettled(res)
	return res
}

// viewTexts describe an order's views; "" is no view.
type viewTexts struct{ payment, shipment, invoice string }

type paymentView struct {
	Status        string `json:"status"`
	Amount        money  `json:"amount"`
	DeclineReason string `json:"decline_reason"`
	Refunds       []struct {
		Amount money  `json:"amount"`
		Status string `json:"status"`
	} `json:"refunds"`
}

type shipmentView struct {
	Status        string  `json:"status"`
	Carrier       string  `json:"carrier"`
	Tracking      *string `json:"tracking"`
	FailureReason string  `json:"failure_reason"`
}

// document is an invoice or a credit note.
type document struct {
	Number string `json:"number"`
	Total  *money `json:"total"`
	Amount *money `json:"amount"`
}

func (d document) String() string {
	switch {
	case d.Total != nil:
		return d.Number + " " + d.Total.String()
	case d.Amount != nil:
		return d.Number + " " + d.Amount.String()
	}
	return d.Number
}

// invoiceView accepts a list of credit notes or a single one.
type invoiceView struct {
	Invoice     *document  `json:"invoice"`
	CreditNotes []document `json:"credit_notes"`
	CreditNote  *document  `json:"credit_note"`
}

func (v invoiceView) creditNotes() []document {
	if v.CreditNote != nil && len(v.CreditNotes) == 0 {
		return []document{*v.CreditNote}
	}
	return v.CreditNotes
}

// views polls the order's payment, shipment and invoice until they show what
// the path leaves behind, or deadline passes; it returns them as last seen.
func (d *demo) views(ctx context.Context, api *client, id string, want expectation, deadline time.Time) (viewTexts, error) {
	var texts viewTexts
	err := poll(ctx, deadline, d.cfg.PollInterval, "views", func(ctx context.Context) error {
		var pay paymentView
		var ship shipmentView
		var inv invoiceView
		hasPay, err := fetch(ctx, api, "/api/v1/orders/"+id+"/payment", &pay)
		if err != nil {
			return err
		}
		hasShip, err := fetch(ctx, api, "/api/v1/orders/"+id+"/shipment", &ship)
		if err != nil {
			return err
		}
		hasInv, err := fetch(ctx, api, "/api/v1/orders/"+id+"/invoice", &inv)
		if err != nil {
			return err
		}
		hasInv = hasInv && inv.Invoice != nil
		texts = viewTexts{payment: describePayment(hasPay, pay), shipment: describeShipment(hasShip, ship), invoice: describeInvoice(hasInv, inv)}
		var wrong []string
		if statusIf(hasPay, pay.Status) != want.payment || len(pay.Refunds) != want.refunds {
			wrong = append(wrong, fmt.Sprintf("payment %s, want %s", orNone(texts.payment), orNone(want.payment)+count(want.refunds, "refund")))
		}
		if statusIf(hasShip, ship.Status) != want.shipment {
			wrong = append(wrong, fmt.Sprintf("shipment %s, want %s", orNone(texts.shipment), orNone(want.shipment)))
		}
		if hasInv != want.invoice || len(inv.creditNotes()) != want.creditNotes {
			wantInv := "none"
			if want.invoice {
				wantInv = "an invoice" + count(want.creditNotes, "credit note")
			}
			wrong = append(wrong, fmt.Sprintf("invoice %s, want %s", orNone(texts.invoice), wantInv))
		}
		if len(wrong) > 0 {
			return errors.New(strings.Join(wrong, "; "))
		}
		return nil
	})
	return texts, err
}

// fetch reads a view that may not exist: found is false on a 404.
func fetch(ctx context.Context, api *client, path string, out any) (found bool, err error) {
	err = api.call(ctx, http.StatusOK, out, http.MethodGet, path, nil)
	if hasStatus(err, http.StatusNotFound) {
		return false, nil
	}
	return err == nil, err
}

func describePayment(ok bool, p paymentView) string {
	if !ok {
		return ""
	}
	s := p.Status + " " + p.Amount.String()
	if p.DeclineReason != "" {
		s += " (" + p.DeclineReason + ")"
	}
	return s + count(len(p.Refunds), "refund")
}

func describeShipment(ok bool, s shipmentView) string {
	if !ok {
		return ""
	}
	out := s.Status
	if s.FailureReason != "" {
		out += " (" + s.FailureReason + ")"
	}
	if s.Carrier != "" {
		out += " · " + s.Carrier
	}
	if s.Tracking != nil && *s.Tracking != "" {
		out += " " + *s.Tracking
	}
	return out
}

func describeInvoice(ok bool, v invoiceView) string {
	if !ok {
		return ""
	}
	s := v.Invoice.String()
	for _, cn := range v.creditNotes() {
		s += " · credit note " + cn.String()
	}
	return s
}

// count says ", n things" for n > 0, and nothing otherwise.
func count(n int, thing string) string {
	switch {
	case n <= 0:
		return ""
	case n == 1:
		return ", 1 " + thing
	}
	return fmt.Sprintf(", %d %ss", n, thing)
}

// statusIf is a view's status, or "" when there is no view.
func statusIf(found bool, status string) string {
	if !found {
		return ""
	}
	return status
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
