package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/app"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
	"github.com/shopmesh/shopmesh/services/notification/internal/transport"
)

// fakeTx is an in-memory Tx and Store.
type fakeTx struct {
	mu       sync.Mutex
	contacts map[string]domain.Contact
	notes    []*domain.Notification
	events   []outbox.Event
}

func newFake() *fakeTx { return &fakeTx{contacts: map[string]domain.Contact{}} }

func (f *fakeTx) Contact(_ context.Context, id string) (domain.Contact, bool, error) {
	c, ok := f.contacts[id]
	return c, ok, nil
}

func (f *fakeTx) Registered(_ context.Context, id, email, name string, _ time.Time) error {
	c := f.contacts[id]
	c.UserID, c.Email, c.Name = id, email, name
	f.contacts[id] = c
	return nil
}

func (f *fakeTx) Deactivated(_ context.Context, id string, _ time.Time) error {
	c := f.contacts[id]
	c.UserID, c.Deactivated = id, true
	f.contacts[id] = c
	return nil
}

func (f *fakeTx) Record(_ context.Context, n *domain.Notification) error {
	for _, o := range f.notes {
		if o.EventID() == n.EventID() && o.Recipient() == n.Recipient() && o.Channel() == n.Channel() {
			return nil
		}
	}
	f.notes = append(f.notes, n)
	return nil
}

func (f *fakeTx) Dispatch(ctx context.Context, now time.Time, limit int, fn app.DispatchFunc) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	handled := 0
	for _, n := range f.notes {
		if handled == limit {
			break
		}
		if n.Status() != domain.StatusPending || n.NextAttemptAt().After(now) {
			continue
		}
		c, known := f.contacts[n.UserID()]
		events, err := fn(ctx, n, c, known)
		if err != nil {
			return handled, err
		}
		f.events = append(f.events, events...)
		handled++
	}
	return handled, nil
}

func (f *fakeTx) List(_ context.Context, userID, before string, limit int) ([]*domain.Notification, error) {
	var mine []*domain.Notification
	for i := len(f.notes) - 1; i >= 0; i-- {
		if f.notes[i].UserID() == userID {
			mine = append(mine, f.notes[i])
		}
	}
	if before != "" {
		for i, n := range mine {
			if n.ID() == before {
				mine = mine[i+1:]
				break
			}
		}
	}
	return mine[:min(limit, len(mine))], nil
}

type fakeSender struct {
	fail error
	sent []app.Message
}

