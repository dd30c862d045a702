package notification_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

const staffEmail = "ops@example.com"

// harness is one notification service running in-process on a fresh
// database and vhost, fed by events published straight to the producers'
// exchanges, with a scratch queue on its own exchange.
type harness struct {
	t    *testing.T
	base string
	pool *pgxpool.Pool
	pub  *amqp.Channel
	sent <-chan amqp.Delivery
}

func consumed() []string {
	var types []string
	for _, et := range contracts.Registry() {
		if slices.Contains(et.Consumers, notification.Name) {
			types = append(types, et.Name)
		}
	}
	return types
}

func start(t *testing.T) *harness {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	amqpURL := testenv.NewVHost(t)
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The topology `shopmesh migrate` declares: every producer's exchange
	// and the service's inbox queue with its bindings.
	types := consumed()
	for _, typ := range types {
		p, _ := outbox.ProducerOf(typ)
		if err := outbox.DeclareExchange(ch, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := outbox.DeclareExchange(ch, notification.Name); err != nil {
		t.Fatal(err)
	}
	if err := outbox.DeclareQueue(ch, outbox.QueueSpec{Name: outbox.QueueName(notification.Name, notification.Consumer),
		Types: types, DeliveryLimit: 20, SingleActiveConsumer: true}); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("scratch.notification", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "#", outbox.ExchangeName(notification.Name), false, nil); err != nil {
		t.Fatal(err)
	}
	sent, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	cfg := notification.Config{
		Kit: servicekit.Config{DatabaseURL: dbURL, AMQPURL: amqpURL, RelayPollInterval: 100 * time.Millisecond,
			OnListen: func(a string) { addr <- a }},
		StaffEmail:       staffEmail,
		DispatchInterval: 20 * time.Millisecond,
		SendBackoff:      50 * time.Millisecond,
		MaxSendBackoff:   200 * time.Millisecond,
		Consumer: func(c *outbox.ConsumerConfig) {
			c.RetryBackoff = 20 * time.Millisecond
		},
	}
	go func() { done <- notification.Run(ctx, cfg, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancellation")
		}
	})
	h := &harness{t: t, pub: pub, sent: sent}
	select {
	case a := <-addr:
		h.base = "http://" + a
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("service did not listen within 60s")
	}
	if h.pool, err = pgxpool.New(context.Background(), dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.pool.Close)
	return h
}

// publish sends an event as its producer's relay would: to the producer's
// exchange, routed by type, with the envelope in the headers.
func (h *harness) publish(id, typ, aggregateID string, payload any) {
	h.t.Helper()
	body, ok := payload.([]byte)
	if !ok {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			h.t.Fatal(err)
		}
	}
	producer, err := outbox.ProducerOf(typ)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := h.pub.PublishWithDeferredConfirmWithContext(ctx, outbox.ExchangeName(producer), typ, true, false, amqp.Publishing{
		Headers: amqp.Table{
			outbox.HeaderID: id, outbox.HeaderType: typ, outbox.HeaderSource: producer,
			outbox.HeaderAggregateID: aggregateID, outbox.HeaderOccurredAt: time.Now().UTC().Format(time.RFC3339Nano),
		},
		MessageId: id, Type: typ, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
	})
	if err != nil {
		h.t.Fatalf("publish %s: %v", typ, err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		h.t.Fatalf("publish %s not confirmed: %v", typ, err)
	}
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

type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) get(path, userID string) response {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if userID != "" {
		req.Header.Set(httpkit.HeaderUserID, userID)
		req.Header.Set(httpkit.HeaderUserRole, "customer")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (h *harness) list(userID, query string) []note {
	h.t.Helper()
	res := h.get("/api/v1/notifications"+query, userID)
	if res.status != http.StatusOK {
		h.t.Fatalf("list: %d %s", res.status, res.body)
	}
	var out []note
	if err := json.Unmarshal(res.body, &out); err != nil {
		h.t.Fatalf("list: %v: %s", err, res.body)
	}
	return out
}

// waitFor polls the user's notifications until ok accepts them.
func (h *harness) waitFor(userID string, what string, ok func([]note) bool) []note {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		notes := h.list(userID, "?limit=100")
		if ok(notes) {
			return notes
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; have %+v", what, notes)
		}
		time.Sleep(25 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
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
	h.publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada Lovelace"})
	h.publish(outbox.NewID(), contracts.TypeUserRegisteredV1, bob, contracts.UserRegisteredV1{UserID: bob, Email: "bob@example.com", Name: "Bob"})
	// Different aggregates are applied in parallel: let the registration
	// land before the order events, as it does in the shop.
	h.waitFor(ada, "the welcome", func(ns []note) bool { return len(ns) == 1 })

	placedID := outbox.NewID()
	placed := contracts.OrderPlacedV1{OrderID: order, UserID: ada, Lines: lines, Total: money(2500), ShippingAddress: address}
	// Delivered twice (a relay crash after the confirm, a broker redelivery).
	h.publish(placedID, contracts.TypeOrderPlacedV1, order, placed)
	h.publish(placedID, contracts.TypeOrderPlacedV1, order, placed)
	// Events of one aggregate are applied in order, so once the next one is
	// visible the duplicate has been handled.
	h.publish(outbox.NewID(), contracts.TypeOrderCancelledV1, order, contracts.OrderCancelledV1{
		OrderID: order, UserID: ada, Reason: contracts.ReasonPaymentDeclined, Lines: lines, Total: money(2500),
		Compensations: []contracts.Compensation{contracts.CompensateReleaseStock}})
	h.publish(outbox.NewID(), contracts.TypeLowStockV1, "0190d6a2-0f11-7a22-8b33-4c44d55e66f7",
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
	if got := h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, placedID); got != 1 {
		t.Errorf("%d notifications for the event delivered twice, want 1", got)
	}
	if got := h.count(`SELECT coalesce(sum(count), 0)::int FROM inbox_duplicates WHERE consumer = 'inbox'`); got != 1 {
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
	if got := h.count(`SELECT count(*) FROM notifications WHERE audience = 'staff' AND recipient = $1 AND template = 'staff_low_stock'`, staffEmail); got != 1 {
		t.Errorf("staff low-stock alerts = %d, want 1", got)
	}
	if got := h.count(`SELECT count(*) FROM notifications WHERE audience = 'staff' AND template <> 'staff_low_stock'`); got != 0 {
		t.Errorf("staff got %d alerts that are not failures", got)
	}

	// Every delivery is announced once with notification.sent.v1.
	total := h.count(`SELECT count(*) FROM notifications`)
	deadline := time.After(20 * time.Second)
	seen := map[string]bool{}
	for len(seen) < total {
		select {
		case d := <-h.sent:
			typ, _ := d.Headers[outbox.HeaderType].(string)
			if err := contracts.Validate(typ, d.Body); err != nil || typ != contracts.TypeNotificationSentV1 {
				t.Fatalf("published %s: %v", typ, err)
			}
			var p contracts.NotificationSentV1
			_ = json.Unmarshal(d.Body, &p)
			if seen[p.NotificationID] {
				t.Errorf("notification %s announced twice", p.NotificationID)
			}
			seen[p.NotificationID] = true
		case <-deadline:
			t.Fatalf("%d of %d notification.sent.v1 events", len(seen), total)
		}
	}
	if got := h.count(`SELECT count(*) FROM notifications WHERE status = 'sent' AND to_address = 'ada@example.com'`); got != 3 {
		t.Errorf("sent to ada@example.com: %d, want 3", got)
	}
}

func TestEventBeforeRegistrationIsDeliveredLater(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.publish(outbox.NewID(), contracts.TypeOrderShippedV1, order, contracts.OrderShippedV1{
		OrderID: order, UserID: ada, ShipmentID: "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c91", Carrier: "simpost", TrackingNumber: "SP1"})
	pending := h.waitFor(ada, "the shipped notification", func(ns []note) bool { return len(ns) == 1 })
	if pending[0].Status != "pending" && pending[0].Status != "sent" {
		t.Fatalf("status %q", pending[0].Status)
	}
	h.publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	h.waitFor(ada, "both sent", func(ns []note) bool {
		return len(ns) == 2 && ns[0].Status == "sent" && ns[1].Status == "sent"
	})
	if got := h.count(`SELECT count(*) FROM notifications WHERE template = 'order_shipped' AND to_address = 'ada@example.com'`); got != 1 {
		t.Errorf("shipped notification delivered %d times to ada", got)
	}
}

func TestInvalidEventIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := start(t)
	badID := outbox.NewID()
	h.publish(badID, contracts.TypeOrderPlacedV1, order, []byte(`{"order_id":"not-a-uuid","user_id":"`+ada+`"}`))
	h.publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	h.waitFor(ada, "the welcome", func(ns []note) bool { return len(ns) == 1 })
	deadline := time.Now().Add(20 * time.Second)
	for {
		dls, err := outbox.ListDeadLetters(context.Background(), h.pool, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 1 {
			if dls[0].MessageID != badID || dls[0].Type != contracts.TypeOrderPlacedV1 {
				t.Errorf("dead letter = %+v", dls[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters = %+v, want the invalid event", dls)
		}
		time.Sleep(25 * time.Millisecond) // poll interval, bounded by the deadline
	}
	if got := h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, badID); got != 0 {
		t.Errorf("the invalid event produced %d notifications", got)
	}
}

func TestListPagingAndBadInput(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.publish(outbox.NewID(), contracts.TypeUserRegisteredV1, ada, contracts.UserRegisteredV1{UserID: ada, Email: "ada@example.com", Name: "Ada"})
	for i := range 4 {
		id := fmt.Sprintf("0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c%02d", i)
		h.publish(outbox.NewID(), contracts.TypeOrderDeliveredV1, id, contracts.OrderDeliveredV1{OrderID: id, UserID: ada, ShipmentID: id})
	}
	all := h.waitFor(ada, "five notifications", func(ns []note) bool { return len(ns) == 5 })
	before := h.count(`SELECT count(*) FROM notifications`)

	var paged []note
	path := "/api/v1/notifications?limit=2"
	for page := 0; path != ""; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		res := h.get(path, ada)
		if res.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.status, res.body)
		}
		var ns []note
		if err := json.Unmarshal(res.body, &ns); err != nil {
			t.Fatal(err)
		}
		paged = append(paged, ns...)
		path = ""
		if link := res.header.Get("Link"); link != "" {
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
		if res.status != tc.status || res.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%q as %q: %d %s %s, want %d problem+json", tc.query, tc.user, res.status, res.header.Get("Content-Type"), res.body, tc.status)
		}
	}
	if got := h.list(ada, "?before=0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4fff"); len(got) != 0 {
		t.Errorf("unknown cursor gave %d items", len(got))
	}
	// Another customer's cursor reveals nothing.
	if got := h.list(bob, "?before="+all[0].ID); len(got) != 0 {
		t.Errorf("bob with ada's cursor sees %d items", len(got))
	}
	if after := h.count(`SELECT count(*) FROM notifications`); after != before {
		t.Errorf("reads changed the notifications: %d -> %d", before, after)
	}
}
