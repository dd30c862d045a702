package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

func sample() domain.Data {
	return domain.Data{
		Name: "Ada", UserID: "0190a6c4-0000-7000-8000-000000000001",
		OrderID: "0190a6c4-0000-7000-8000-0000000000a1",
		Lines:   []domain.LineData{{Name: "Mug", SKU: "MUG-1", Quantity: 2, UnitPrice: "EUR 4.50", Total: "EUR 9.00"}},
		Total:   "EUR 9.00", Reason: "your payment was declined", Refund: true,
		Carrier: "simpost", TrackingNumber: "SP123", InvoiceNumber: "INV-2026-000001", CreditNoteNumber: "CN-2026-000001",
		Amount: "EUR 9.00", Points: 100, Balance: 150, Address: "Ada, 1 Main St, 10115 Berlin, DE",
		ProductID: "0190a6c4-0000-7000-8000-0000000000b1", SKU: "MUG-1", Available: 2, Threshold: 5, Detail: "no such street",
	}
}

func TestEveryTemplateRenders(t *testing.T) {
	t.Parallel()
	ts, err := domain.NewTemplates()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Names()) < 15 {
		t.Errorf("templates = %v", ts.Names())
	}
	for _, name := range ts.Names() {
		tpl, _ := ts.Lookup(name)
		subject, body, err := tpl.Render(sample())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if subject == "" || strings.ContainsAny(subject, "\r\n") || body == "" {
			t.Errorf("%s: subject %q body %q", name, subject, body)
		}
		if strings.Contains(subject+body, "<no value>") {
			t.Errorf("%s renders a missing value:\n%s\n%s", name, subject, body)
		}
		wantStaff := strings.HasPrefix(name, "staff_")
		if (tpl.Audience == domain.AudienceStaff) != wantStaff {
			t.Errorf("%s: audience %s", name, tpl.Audience)
		}
		if !wantStaff && !strings.HasPrefix(body, "Hello Ada,") {
			t.Errorf("%s: body does not greet the customer: %q", name, body)
		}
	}
}

