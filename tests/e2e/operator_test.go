package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/system"
)

// The operator's commands work on a running system: a message that breaks
// its contract is dead-lettered with its reason, shows in `status` and
// `dlq list/show`, `dlq replay` sends it back (it fails again, so it is
// dead-lettered again, never applied), `dlq discard` closes it, and
// `replay` re-delivers history that the inbox absorbs.
func TestOperatorCommands(t *testing.T) {
	sys := system.Start(t, system.Options{})
	admin := sys.Admin()
	p := admin.CreateProduct(sku("ops"), 100, 3)
	c := sys.Customer("ops")
	c.AddToCart(p.ID, 1)
	id := c.Checkout(outbox.NewID(), "tok_ok", system.DefaultAddress("GB"))
	c.WaitOrder(id, "delivered", sagaTimeout)

	// A producer bug: an order.placed.v2 whose payload breaks its schema.
	badID := outbox.NewID()
	publishRaw(t, sys.AMQPURL, "shopmesh.order", "order.placed.v2", badID, `{"order_id": "not-a-uuid"}`)

	run := func(args ...string) string {
		t.Helper()
		out, err := sys.Command(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("shopmesh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var deadLetterID string
	system.Eventually(t, 30*time.Second, "dead letter listed", func() (bool, string) {
		out := run("dlq", "list", "inventory")
		if ids := deadLetterIDs(out, badID); len(ids) == 1 {
			deadLetterID = ids[0]
			return true, out
		}
		return false, out
	})
	show := run("dlq", "show", "inventory", deadLetterID)
	var shown struct {
		MessageID string `json:"message_id"`
		Reason    string `json:"reason"`
		State     string `json:"state"`
	}
	if err := json.Unmarshal([]byte(show), &shown); err != nil {
		t.Fatalf("dlq show is not JSON: %v\n%s", err, show)
	}
	if shown.MessageID != badID || shown.State != "open" || !strings.Contains(shown.Reason, "order_id") {
		t.Errorf("dlq show = %+v, want the open dead letter naming the bad field", shown)
	}

	var statuses []struct {
		Service       string `json:"service"`
		Error         string `json:"error"`
		OutboxPending int64  `json:"outbox_pending"`
		DeadLetters   int64  `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(run(append([]string{"status", "--json"}, system.Services...)...)), &statuses); err != nil {
		t.Fatal(err)
	}
	for _, s := range statuses {
		want := int64(0)
		if s.Service == "inventory" {
			want = 1
		}
		if s.Error != "" || s.DeadLetters < want {
			t.Errorf("status of %s = %+v, want at least %d dead letters and no error", s.Service, s, want)
		}
	}

	// Replayed without a fix, it fails again and is dead-lettered again.
	run("dlq", "replay", "inventory", deadLetterID)
	var reopened string
	system.Eventually(t, 30*time.Second, "replayed message dead-lettered again", func() (bool, string) {
		out := run("dlq", "list", "inventory")
		ids := deadLetterIDs(out, badID)
		if len(ids) == 1 && ids[0] != deadLetterID {
			reopened = ids[0]
			return true, out
		}
		return false, out
	})
	all := run("dlq", "list", "--all", "inventory")
	if strings.Count(all, badID) != 2 || !strings.Contains(all, "replayed") {
		t.Errorf("dlq list --all should show the replayed letter and the new one:\n%s", all)
	}
	run("dlq", "discard", "inventory", reopened)
	if out := run("dlq", "list", "inventory"); strings.Contains(out, badID) {
		t.Errorf("discarded dead letter still listed as open:\n%s", out)
	}

	// History replayed to one consumer is absorbed by its inbox.
	out := run("replay", "--consumer", "notification", "--since", "1h",
		"--types", "order.placed.v2,order.confirmed.v1,order.shipped.v1,order.delivered.v1")
	if !strings.Contains(out, "replayed") {
		t.Errorf("replay output: %s", out)
	}
	var replayed int
	fmt.Sscanf(out[strings.LastIndex(out, "replayed"):], "replayed %d events", &replayed)
	if replayed == 0 {
		t.Fatalf("replay sent nothing:\n%s", out)
	}
	system.Eventually(t, 30*time.Second, "replay absorbed", func() (bool, string) {
		var st []struct {
			Duplicates map[string]int64 `json:"inbox_duplicates"`
		}
		raw := run("status", "--json", "notification")
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return false, raw
		}
		return len(st) == 1 && st[0].Duplicates["inbox"] >= int64(replayed), raw
	})
	// Nothing was applied twice: the customer still has one notification per event.
	r := c.Do("GET", "/api/v1/notifications?limit=100", nil)
	var seen = map[string]bool{}
	var body any
	r.JSON(t, &body)
	for _, n := range itemsOf(body) {
		m, _ := n.(map[string]any)
		key := fmt.Sprint(m["event_type"], m["order_id"], m["channel"])
		if seen[key] {
			t.Errorf("notification %s delivered twice after replay", key)
		}
		seen[key] = true
	}
}

// deadLetterIDs returns the ID column of `dlq list` rows for a message id.
func deadLetterIDs(list, messageID string) []string {
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == messageID {
			ids = append(ids, f[1])
		}
	}
	return ids
}

// publishRaw publishes a message with the envelope headers, bypassing any
// outbox, as a misbehaving producer would.
func publishRaw(t *testing.T, url, exchange, typ, id, body string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirm(exchange, typ, true, false, amqp.Publishing{
		MessageId: id, Type: typ, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(body),
		Headers: amqp.Table{outbox.HeaderID: id, outbox.HeaderType: typ, outbox.HeaderSource: "order",
			outbox.HeaderAggregateID: id, outbox.HeaderOccurredAt: time.Now().UTC().Format(time.RFC3339Nano)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !dc.Wait() {
		t.Fatal("broker nacked the raw publish")
	}
}
