package demo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Width of the path column in the lines printed while orders run: the
// longest path name.
const pathWidth = len(PathPaymentDeclined)

// nameWidth is the width of the customer column in the lines printed while
// orders run.
const nameWidth = 10

func (d *demo) printPlaced(c *customerPlan, o *orderPlan, id string) {
	want := o.spec.want
	note := fmt.Sprintf("%s · %s · ship to %s", o.describe(), want.token, want.country)
	switch o.spec.path {
	case PathPaymentTimeout:
		if d.cfg.PaymentTimeout > 0 {
			note += fmt.Sprintf(" · the provider never answers: waits for the payment timeout (%s)", d.cfg.PaymentTimeout)
		} else {
			note += " · the provider never answers: waits for the order service's payment timeout"
		}
	case PathOutOfStock:
		note += fmt.Sprintf(" · %d in stock", o.lines[0].product.Initial)
	case PathCustomerCancel:
		note += " · will cancel while pending"
	}
	d.out.printf("  placed    %-*s %-*s %s  %s\n", nameWidth, c.name, pathWidth, o.spec.path, id, note)
}

func (d *demo) printCancelled(c *customerPlan, o *orderPlan, id string) {
	d.out.printf("  cancels   %-*s %-*s %s  the customer cancels the pending order\n", nameWidth, c.name, pathWidth, o.spec.path, id)
}

// printSettled prints an order when it settles, or when it ran out of time.
func (d *demo) printSettled(r OrderResult) {
	mark, verb := "✓", "settled"
	if !r.OK() {
		mark, verb = "✗", "FAILED "
	}
	id := r.OrderID
	if id == "" {
		id = strings.Repeat("-", 36)
	}
	line := fmt.Sprintf("%s %s %-*s %-*s %s  %-28s %s", mark, verb, nameWidth, r.Customer, pathWidth, r.Path, id,
		statusText(r.Status, r.Reason), formatTimeline(r.Timeline))
	if r.Settled > 0 {
		line += fmt.Sprintf(" · settled %s after checkout", r.Settled.Round(10*time.Millisecond))
	}
	for _, p := range r.Problems {
		line += "\n      " + p
	}
	d.out.printf("%s\n", line)
}

// statusText is a status with its reason, if any.
func statusText(status, reason string) string {
	switch {
	case status == "":
		return "unknown"
	case reason == "":
		return status
	}
	return status + " (" + reason + ")"
}

// formatTimeline joins the steps with arrows and ends with the time from
// the first step to the last: "placed → stock_reserved → … (Δ1234ms)".
func formatTimeline(timeline []TimelineEntry) string {
	if len(timeline) == 0 {
		return "(no timeline)"
	}
	span := timeline[len(timeline)-1].At.Sub(timeline[0].At)
	return fmt.Sprintf("%s (Δ%dms)", timelineTypes(timeline), span.Milliseconds())
}

// timelineTypes joins the steps with arrows.
func timelineTypes(timeline []TimelineEntry) string {
	types := make([]string, len(timeline))
	for i, e := range timeline {
		types[i] = e.Type
	}
	return strings.Join(types, " → ")
}

func writeCatalogue(w io.Writer, products []*product) error {
	fmt.Fprintf(w, "\ncatalogue: %d products\n", len(products))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SKU\tPRODUCT\tPRICE\tSTOCK")
	for _, p := range products {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\n", p.SKU, p.Name, p.Price, p.Initial)
	}
	return tw.Flush()
}

func writeOrders(w io.Writer, orders []OrderResult) error {
	fmt.Fprintf(w, "\norders\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tCUSTOMER\tPATH\tORDER\tSTATUS\tREASON\tTIMELINE")
	for _, r := range orders {
		mark := "✓"
		if !r.OK() {
			mark = "✗"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, r.Customer, r.Path, orDash(r.OrderID), orDash(r.Status), orDash(r.Reason), formatTimeline(r.Timeline))
	}
	return tw.Flush()
}

func writeSummary(w io.Writer, s Summary) error {
	failed := s.Failed()
	fmt.Fprintf(w, "\nsummary: %d of %d orders reached their expected state (seed %d)\n", len(s.Orders)-len(failed), len(s.Orders), s.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tEXPECTED\tOK\tSLOWEST")
	for _, p := range Paths() {
		var n, ok int
		var slowest time.Duration
		var want string
		for _, o := range s.Orders {
			if o.Path != p {
				continue
			}
			n++
			want = statusText(o.WantStatus, o.WantReason)
			if o.OK() {
				ok++
				slowest = max(slowest, o.Settled)
			}
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%s\n", p, want, ok, n, slowest.Round(10*time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range failed {
		_, err := fmt.Fprintf(w, "  ✗ %s's %s order %s: %s\n", o.Customer, o.Path, orDash(o.OrderID), strings.Join(o.Problems, "; "))
		if err != nil {
			return err
		}
	}
	return nil
}

func writeStock(w io.Writer, stock []StockResult) error {
	fmt.Fprintf(w, "\nstock (on hand = initial − delivered; nothing left reserved)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tSKU\tPRODUCT\tINITIAL\tON HAND\tRESERVED\tAVAILABLE\tEXPECTED ON HAND")
	for _, s := range stock {
		mark := "✓"
		if s.Problem != "" {
			mark = "✗"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", mark, s.SKU, s.Name, s.Initial, s.OnHand, s.Reserved, s.Available, s.WantOnHand)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range stock {
		if s.Problem != "" {
			if _, err := fmt.Fprintf(w, "  ✗ %s: %s\n", s.SKU, s.Problem); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeViews(w io.Writer, orders []OrderResult) error {
	fmt.Fprintf(w, "\npayments, shipments and invoices\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CUSTOMER\tPATH\tORDER\tPAYMENT\tSHIPMENT\tINVOICE")
	for _, r := range orders {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.Customer, r.Path, orDash(r.OrderID), orDash(r.Payment), orDash(r.Shipment), orDash(r.Invoice))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
