package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
)

// Violation kinds: the columns of the report.
const (
	KindLost          = "lost"           // an accepted checkout or an effect that never happened
	KindDoubleApplied = "double_applied" // an effect applied (or announced) more than once
	KindStuck         = "stuck"          // an order that never reached a terminal state
	KindWrongOutcome  = "wrong_outcome"  // a terminal state or reason its path does not allow
	KindInconsistent  = "inconsistent"   // services disagree (stock balance, statuses)
	KindDeadLetter    = "dead_letter"    // a dead letter nobody expected
	KindUnsent        = "unsent"         // an outbox row still unsent after the drain
	KindNotAccepted   = "not_accepted"   // a checkout the clients could not get accepted
)

// Violation is one broken invariant.
type Violation struct {
	Kind    string `json:"kind"`
	Order   string `json:"order,omitempty"`
	Path    Path   `json:"path,omitempty"`
	Service string `json:"service,omitempty"`
	Detail  string `json:"detail"`
}

// ledgerInput is what the ledger check needs to know about a scenario.
type ledgerInput struct {
	w              *workload
	paymentTimeout time.Duration
	// expectedDead are poison message ids per service that must end in that
	// service's dead letters.
	expectedDead map[string][]string
	// deadBaseline is, per service, the highest dead-letter id before the
	// scenario started; only later ones are the scenario's.
	deadBaseline map[string]int64
	loyalty      bool
}

// ledger holds what the check read and found.
type ledger struct {
	Violations []Violation
	Accepted   int
	Outcomes   map[string]int // "delivered", "cancelled/payment_timeout", ...
	// Raced counts orders that legitimately ended another way than their
	// path's usual one because a fault delayed an answer past the payment
	// timeout (proved by the order's own timeline).
	Raced       int
	ExpectedDLQ int
}

func (l *ledger) add(kind, order string, path Path, service, format string, args ...any) {
	l.Violations = append(l.Violations, Violation{Kind: kind, Order: order, Path: path, Service: service, Detail: fmt.Sprintf(format, args...)})
}

// count returns the number of violations of a kind.
func (l *ledger) count(kind string) int {
	n := 0
	for _, v := range l.Violations {
		if v.Kind == kind {
			n++
		}
	}
	return n
}

// orderRow is an order as the order service stored it (toDomain's input).
type orderRow struct {
	ID, UserID, State, Reason                          string
	Lines                                              []orderLine
	PaymentID                                          string
	RefundRequested, Refunded, StockReleased, Returned bool
	Timeline                                           []timelineEntry
}

// orderLine is one stored line (the order service's lineJSON).
type orderLine struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

type timelineEntry struct {
	Type string
	At   time.Time
}

func (o orderRow) has(t string) bool {
	for _, e := range o.Timeline {
		if e.Type == t {
			return true
		}
	}
	return false
}

