package notification_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

const staffEmail = "ops@example.com"

// harness is one notification service running in-process (see
// servicetest), fed by events published to the producers' exchanges.
type harness struct {
	*servicetest.Service
	t *testing.T
}

func start(t *testing.T) *harness {
	t.Helper()
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return notification.Run(ctx, notification.Config{
			Kit:              kit,
			StaffEmail:       staffEmail,
			DispatchInterval: 20 * time.Millisecond,
			SendBackoff:      50 * time.Millisecond,
			MaxSendBackoff:   200 * time.Millisecond,
			Consumer:         func(c *outbox.ConsumerConfig) { c.RetryBackoff = 20 * time.Millisecond },
		}, logger)
	}
	svc := servicetest.Start(t, servicetest.Spec{Name: notification.Name, Consumer: notification.Consumer, Run: run})
	return &harness{Service: svc, t: t}
}

type note struct {
	ID        string     `json:"id"`
	Channel   string     `json:"channel"`
	Subject   string     `json:"subject"`
	Body      string     `json:"body"`
	EventType string     `json:"event_type"`
	OrderID   *string    `json:"order_id"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

// get calls path as the customer userID ("" for no identity).
func (h *harness) get(path, userID string) servicetest.Response {
	h.t.Helper()
	return h.Do(http.MethodGet, path, servicetest.AsCustomer(userID), nil)
}

func (h *harness) list(userID, query string) []note {
	h.t.Helper()
	var out []note
	h.GetJSON("/api/v1/notifications"+query, servicetest.AsCustomer(userID), &out)
	return out
}

// waitFor polls the user's notifications until ok accepts them.
func (h *harness) waitFor(userID string, what string, ok func([]note) bool) []note {
	h.t.Helper()
	var notes []note
	h.Poll(what, func() (bool, string) {
		notes = h.list(userID, "?limit=100")
		return ok(notes), fmt.Sprintf("%+v", notes)
	})
	return notes
}

const (
	ada   = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"
	bob   = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f51"
	order = "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
)

func money(n int64) contracts.Money { return contracts.Money{AmountMinor: n, Currency: "EUR"} }

var lines = []contracts.Line{{ProductID: "0190d6a2-0f11-7a22-8b33-4c44d55e66f7", SKU: "CUP-1", Name: "Espresso cup", Quantity: 2, UnitPrice: money(1250)}}

var address = contracts.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}

func TestCustomerJourneyNotifiedExactlyOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.Publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada Lovelace"})
	h.Publish(outbox.NewID(), contracts.TypeUserRegisteredV1, bob, contracts.UserRegisteredV1{UserID: bob, Email: "bob@example.com", Name: "Bob"})
	// Different aggregates are applied in parallel: let the registration
	// land before the order events, as it does in the shop.
	h.waitFor(ada, "the welcome", func(ns []note) bool { return len(ns) == 1 })

	placedID := outbox.NewID()
	placed := contracts.OrderPlacedV1{OrderID: order, UserID: ada, Lines: lines, Total: money(2500), ShippingAddress: address}
	// Delivered twice (a relay crash after the confirm, a broker redelivery).
	h.Publish(placedID, contracts.TypeOrderPlacedV1, order, placed)
	h.Publish(placedID, contracts.TypeOrderPlacedV1, order, placed)
	// Events of one aggregate are applied in order, so once the next one is
	// visible the duplicate has been handled.
	h.Publish(outbox.NewID(), contracts.TypeOrderCancelledV1, order, contracts.OrderCancelledV1{
		OrderID: order, UserID: ada, Reason: contracts.ReasonPaymentDeclined, Lines: lines, Total: money(2500),
		Compensations: []contracts.Compensation{contracts.CompensateReleaseStock}})
	h.Publish(outbox.NewID(), contracts.TypeLowStockV1, "0190d6a2-0f11-7a22-8b33-4c44d55e66f7",
		contracts.LowStockV1{ProductID: "0190d6a2-0f11-7a22-8b33-4c44d55e66f7", SKU: "CUP-1", Available: 1, Threshold: 5})

	notes := h.waitFor(ada, "welcome, order placed and cancelled, all sent", func(ns []note) bool {
		if len(ns) < 3 {
			return false
		}
		for _, n := range ns {
			if n.Status != "sent" {
				return false
			}
		}
		return true
	})
	if len(notes) != 3 {
		t.Fatalf("ada has %d notifications, want 3: %+v", len(notes), notes)
	}
	// The order.placed.v1 published above is recorded as the v2 it upcasts to.
	wantTypes := []string{contracts.TypeOrderCancelledV1, contracts.TypeOrderPlacedV2, contracts.TypeUserRegisteredV1}
	for i, n := range notes {
		if n.EventType != wantTypes[i] {
			t.Errorf("notification %d is for %s, want %s (newest first)", i, n.EventType, wantTypes[i])
		}
		if n.Channel != "email" || n.SentAt == nil || n.ID == "" || n.CreatedAt.IsZero() {
			t.Errorf("notification %d = %+v", i, n)
		}
		if !strings.HasPrefix(n.Body, "Hello Ada Lovelace,") {
			t.Errorf("notification %d body %q", i, n.Body)
		}
	}
	if notes[0].OrderID == nil || *notes[0].OrderID != order || notes[2].OrderID != nil {
		t.Errorf("order ids: %v, %v", notes[0].OrderID, notes[2].OrderID)
	}
	if !strings.Contains(notes[0].Body, "because your payment was declined") || !strings.Contains(notes[0].Body, "You have not been charged") {
		t.Errorf("cancellation body:\n%s", notes[0].Body)
	}
	if got := h.Query(`SELECT count(*) FROM notifications WHERE event_id = $1`, placedID); got != 1 {
		t.Errorf("%d notifications for the event delivered twice, want 1", got)
	}
	if got := h.Query(`SELECT coalesce(sum(count), 0)::int FROM inbox_duplicates WHERE consumer = 'inbox'`); got != 1 {
		t.Errorf("inbox absorbed %d duplicates, want 1", got)
	}

	// Only own notifications: Bob sees his welcome, nothing of Ada's, and no
	// staff alert reaches a customer.
	bobs := h.waitFor(bob, "bob's welcome", func(ns []note) bool { return len(ns) == 1 })
	if bobs[0].EventType != contracts.TypeUserRegisteredV1 || !strings.HasPrefix(bobs[0].Body, "Hello Bob,") {
		t.Errorf("bob's notification = %+v", bobs[0])
	}
	if got := h.list("0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4fff", ""); len(got) != 0 {
		t.Errorf("a stranger sees %d notifications", len(got))
	}
	if got := h.Query(`SELECT count(*) FROM notifications WHERE audience = 'staff' AND recipient = $1 AND template = 'staff_low_stock'`, staffEmail); got != 1 {
		t.Errorf("staff low-stock alerts = %d, want 1", got)
	}
	if got := h.Query(`SELECT count(*) FROM notifications WHERE audience = 'staff' AND template <> 'staff_low_stock'`); got != 0 {
		t.Errorf("staff got %d alerts that are not failures", got)
	}

	// Every delivery is announced once with notification.sent.v1.
	total := h.Query(`SELECT count(*) FROM notifications`)
	seen := map[string]int{}
	h.Poll(fmt.Sprintf("%d notification.sent.v1 events", total), func() (bool, string) {
		clear(seen)
		for _, m := range h.Events("") {
			if err := contracts.Validate(m.Type, m.Payload); err != nil || m.Type != contracts.TypeNotificationSentV1 {
				t.Fatalf("published %s: %v", m.Type, err)
			}
			var p contracts.NotificationSentV1
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			seen[p.NotificationID]++
		}
		return len(seen) >= total, fmt.Sprintf("%d distinct", len(seen))
	})
	if len(seen) != total {
		t.Errorf("%d notifications announced, want the %d stored", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("notification %s announced %d times", id, n)
		}
	}
	if got := h.Query(`SELECT count(*) FROM notifications WHERE status = 'sent' AND to_address = 'ada@example.com'`); got != 3 {
		t.Errorf("sent to ada@example.com: %d, want 3", got)
	}
}

func TestEventBeforeRegistrationIsDeliveredLater(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.Publish(outbox.NewID(), contracts.TypeOrderShippedV1, order, contracts.OrderShippedV1{
		OrderID: order, UserID: ada, ShipmentID: "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c91", Carrier: "simpost", TrackingNumber: "SP1"})
	pending := h.waitFor(ada, "the shipped notification", func(ns []note) bool { return len(ns) == 1 })
	if pending[0].Status != "pending" && pending[0].Status != "sent" {
		t.Fatalf("status %q", pending[0].Status)
	}
	h.Publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	h.waitFor(ada, "both sent", func(ns []note) bool {
		return len(ns) == 2 && ns[0].Status == "sent" && ns[1].Status == "sent"
	})
	if got := h.Query(`SELECT count(*) FROM notifications WHERE template = 'order_shipped' AND to_address = 'ada@example.com'`); got != 1 {
		t.Errorf("shipped notification delivered %d times to ada", got)
	}
}

func TestInvalidEventIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := start(t)
	badID := outbox.NewID()
	h.Publish(badID, contracts.TypeOrderPlacedV1, order, []byte(`{"order_id":"not-a-uuid","user_id":"`+ada+`"}`))
	h.Publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	h.waitFor(ada, "the welcome", func(ns []note) bool { return len(ns) == 1 })
	h.Poll("the invalid event dead-lettered", func() (bool, string) {
		dls, err := outbox.ListDeadLetters(h.Context(), h.Pool, false)
		if err != nil {
			return false, err.Error()
		}
		return len(dls) == 1, fmt.Sprintf("%+v", dls)
	})
	dls, err := outbox.ListDeadLetters(h.Context(), h.Pool, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].MessageID != badID || dls[0].Type != contracts.TypeOrderPlacedV1 {
		t.Errorf("dead letters = %+v, want the invalid event", dls)
	}
	if got := h.Query(`SELECT count(*) FROM notifications WHERE event_id = $1`, badID); got != 0 {
		t.Errorf("the invalid event produced %d notifications", got)
	}
}

func TestListPagingAndBadInput(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.Publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	for i := range 4 {
		id := fmt.Sprintf("0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c%02d", i)
		h.Publish(outbox.NewID(), contracts.TypeOrderDeliveredV1, id, contracts.OrderDeliveredV1{OrderID: id, UserID: ada, ShipmentID: id})
	}
	all := h.waitFor(ada, "five notifications", func(ns []note) bool { return len(ns) == 5 })
	before := h.Query(`SELECT count(*) FROM notifications`)

	var paged []note
	path := "/api/v1/notifications?limit=2"
	for page := 0; path != ""; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		res := h.get(path, ada)
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.Status, res.Body)
		}
		var ns []note
		if err := json.Unmarshal(res.Body, &ns); err != nil {
			t.Fatal(err)
		}
		paged = append(paged, ns...)
		path = ""
		if link := res.Header.Get("Link"); link != "" {
			path = strings.TrimPrefix(strings.SplitN(link, ">", 2)[0], "<")
		}
	}
	if len(paged) != len(all) {
		t.Fatalf("paged %d, want %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].ID != all[i].ID {
			t.Errorf("item %d: paged %s, listed %s", i, paged[i].ID, all[i].ID)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].CreatedAt.After(all[i-1].CreatedAt) {
			t.Errorf("item %d is newer than item %d", i, i-1)
		}
	}

	cases := []struct {
		query, user string
		status      int
	}{
		{"", "", http.StatusUnauthorized},
		{"?limit=abc", ada, http.StatusUnprocessableEntity},
		{"?limit=0", ada, http.StatusUnprocessableEntity},
		{"?limit=-1", ada, http.StatusUnprocessableEntity},
		{"?limit=101", ada, http.StatusUnprocessableEntity},
		{"?limit=99999999999999999999", ada, http.StatusUnprocessableEntity},
		{"?limit=", ada, http.StatusUnprocessableEntity},
		{"?limit=1&limit=2", ada, http.StatusUnprocessableEntity},
		{"?before=nope", ada, http.StatusUnprocessableEntity},
		{"?page=2", ada, http.StatusUnprocessableEntity},
	}
	for _, tc := range cases {
		res := h.get("/api/v1/notifications"+tc.query, tc.user)
		if res.Status != tc.status || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%q as %q: %d %s %s, want %d problem+json", tc.query, tc.user, res.Status, res.Header.Get("Content-Type"), res.Body, tc.status)
		}
	}
	if got := h.list(ada, "?before=0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4fff"); len(got) != 0 {
		t.Errorf("unknown cursor gave %d items", len(got))
	}
	// Another customer's cursor reveals nothing.
	if got := h.list(bob, "?before="+all[0].ID); len(got) != 0 {
		t.Errorf("bob with ada's cursor sees %d items", len(got))
	}
	if after := h.Query(`SELECT count(*) FROM notifications`); after != before {
		t.Errorf("reads changed the notifications: %d -> %d", before, after)
	}
}