func (s *fakeSender) Send(_ context.Context, m app.Message) error {
	if s.fail != nil {
		return s.fail
	}
	s.sent = append(s.sent, m)
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

const staff = "ops@example.com"

func newService(t *testing.T, f *fakeTx, s app.Sender, c *clock, staffEmail string) *app.Service {
	t.Helper()
	ts, err := domain.NewTemplates()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	newID := func() string { n++; return fmt.Sprintf("0190a6c4-0000-7000-8000-%012d", n) }
	cfg := app.Config{StaffEmail: staffEmail, BatchSize: 10,
		Retry: domain.Retry{MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Minute}}
	svc, err := app.NewService(f, s, ts, cfg, c.now, newID)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// example returns the golden example of a type as a decoded event.
func example(t *testing.T, typ, id string) app.Event {
	t.Helper()
	et, err := contracts.Lookup(typ)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := transport.Decode(outbox.Message{ID: id, Type: typ, Payload: et.Example})
	if err != nil {
		t.Fatalf("decode example of %s: %v", typ, err)
	}
	return ev
}

const exampleUser = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"

// TestEveryConsumedTypeHasARule feeds the golden example of every type the
// registry routes to this service and checks who is notified.
func TestEveryConsumedTypeHasARule(t *testing.T) {
	t.Parallel()
	staffAlerts := map[string]bool{
		contracts.TypeLowStockV1: true, contracts.TypeShipmentFailedV1: true, contracts.TypeEnrolmentBonusFailedV1: true,
	}
	types := transport.Consumes("notification")
	if len(types) < 10 {
		t.Fatalf("consumed types = %v", types)
	}
	for i, typ := range types {
		f := newFake()
		f.contacts[exampleUser] = domain.Contact{UserID: exampleUser, Email: "ada@example.com", Name: "Ada Lovelace"}
		svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, staff)
		ev := example(t, typ, fmt.Sprintf("0190a6c4-0000-7000-9000-%012d", i))
		if err := svc.Handle(context.Background(), f, ev); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if len(f.notes) != 1 {
			t.Errorf("%s: %d notifications, want 1", typ, len(f.notes))
			continue
		}
		n := f.notes[0]
		if staffAlerts[typ] {
			if n.Audience() != domain.AudienceStaff || n.Recipient() != staff || n.UserID() != "" {
				t.Errorf("%s: audience %s to %s, want a staff alert", typ, n.Audience(), n.Recipient())
			}
		} else if n.Audience() != domain.AudienceCustomer || n.UserID() != exampleUser {
			t.Errorf("%s: audience %s user %q, want the customer", typ, n.Audience(), n.UserID())
		} else if !strings.HasPrefix(n.Body(), "Hello Ada Lovelace,") {
			t.Errorf("%s: body %q", typ, n.Body())
		}
		// An older version is recorded as the latest one it upcasts to.
		if n.EventID() != ev.ID || n.EventType() != ev.Type || n.Status() != domain.StatusPending {
			t.Errorf("%s: recorded %+v", typ, n)
		}
	}
}

func TestStaffAlertsCanBeSwitchedOff(t *testing.T) {
	t.Parallel()
	f := newFake()
	svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, "")
	for i, typ := range []string{contracts.TypeLowStockV1, contracts.TypeShipmentFailedV1, contracts.TypeEnrolmentBonusFailedV1} {
		if err := svc.Handle(context.Background(), f, example(t, typ, fmt.Sprintf("0190a6c4-0000-7000-9000-%012d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.notes) != 0 {
		t.Errorf("%d staff alerts recorded with alerts off", len(f.notes))
	}
}

func TestOrderCancelledContent(t *testing.T) {
	t.Parallel()
	f := newFake()
	svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, staff)
	ev := example(t, contracts.TypeOrderCancelledV1, "0190a6c4-0000-7000-9000-000000000001")
	if err := svc.Handle(context.Background(), f, ev); err != nil {
		t.Fatal(err)
	}
	n := f.notes[0]
	if n.OrderID() != "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90" || n.Template() != domain.TemplateOrderCancelled {
		t.Errorf("order %s template %s", n.OrderID(), n.Template())
	}
	for _, want := range []string{"Hello,", "the carrier could not deliver it", "EUR 74.90 will be refunded"} {
		if !strings.Contains(n.Body(), want) {
			t.Errorf("body lacks %q:\n%s", want, n.Body())
		}
	}
}

func TestSameEventTwiceRecordsOnce(t *testing.T) {
	t.Parallel()
	f := newFake()
	svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, staff)
	ev := example(t, contracts.TypeOrderPlacedV1, "0190a6c4-0000-7000-9000-000000000001")
	for range 2 {
		if err := svc.Handle(context.Background(), f, ev); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.notes) != 1 {
		t.Errorf("%d notifications for one event, want 1", len(f.notes))
	}
}

func TestDeactivatedCustomersGetOnlyTransactional(t *testing.T) {
	t.Parallel()
	f := newFake()
	svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, staff)
	ctx := context.Background()
	for i, typ := range []string{contracts.TypeUserRegisteredV1, contracts.TypeUserDeactivatedV1, contracts.TypePointsAwardedV1, contracts.TypePaymentRefundedV1} {
		if err := svc.Handle(ctx, f, example(t, typ, fmt.Sprintf("0190a6c4-0000-7000-9000-%012d", i))); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	var got []string
	for _, n := range f.notes {
		got = append(got, n.Template())
	}
	want := []string{domain.TemplateWelcome, domain.TemplateAccountDeactivated, domain.TemplateRefundIssued}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("templates = %v, want %v (no points after deactivation)", got, want)
	}
	if c := f.contacts[exampleUser]; c.Email != "ada@example.com" || !c.Deactivated {
		t.Errorf("contact = %+v", c)
	}
}