func TestTemplateContent(t *testing.T) {
	t.Parallel()
	ts, _ := domain.NewTemplates()
	tpl, _ := ts.Lookup(domain.TemplateOrderCancelled)
	d := sample()
	subject, body, _ := tpl.Render(d)
	if subject != "Your order "+d.OrderID+" was cancelled" {
		t.Errorf("subject = %q", subject)
	}
	for _, want := range []string{"because your payment was declined", "EUR 9.00 will be refunded"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	d.Refund = false
	_, body, _ = tpl.Render(d)
	if !strings.Contains(body, "You have not been charged") || strings.Contains(body, "refunded") {
		t.Errorf("no-refund body:\n%s", body)
	}

	tpl, _ = ts.Lookup(domain.TemplateOrderPlaced)
	_, body, _ = tpl.Render(sample())
	if !strings.Contains(body, "2 x Mug (MUG-1) at EUR 4.50 = EUR 9.00") || !strings.Contains(body, "Total: EUR 9.00") {
		t.Errorf("order placed body:\n%s", body)
	}

	// An unknown customer is greeted without a name.
	tpl, _ = ts.Lookup(domain.TemplateWelcome)
	d = sample()
	d.Name = ""
	_, body, _ = tpl.Render(d)
	if !strings.HasPrefix(body, "Hello,\n") {
		t.Errorf("anonymous greeting: %q", body)
	}
}

func TestRenderedSubjectIsOneBoundedLine(t *testing.T) {
	t.Parallel()
	ts, _ := domain.NewTemplates()
	tpl, _ := ts.Lookup(domain.TemplateStaffLowStock)
	d := sample()
	d.SKU = "EVIL\r\nBcc: everyone@example.com " + strings.Repeat("x", 300)
	subject, _, err := tpl.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(subject, "\r\n") || len([]rune(subject)) > 200 {
		t.Errorf("subject = %q", subject)
	}
}

func TestFormatMoney(t *testing.T) {
	t.Parallel()
	cases := []struct {
		amount   int64
		currency string
		want     string
	}{
		{1250, "EUR", "EUR 12.50"}, {5, "EUR", "EUR 0.05"}, {0, "USD", "USD 0.00"}, {100000, "EUR", "EUR 1000.00"},
		{1250, "JPY", "JPY 1250"}, {1250, "KWD", "KWD 1.250"}, {-150, "EUR", "EUR -1.50"},
	}
	for _, tc := range cases {
		if got := domain.FormatMoney(tc.amount, tc.currency); got != tc.want {
			t.Errorf("FormatMoney(%d, %s) = %q, want %q", tc.amount, tc.currency, got, tc.want)
		}
	}
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func draft() domain.Draft {
	return domain.Draft{ID: "0190a6c4-0000-7000-8000-0000000000c1", EventID: "0190a6c4-0000-7000-8000-0000000000e1",
		EventType: "order.placed.v1", Audience: domain.AudienceCustomer, UserID: "0190a6c4-0000-7000-8000-000000000001",
		Channel: domain.ChannelEmail, Template: domain.TemplateOrderPlaced, Subject: "s", Body: "b"}
}

func TestNewRejectsInvalid(t *testing.T) {
	t.Parallel()
	if _, err := domain.New(draft(), now); err != nil {
		t.Fatalf("valid draft: %v", err)
	}
	mods := map[string]func(*domain.Draft){
		"no id":              func(d *domain.Draft) { d.ID = "" },
		"no event":           func(d *domain.Draft) { d.EventID = "" },
		"no subject":         func(d *domain.Draft) { d.Subject = " " },
		"no body":            func(d *domain.Draft) { d.Body = "" },
		"customer no user":   func(d *domain.Draft) { d.UserID = "" },
		"staff with user":    func(d *domain.Draft) { d.Audience = domain.AudienceStaff; d.StaffAddress = "s@example.com" },
		"staff no address":   func(d *domain.Draft) { d.Audience = domain.AudienceStaff; d.UserID = "" },
		"unknown audience":   func(d *domain.Draft) { d.Audience = "everyone" },
		"unknown channel":    func(d *domain.Draft) { d.Channel = "pigeon" },
		"multi-line subject": func(d *domain.Draft) { d.Subject = "a\nBcc: x" },
	}
	for name, mod := range mods {
		d := draft()
		mod(&d)
		if _, err := domain.New(d, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDeliveryLifecycle(t *testing.T) {
	t.Parallel()
	r := domain.Retry{MaxAttempts: 4, Backoff: time.Second, MaxBackoff: 3 * time.Second}
	n, _ := domain.New(draft(), now)
	if n.Status() != domain.StatusPending || !n.NextAttemptAt().Equal(now) || n.Recipient() != n.UserID() {
		t.Fatalf("new notification: %s due %s recipient %s", n.Status(), n.NextAttemptAt(), n.Recipient())
	}
	wantDelays := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	for i, want := range wantDelays {
		if err := n.MarkAttemptFailed("smtp down", now, r); err != nil {
			t.Fatal(err)
		}
		if got := n.NextAttemptAt().Sub(now); got != want || n.Status() != domain.StatusPending {
			t.Errorf("after failure %d: due in %s (%s), want %s", i+1, got, n.Status(), want)
		}
	}
	n.MarkAttemptFailed("smtp down", now, r)
	if n.Status() != domain.StatusFailed || n.Attempts() != 4 || n.LastError() != "smtp down" {
		t.Errorf("after max attempts: %s, %d attempts", n.Status(), n.Attempts())
	}
	if err := n.MarkSent("a@example.com", now); !errors.Is(err, domain.ErrNotPending) {
		t.Errorf("MarkSent on failed: %v", err)
	}

	n, _ = domain.New(draft(), now)
	if err := n.MarkSent("ada@example.com", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n.Status() != domain.StatusSent || n.ToAddress() != "ada@example.com" || !n.SentAt().Equal(now.Add(time.Second)) {
		t.Errorf("sent: %s to %s at %s", n.Status(), n.ToAddress(), n.SentAt())
	}
	if err := n.MarkSent("ada@example.com", now); !errors.Is(err, domain.ErrNotPending) {
		t.Errorf("second MarkSent: %v", err)
	}
}

func TestFromDatabaseChecksState(t *testing.T) {
	t.Parallel()
	s := domain.Stored{Draft: draft(), Recipient: draft().UserID, CreatedAt: now, Status: domain.StatusSent, NextAttemptAt: now}
	if _, err := domain.FromDatabase(s); err == nil {
		t.Error("sent without a sent time accepted")
	}
	s.SentAt = now
	if _, err := domain.FromDatabase(s); err != nil {
		t.Errorf("valid sent row: %v", err)
	}
	s.Status = "lost"
	if _, err := domain.FromDatabase(s); err == nil {
		t.Error("unknown status accepted")
	}
}

func TestReceives(t *testing.T) {
	t.Parallel()
	ts, _ := domain.NewTemplates()
	welcome, _ := ts.Lookup(domain.TemplateWelcome)
	points, _ := ts.Lookup(domain.TemplatePointsAwarded)
	cancelled, _ := ts.Lookup(domain.TemplateOrderCancelled)
	refund, _ := ts.Lookup(domain.TemplateRefundIssued)
	active := domain.Contact{Email: "a@example.com"}
	gone := domain.Contact{Email: "a@example.com", Deactivated: true}
	cases := []struct {
		tpl   *domain.Template
		c     domain.Contact
		known bool
		want  bool
	}{
		{welcome, active, true, true}, {welcome, gone, true, false}, {points, gone, true, false},
		{cancelled, gone, true, true}, {refund, gone, true, true}, {points, domain.Contact{}, false, true},
	}
	for _, tc := range cases {
		if got := domain.Receives(tc.tpl, tc.c, tc.known); got != tc.want {
			t.Errorf("Receives(%s, deactivated=%v, known=%v) = %v", tc.tpl.Name, tc.c.Deactivated, tc.known, got)
		}
	}
}