func (o orderRow) at(t string) (time.Time, bool) {
	for _, e := range o.Timeline {
		if e.Type == t {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// checkLedger reads every service's database and checks the invariants of
// the scenario's orders; pools maps service to an administrator pool.
func checkLedger(ctx context.Context, pools map[string]*pgxpool.Pool, in ledgerInput) (*ledger, error) {
	l := &ledger{Outcomes: map[string]int{}}
	w := in.w
	var users []string
	w.mu.Lock()
	for _, u := range w.users {
		if u != "" {
			users = append(users, u)
		}
	}
	placed := slices.Clone(w.placed)
	w.mu.Unlock()

	// Accepted checkouts are the cart's record, not only what clients saw:
	// an answer lost on the way still made an order.
	type checkout struct{ user, key, order string }
	accepted := map[string]checkout{} // by key
	rows, err := pools["cart"].Query(ctx, `SELECT user_id::text, idempotency_key, order_id::text FROM checkouts WHERE user_id::text = ANY($1)`, users)
	if err != nil {
		return nil, fmt.Errorf("read checkouts: %w", err)
	}
	for rows.Next() {
		var c checkout
		if err := rows.Scan(&c.user, &c.key, &c.order); err != nil {
			return nil, err
		}
		accepted[c.key] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	l.Accepted = len(accepted)
	byOrder := map[string]*placedOrder{}
	for _, p := range placed {
		c, ok := accepted[p.Key]
		switch {
		case ok && p.OrderID != "" && p.OrderID != c.order:
			l.add(KindDoubleApplied, p.OrderID, p.Path, "cart", "checkout key %s answered order %s but the cart recorded %s", p.Key, p.OrderID, c.order)
		case !ok && p.OrderID != "":
			l.add(KindLost, p.OrderID, p.Path, "cart", "checkout %s was answered 202 but the cart has no record of it", p.Key)
		case !ok:
			l.add(KindNotAccepted, "", p.Path, "cart", "order %d (%s) was never accepted: %v", p.Index, p.Key, p.Err)
			continue
		}
		if p.OrderID == "" {
			p.OrderID = c.order
		}
		byOrder[p.OrderID] = p
	}
	var ids []string
	for id := range byOrder {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	orders, err := readOrders(ctx, pools["order"], ids)
	if err != nil {
		return nil, err
	}
	reservations, err := readReservations(ctx, pools["inventory"], ids)
	if err != nil {
		return nil, err
	}
	payments, err := readPayments(ctx, pools["payment"], ids)
	if err != nil {
		return nil, err
	}
	invoices, notes, err := readInvoices(ctx, pools["invoice"], ids)
	if err != nil {
		return nil, err
	}
	shipments, err := readShipments(ctx, pools["shipping"], ids)
	if err != nil {
		return nil, err
	}
	events := map[string]map[string]int{} // order -> type -> distinct ids
	for _, svc := range []string{"order", "inventory", "payment", "shipping", "invoice", "loyalty"} {
		pool := pools[svc]
		if pool == nil {
			continue
		}
		if err := readEvents(ctx, pool, ids, events); err != nil {
			return nil, fmt.Errorf("%s outbox: %w", svc, err)
		}
	}

	points := map[string]int{}
	if in.loyalty {
		if points, err = readPoints(ctx, pools["loyalty"], ids); err != nil {
			return nil, err
		}
		if err := checkBalances(ctx, l, pools["loyalty"], users); err != nil {
			return nil, err
		}
	}

	deliveredQty := map[string]int{}
	for _, id := range ids {
		p := byOrder[id]
		o, ok := orders[id]
		if !ok {
			l.add(KindLost, id, p.Path, "order", "accepted checkout never became an order (cart.checked_out lost)")
			continue
		}
		outcome := o.State
		if o.State == "cancelled" {
			outcome += "/" + o.Reason
		}
		l.Outcomes[outcome]++
		if o.State != "delivered" && o.State != "cancelled" {
			l.add(KindStuck, id, p.Path, "order", "order is %s after the drain; timeline %s", o.State, timelineString(o))
			continue
		}
		checkOrderOutcome(l, p, o, in.paymentTimeout)
		// Each timeline step at most once, one terminal step.
		seen := map[string]int{}
		for _, e := range o.Timeline {
			seen[e.Type]++
		}
		for t, n := range seen {
			if n > 1 {
				l.add(KindDoubleApplied, id, p.Path, "order", "timeline step %s recorded %d times", t, n)
			}
		}
		if seen["delivered"] > 0 && seen["cancelled"] > 0 {
			l.add(KindDoubleApplied, id, p.Path, "order", "order both delivered and cancelled: %s", timelineString(o))
		}
		for typ, n := range events[id] {
			if n > 1 && onceTypes[typ] {
				l.add(KindDoubleApplied, id, p.Path, outboxService(typ), "%d distinct %s events for one order", n, typ)
			}
		}
		confirmed := o.has("confirmed")
		delivered := o.State == "delivered"
		if delivered {
			for _, ln := range o.Lines {
				deliveredQty[ln.ProductID] += ln.Quantity
			}
		}

		// Stock reservation.
		r, hasRes := reservations[id]
		var want []string
		switch {
		case delivered:
			want = []string{"committed"}
		case o.Reason == "out_of_stock":
			want = []string{"failed"}
		case confirmed:
			want = []string{"returned"}
		default:
			want = []string{"released", "voided"}
		}
		switch {
		case !hasRes:
			l.add(KindLost, id, p.Path, "inventory", "no reservation (order.placed never applied); want %v", want)
		case !slices.Contains(want, r.status):
			kind := KindInconsistent
			if r.status == "held" {
				kind = KindLost
			}
			l.add(kind, id, p.Path, "inventory", "reservation is %s, want %v for an order %s", r.status, want, outcome)
		}
		if hasRes && r.status != "failed" && r.status != "voided" && !sameLines(r.lines, o) {
			l.add(KindInconsistent, id, p.Path, "inventory", "reservation lines %v differ from the order's %v", r.lines, o.Lines)
		}
		if hasRes && o.State == "cancelled" {
			if (r.status == "released") != o.StockReleased {
				l.add(KindLost, id, p.Path, "order", "reservation %s but order stock_released=%v (stock.released reply lost?)", r.status, o.StockReleased)
			}
			if (r.status == "returned") != o.Returned {
				l.add(KindLost, id, p.Path, "order", "reservation %s but order stock_returned=%v (stock.returned reply lost?)", r.status, o.Returned)
			}
		}

		// Payment.
		pay, hasPay := payments[id]
		if o.has("payment_requested") && !hasPay {
			l.add(KindLost, id, p.Path, "payment", "payment was requested but payment has no record of it")
		}
		captured := hasPay && (pay.status == "authorized" || pay.status == "refunded")
		if hasPay {
			if pay.authorizations > 1 {
				l.add(KindDoubleApplied, id, p.Path, "payment", "%d authorizations (captures) for one order", pay.authorizations)
			}
			if pay.refunds > 1 {
				l.add(KindDoubleApplied, id, p.Path, "payment", "%d refunds for one payment", pay.refunds)
			}
			wantRefund := captured && o.State == "cancelled"
			switch {
			case wantRefund && pay.refunds == 0:
				l.add(KindLost, id, p.Path, "payment", "captured payment (%s) of a cancelled order was never refunded", pay.status)
			case !wantRefund && pay.refunds > 0:
				l.add(KindInconsistent, id, p.Path, "payment", "refund of an order that is %s", outcome)
			}
			if delivered && pay.status != "authorized" {
				l.add(KindInconsistent, id, p.Path, "payment", "delivered order's payment is %s", pay.status)
			}
			if pay.refunds > 0 && !o.Refunded {
				l.add(KindLost, id, p.Path, "order", "payment refunded but the order never recorded it (payment.refunded lost?)")
			}
		}
		if o.PaymentID != "" && !captured && (confirmed || o.RefundRequested) {
			l.add(KindInconsistent, id, p.Path, "payment", "order holds payment %s but payment says %q", o.PaymentID, pay.status)
		}

		// Invoice and credit notes.
		inv := invoices[id]
		switch {
		case confirmed && inv == 0:
			l.add(KindLost, id, p.Path, "invoice", "confirmed order has no invoice")
		case !confirmed && inv > 0:
			l.add(KindInconsistent, id, p.Path, "invoice", "unconfirmed order has %d invoices", inv)
		case inv > 1:
			l.add(KindDoubleApplied, id, p.Path, "invoice", "%d invoices for one order", inv)
		}
		wantNotes := 0
		if hasPay && pay.refunds > 0 && inv > 0 {
			wantNotes = 1
		}
		switch n := notes[id]; {
		case n > wantNotes && wantNotes == 1:
			l.add(KindDoubleApplied, id, p.Path, "invoice", "%d credit notes for one refund", n)
		case n > wantNotes:
			l.add(KindInconsistent, id, p.Path, "invoice", "credit note without a refund of an invoiced order")
		case n < wantNotes:
			l.add(KindLost, id, p.Path, "invoice", "refund of an invoiced order has no credit note")
		}

		// Shipment.
		sh, hasShip := shipments[id]
		switch {
		case confirmed && !hasShip:
			l.add(KindLost, id, p.Path, "shipping", "confirmed order has no shipment")
		case !confirmed && hasShip:
			l.add(KindInconsistent, id, p.Path, "shipping", "unconfirmed order has a shipment")
		case hasShip:
			wantShip := map[string]string{"delivered": "delivered", "cancelled/undeliverable": "failed", "cancelled/customer_request": "cancelled"}[outcome]
			if wantShip != "" && sh != wantShip {
				l.add(KindInconsistent, id, p.Path, "shipping", "shipment is %s, want %s for an order %s", sh, wantShip, outcome)
			}
		}

		// Loyalty points, once per delivered order: in its ledger and in
		// what it announced.
		if in.loyalty {
			n, m := events[id]["loyalty.points_awarded.v1"], points[id]
			switch {
			case delivered && (n == 0 || m == 0):
				l.add(KindLost, id, p.Path, "loyalty", "delivered order earned no points (%d ledger entries, %d events)", m, n)
			case m > 1:
				l.add(KindDoubleApplied, id, p.Path, "loyalty", "points awarded %d times for one order", m)
			case !delivered && (n > 0 || m > 0):
				l.add(KindInconsistent, id, p.Path, "loyalty", "points awarded for an order that is %s", outcome)
			}
		}
	}

	// Stock balance per product.
	if err := checkStock(ctx, l, pools["inventory"], w, deliveredQty, reservations); err != nil {
		return nil, err
	}
	// Every database: outbox drained, dead letters only the expected ones.
	if err := checkOutboxes(ctx, l, pools, in); err != nil {
		return nil, err
	}
	return l, nil
}

// onceTypes are events that may exist at most once per order (a second one
// with another id means a step was applied twice).
var onceTypes = map[string]bool{
	"order.placed.v1": true, "order.placed.v2": true, "order.payment_requested.v1": true, "order.confirmed.v1": true, "order.cancelled.v1": true,
	"order.refund_requested.v1": true, "order.shipped.v1": true, "order.delivered.v1": true, "order.completed.v1": true,
	"order.cancellation_requested.v1": true, "order.payment_timed_out.v1": true,
	"inventory.stock_reserved.v1": true, "inventory.stock_reservation_failed.v1": true, "inventory.stock_committed.v1": true,
	"inventory.stock_released.v1": true, "inventory.stock_returned.v1": true,
	"payment.authorized.v1": true, "payment.declined.v1": true, "payment.refunded.v1": true,
	"shipping.shipment_created.v1": true, "shipping.shipment_dispatched.v1": true, "shipping.shipment_delivered.v1": true,
	"shipping.shipment_failed.v1": true, "shipping.shipment_cancelled.v1": true,
	"invoice.invoice_issued.v1": true, "invoice.credit_note_issued.v1": true,
	"loyalty.points_awarded.v1": true,
}

func outboxService(typ string) string {
	s, _, _ := strings.Cut(typ, ".")
	return s
}

// checkOrderOutcome checks the terminal state and reason against the path.
// A path may end another way only through a race the order's own timeline
// proves: the payment timeout fired (never early) before the answer came.
func checkOrderOutcome(l *ledger, p *placedOrder, o orderRow, timeout time.Duration) {
	outcome := o.State
	if o.State == "cancelled" {
		outcome += "/" + o.Reason
	}
	timedOut := false
	if o.Reason == "payment_timeout" {
		reserved, ok1 := o.at("stock_reserved")
		fired, ok2 := o.at("payment_timed_out")
		switch {
		case !ok1 || !ok2:
			l.add(KindInconsistent, o.ID, p.Path, "order", "cancelled for payment_timeout without the timeline to show it: %s", timelineString(o))
			return
		case fired.Sub(reserved) < timeout-50*time.Millisecond:
			l.add(KindWrongOutcome, o.ID, p.Path, "order", "payment timed out %s after the reservation, before the %s timeout", fired.Sub(reserved), timeout)
			return
		}
		timedOut = true
	}
	var want []string
	race := false
	switch p.Path {
	case PathDelivered:
		want = []string{"delivered"}
		race = timedOut
	case PathDeclined:
		want = []string{"cancelled/payment_declined"}
		race = timedOut
	case PathTimeout:
		want = []string{"cancelled/payment_timeout"}
	case PathOutOfStock:
		want = []string{"cancelled/out_of_stock"}
	case PathUndeliverable:
		want = []string{"cancelled/undeliverable"}
		race = timedOut
	case PathCancelPending:
		// What the cancel call answered decides: cancelled at once for the
		// customer, or already cancelled by the timeout.
		switch {
		case p.CancelStatus == 202 && p.CancelView.Status == "cancelled":
			want = []string{"cancelled/" + p.CancelView.reason()}
		default:
			want = []string{"cancelled/customer_request", "cancelled/payment_timeout"}
		}
	case PathCancelConfirmed:
		switch {
		case p.CancelStatus == 409: // already dispatched: refused
			want = []string{"delivered"}
		case p.CancelStatus == 202 && p.CancelView.Status == "cancelled":
			want = []string{"cancelled/" + p.CancelView.reason()}
		case p.CancelStatus == 202:
			// Shipping decides the race with dispatch: cancelled, or
			// refused (the timeline says so) and delivered.
			want = []string{"cancelled/customer_request"}
			if o.has("cancellation_refused") {
				want = []string{"delivered"}
			}
		default:
			want = []string{"cancelled/customer_request", "delivered"}
		}
		race = timedOut
	}
	if slices.Contains(want, outcome) {
		return
	}
	if race && outcome == "cancelled/payment_timeout" {
		l.Raced++
		return
	}
	l.add(KindWrongOutcome, o.ID, p.Path, "order", "ended %s, want %s; timeline %s", outcome, strings.Join(want, " or "), timelineString(o))
}

func timelineString(o orderRow) string {
	var parts []string
	for _, e := range o.Timeline {
		parts = append(parts, e.Type)
	}
	return strings.Join(parts, ">")
}

func sameLines(res map[string]int, o orderRow) bool {
	want := map[string]int{}
	for _, ln := range o.Lines {
		want[ln.ProductID] += ln.Quantity
	}
	if len(want) != len(res) {
		return false
	}
	for k, v := range want {
		if res[k] != v {
			return false
		}
	}
	return true
}

func readOrders(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]orderRow, error) {
	out := map[string]orderRow{}
	rows, err := pool.Query(ctx, `
		SELECT id::text, user_id::text, state, coalesce(cancellation_reason, ''), lines::text, coalesce(payment_id, ''),
		       refund_requested, refunded, stock_released, stock_returned
		FROM orders WHERE id::text = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	for rows.Next() {
		var o orderRow
		var lines string
		if err := rows.Scan(&o.ID, &o.UserID, &o.State, &o.Reason, &lines, &o.PaymentID, &o.RefundRequested, &o.Refunded, &o.StockReleased, &o.Returned); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(lines), &o.Lines); err != nil {
			return nil, fmt.Errorf("lines of order %s: %w", o.ID, err)
		}
		out[o.ID] = o
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = pool.Query(ctx, `SELECT order_id::text, type, at FROM order_timeline WHERE order_id::text = ANY($1) ORDER BY order_id, seq`, ids)
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	for rows.Next() {
		var id string
		var e timelineEntry
		if err := rows.Scan(&id, &e.Type, &e.At); err != nil {
			return nil, err
		}
		o := out[id]
		o.Timeline = append(o.Timeline, e)
		out[id] = o
	}
	return out, rows.Err()
}

type reservationRow struct {
	status string
	lines  map[string]int
}

func readReservations(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]reservationRow, error) {
	out := map[string]reservationRow{}
	rows, err := pool.Query(ctx, `
		SELECT r.order_id::text, r.status, coalesce(l.product_id::text, ''), coalesce(l.quantity, 0)
		FROM reservations r LEFT JOIN reservation_lines l ON l.order_id = r.order_id
		WHERE r.order_id::text = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	for rows.Next() {
		var id, status, product string
		var qty int
		if err := rows.Scan(&id, &status, &product, &qty); err != nil {
			return nil, err
		}
		r, ok := out[id]
		if !ok {
			r = reservationRow{status: status, lines: map[string]int{}}
		}
		if product != "" {
			r.lines[product] += qty
		}
		out[id] = r
	}
	return out, rows.Err()
}

type paymentRow struct {
	status         string
	authorizations int
	refunds        int
}

func readPayments(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]paymentRow, error) {
	out := map[string]paymentRow{}
	rows, err := pool.Query(ctx, `
		SELECT p.order_id::text, p.status,
		       (SELECT count(*) FROM payment_attempts a WHERE a.payment_id = p.id AND a.outcome = 'authorized'),
		       (SELECT count(*) FROM refunds f WHERE f.payment_id = p.id)
		FROM payments p WHERE p.order_id::text = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read payments: %w", err)
	}
	for rows.Next() {
		var id string
		var p paymentRow
		if err := rows.Scan(&id, &p.status, &p.authorizations, &p.refunds); err != nil {
			return nil, err
		}
		out[id] = p
	}
	return out, rows.Err()
}

func readInvoices(ctx context.Context, pool *pgxpool.Pool, ids []string) (invoices, notes map[string]int, err error) {
	invoices, notes = map[string]int{}, map[string]int{}
	for q, m := range map[string]map[string]int{
		`SELECT order_id::text, count(*) FROM invoices WHERE order_id::text = ANY($1) GROUP BY 1`:     invoices,
		`SELECT order_id::text, count(*) FROM credit_notes WHERE order_id::text = ANY($1) GROUP BY 1`: notes,
	} {
		rows, err := pool.Query(ctx, q, ids)
		if err != nil {
			return nil, nil, fmt.Errorf("read invoices: %w", err)
		}
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, nil, err
			}
			m[id] = n
		}
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
	}
	return invoices, notes, nil
}

func readShipments(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]string, error) {
	out := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT order_id::text, status FROM shipments WHERE order_id::text = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read shipments: %w", err)
	}
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			return nil, err
		}
		out[id] = status
	}
	return out, rows.Err()
}

// readEvents counts, per order and type, the distinct events a service's
// outbox holds about the orders (the outbox keeps sent rows for replay).
func readEvents(ctx context.Context, pool *pgxpool.Pool, ids []string, into map[string]map[string]int) error {
	rows, err := pool.Query(ctx, `
		SELECT payload->>'order_id', metadata->>'type', count(DISTINCT uuid)
		FROM watermill_outbox WHERE payload->>'order_id' = ANY($1) GROUP BY 1, 2`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, typ string
		var n int
		if err := rows.Scan(&id, &typ, &n); err != nil {
			return err
		}
		if into[id] == nil {
			into[id] = map[string]int{}
		}
		into[id][typ] += n
	}
	return rows.Err()
}

// checkStock checks every product of the scenario: nothing left reserved,
// on hand never negative, and final stock = initial - delivered quantities
// (the units of returned and released orders came back exactly once).
func checkStock(ctx context.Context, l *ledger, pool *pgxpool.Pool, w *workload, delivered map[string]int, res map[string]reservationRow) error {
	committed := map[string]int{}
	for _, r := range res {
		if r.status == "committed" {
			for p, q := range r.lines {
				committed[p] += q
			}
		}
	}
	for _, p := range w.products {
		var onHand, reserved int
		err := pool.QueryRow(ctx, `SELECT on_hand, reserved FROM stock WHERE product_id::text = $1`, p.ID).Scan(&onHand, &reserved)
		if errors.Is(err, pgx.ErrNoRows) {
			l.add(KindLost, "", "", "inventory", "product %s has no stock record", p.SKU)
			continue
		}
		if err != nil {
			return fmt.Errorf("read stock of %s: %w", p.SKU, err)
		}
		want := p.Initial - delivered[p.ID]
		switch {
		case onHand < 0:
			l.add(KindInconsistent, "", "", "inventory", "product %s: on hand %d is negative", p.SKU, onHand)
		case onHand != want:
			l.add(KindInconsistent, "", "", "inventory", "product %s: on hand %d, want %d (initial %d - delivered %d)", p.SKU, onHand, want, p.Initial, delivered[p.ID])
		}
		if reserved != 0 {
			l.add(KindInconsistent, "", "", "inventory", "product %s: %d units still reserved after every order ended", p.SKU, reserved)
		}
		if committed[p.ID] != delivered[p.ID] {
			l.add(KindInconsistent, "", "", "inventory", "product %s: committed reservations hold %d units, delivered orders %d", p.SKU, committed[p.ID], delivered[p.ID])
		}
	}
	return nil
}

// checkOutboxes: every outbox empty, every dead letter of the scenario
// expected and every expected one present.
func checkOutboxes(ctx context.Context, l *ledger, pools map[string]*pgxpool.Pool, in ledgerInput) error {
	var services []string
	for s := range pools {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, svc := range services {
		pool := pools[svc]
		st, err := outbox.ReadStats(ctx, pool)
		if err != nil {
			return fmt.Errorf("%s outbox: %w", svc, err)
		}
		if st.Pending > 0 {
			l.add(KindUnsent, "", "", svc, "%d outbox rows never sent (oldest %s)", st.Pending, st.OldestPendingAge.Round(time.Millisecond))
		}
		rows, err := pool.Query(ctx, `SELECT id, consumer, message_id, type, reason FROM dead_letters WHERE id > $1 ORDER BY id`, in.deadBaseline[svc])
		if err != nil {
			return fmt.Errorf("%s dead letters: %w", svc, err)
		}
		got := map[string]bool{}
		for rows.Next() {
			var id int64
			var consumer, msgID, typ, reason string
			if err := rows.Scan(&id, &consumer, &msgID, &typ, &reason); err != nil {
				rows.Close()
				return err
			}
			got[msgID] = true
			if slices.Contains(in.expectedDead[svc], msgID) {
				l.ExpectedDLQ++
				continue
			}
			l.add(KindDeadLetter, "", "", svc, "dead letter %d (%s, %s, consumer %s): %s", id, typ, msgID, consumer, reason)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range in.expectedDead[svc] {
			if !got[id] {
				l.add(KindLost, "", "", svc, "poison message %s never reached the dead letters", id)
			}
		}
	}
	return nil
}

// readPoints counts loyalty's ledger entries per order.
func readPoints(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]int, error) {
	out := map[string]int{}
	rows, err := pool.Query(ctx, `SELECT order_id::text, count(*) FROM ledger WHERE reason = 'order_completed' AND order_id::text = ANY($1) GROUP BY 1`, ids)
	if err != nil {
		return nil, fmt.Errorf("read loyalty ledger: %w", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

// checkBalances: each member's balance is the sum of its ledger.
func checkBalances(ctx context.Context, l *ledger, pool *pgxpool.Pool, users []string) error {
	rows, err := pool.Query(ctx, `
		SELECT m.user_id::text, m.balance, coalesce((SELECT sum(points) FROM ledger g WHERE g.user_id = m.user_id), 0)::int
		FROM members m WHERE m.user_id::text = ANY($1)`, users)
	if err != nil {
		return fmt.Errorf("read loyalty members: %w", err)
	}
	for rows.Next() {
		var user string
		var balance, sum int
		if err := rows.Scan(&user, &balance, &sum); err != nil {
			return err
		}
		if balance != sum {
			l.add(KindInconsistent, "", "", "loyalty", "member %s has balance %d but ledger entries worth %d", user, balance, sum)
		}
	}
	return rows.Err()
}