func TestUnhandledPayloadIsPermanent(t *testing.T) {
	t.Parallel()
	f := newFake()
	svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, staff)
	err := svc.Handle(context.Background(), f, app.Event{ID: "x", Type: contracts.TypeCartCheckedOutV1, Payload: &contracts.CartCheckedOutV1{}})
	if !errors.Is(err, app.ErrUnhandled) {
		t.Errorf("err = %v, want ErrUnhandled", err)
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	f := newFake()
	s := &fakeSender{}
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	svc := newService(t, f, s, c, staff)
	ctx := context.Background()
	// An order event before the user is known, a staff alert, then the
	// registration.
	for i, typ := range []string{contracts.TypeOrderPlacedV1, contracts.TypeLowStockV1} {
		if err := svc.Handle(ctx, f, example(t, typ, fmt.Sprintf("0190a6c4-0000-7000-9000-%012d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := svc.DispatchDue(ctx); err != nil || n != 2 {
		t.Fatalf("DispatchDue = %d, %v", n, err)
	}
	if len(s.sent) != 1 || s.sent[0].To != staff {
		t.Fatalf("sent = %+v, want only the staff alert", s.sent)
	}
	placed := f.notes[0]
	if placed.Status() != domain.StatusPending || placed.Attempts() != 1 || !strings.Contains(placed.LastError(), "no email address") {
		t.Errorf("unknown customer: %s after %d attempts (%s)", placed.Status(), placed.Attempts(), placed.LastError())
	}
	if n, _ := svc.DispatchDue(ctx); n != 0 {
		t.Errorf("dispatched %d before the backoff elapsed", n)
	}

	if err := svc.Handle(ctx, f, example(t, contracts.TypeUserRegisteredV1, "0190a6c4-0000-7000-9000-000000000009")); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(time.Second)
	if n, err := svc.DispatchDue(ctx); err != nil || n != 2 {
		t.Fatalf("second DispatchDue = %d, %v", n, err)
	}
	if placed.Status() != domain.StatusSent || placed.ToAddress() != "ada@example.com" {
		t.Errorf("order placed: %s to %q", placed.Status(), placed.ToAddress())
	}
	if len(f.events) != 3 {
		t.Fatalf("events = %d, want one notification.sent.v1 per sent notification", len(f.events))
	}
	for _, e := range f.events {
		p := e.Payload.(contracts.NotificationSentV1)
		if e.Type != contracts.TypeNotificationSentV1 || p.NotificationID != e.AggregateID || p.TriggerID == "" || p.Template == "" {
			t.Errorf("event %+v", e)
		}
		if (p.Audience == contracts.AudienceCustomer) != (p.UserID != "") {
			t.Errorf("audience %s with user %q", p.Audience, p.UserID)
		}
	}
}

func TestDispatchGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFake()
	s := &fakeSender{fail: errors.New("mail server down")}
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	svc := newService(t, f, s, c, staff)
	ctx := context.Background()
	if err := svc.Handle(ctx, f, example(t, contracts.TypeLowStockV1, "0190a6c4-0000-7000-9000-000000000001")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := svc.DispatchDue(ctx); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(time.Hour)
	}
	n := f.notes[0]
	if n.Status() != domain.StatusFailed || n.Attempts() != 3 || n.LastError() != "mail server down" {
		t.Errorf("after 3 failures: %s, %d attempts, %q", n.Status(), n.Attempts(), n.LastError())
	}
	if len(f.events) != 0 {
		t.Errorf("events for a failed notification: %d", len(f.events))
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	f := newFake()
	svc := newService(t, f, &fakeSender{}, &clock{time.Now()}, staff)
	ctx := context.Background()
	types := []string{contracts.TypeOrderPlacedV1, contracts.TypeOrderConfirmedV1, contracts.TypeOrderShippedV1, contracts.TypeLowStockV1, contracts.TypeOrderDeliveredV1}
	for i, typ := range types {
		if err := svc.Handle(ctx, f, example(t, typ, fmt.Sprintf("0190a6c4-0000-7000-9000-%012d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.List(ctx, app.Caller{}, app.ListQuery{}); !errors.Is(err, app.ErrUnauthenticated) {
		t.Errorf("anonymous: %v", err)
	}
	var qe *app.InvalidQueryError
	for _, q := range []app.ListQuery{{Limit: -1}, {Limit: 101}, {Before: "nope"}} {
		if _, err := svc.List(ctx, app.Caller{UserID: exampleUser}, q); !errors.As(err, &qe) {
			t.Errorf("List(%+v): err = %v", q, err)
		}
	}
	me := app.Caller{UserID: exampleUser, Role: "customer"}
	page, err := svc.List(ctx, me, app.ListQuery{Limit: 3})
	if err != nil || len(page.Items) != 3 || page.Next != page.Items[2].ID() {
		t.Fatalf("page 1 = %d items next %q, %v", len(page.Items), page.Next, err)
	}
	rest, err := svc.List(ctx, me, app.ListQuery{Limit: 3, Before: page.Next})
	if err != nil || len(rest.Items) != 1 || rest.Next != "" {
		t.Fatalf("page 2 = %d items next %q, %v", len(rest.Items), rest.Next, err)
	}
	var got []string
	for _, n := range append(page.Items, rest.Items...) {
		got = append(got, n.Template())
	}
	want := []string{domain.TemplateOrderDelivered, domain.TemplateOrderShipped, domain.TemplateOrderConfirmed, domain.TemplateOrderPlaced}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("templates newest first = %v, want %v (no staff alert)", got, want)
	}
	other, err := svc.List(ctx, app.Caller{UserID: "0190a6c4-0000-7000-8000-0000000000ff"}, app.ListQuery{})
	if err != nil || len(other.Items) != 0 {
		t.Errorf("another customer sees %d, %v", len(other.Items), err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := app.Config{StaffEmail: staff, BatchSize: 1, Retry: domain.Retry{MaxAttempts: 1, Backoff: time.Second, MaxBackoff: time.Second}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*app.Config){
		func(c *app.Config) { c.StaffEmail = "Ops <ops@example.com>" },
		func(c *app.Config) { c.StaffEmail = "not an address" },
		func(c *app.Config) { c.BatchSize = 0 },
		func(c *app.Config) { c.Retry.MaxAttempts = 0 },
		func(c *app.Config) { c.Retry.MaxBackoff = time.Millisecond },
	}
	for i, mod := range bad {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}
