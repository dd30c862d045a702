package contracts

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shopmesh/shopmesh/outbox"
)

const regenerate = "go run ./cmd/shopmesh contracts asyncapi --out contracts/asyncapi.json"

func TestCheckedInAsyncAPIIsUpToDate(t *testing.T) {
	want, err := AsyncAPI()
	if err != nil {
		t.Fatalf("AsyncAPI(): %v", err)
	}
	got, err := os.ReadFile("asyncapi.json")
	if err != nil {
		t.Fatalf("read the checked-in document: %v; run `%s`", err, regenerate)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("contracts/asyncapi.json differs from the document the registry generates (%s); run `%s`", firstDifference(got, want), regenerate)
	}
}

// firstDifference names the first line where the checked-in document and
// the generated one differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ": checked in " + strings.TrimSpace(gl) + ", generated " + strings.TrimSpace(wl)
		}
	}
	return "whitespace only"
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestAsyncAPIIsDeterministic(t *testing.T) {
	first, err := AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := AsyncAPI()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("two calls of AsyncAPI() returned different documents")
		}
	}
	if !json.Valid(first) || !bytes.HasSuffix(first, []byte("}\n")) || !bytes.Contains(first, []byte("\n  \"info\": {")) {
		t.Error("the document is not pretty-printed JSON ending in a newline")
	}
}

// asyncAPIDoc returns the generated document decoded into generic JSON.
func asyncAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// componentKey is the key pattern AsyncAPI 3.0 allows in components (and
// that channel and operation ids follow here).
var componentKey = regexp.MustCompile(`^[\w\d.\-_]+$`)

func TestAsyncAPIStructure(t *testing.T) {
	doc := asyncAPIDoc(t)

	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v, want 3.0.0", doc["asyncapi"])
	}
	info := object(t, doc, "info")
	for _, f := range []string{"title", "version", "description"} {
		if s, _ := info[f].(string); s == "" {
			t.Errorf("info.%s is missing", f)
		}
	}
	servers := object(t, doc, "servers")
	if len(servers) == 0 {
		t.Error("no servers")
	}
	for id, s := range servers {
		s := s.(map[string]any)
		if s["protocol"] != "amqp" || s["host"] == nil {
			t.Errorf("server %s: protocol %v, host %v; want amqp and a host", id, s["protocol"], s["host"])
		}
	}
	channels, operations := object(t, doc, "channels"), object(t, doc, "operations")
	components := object(t, doc, "components")
	messages, schemas := object(t, components, "messages"), object(t, components, "schemas")
	for _, m := range []map[string]any{channels, operations, messages, schemas} {
		for k := range m {
			if !componentKey.MatchString(k) {
				t.Errorf("key %q is not a valid AsyncAPI id", k)
			}
		}
	}

	// Every $ref anywhere, schemas included, resolves inside the document.
	walkRefs(doc, "", func(at, ref string) {
		ptr, ok := strings.CutPrefix(ref, "#")
		if !ok {
			t.Errorf("%s: $ref %q points outside the document", at, ref)
			return
		}
		if _, ok := resolvePointer(doc, ptr); !ok {
			t.Errorf("%s: $ref %q does not resolve", at, ref)
		}
	})

	// Operations use existing channels and only their channel's messages.
	for id, o := range operations {
		o := o.(map[string]any)
		if a := o["action"]; a != "send" && a != "receive" {
			t.Errorf("operation %s: action %v", id, a)
		}
		chRef := refOf(o["channel"])
		chID, ok := strings.CutPrefix(chRef, "#/channels/")
		if _, exists := channels[chID]; !ok || !exists {
			t.Errorf("operation %s: channel %q is not a channel of the document", id, chRef)
			continue
		}
		chMessages := object(t, channels[chID].(map[string]any), "messages")
		list, _ := o["messages"].([]any)
		if len(list) == 0 {
			t.Errorf("operation %s: no messages", id)
		}
		for _, m := range list {
			name, ok := strings.CutPrefix(refOf(m), "#/channels/"+chID+"/messages/")
			if _, exists := chMessages[name]; !ok || !exists {
				t.Errorf("operation %s: message %q is not one of channel %s's", id, refOf(m), chID)
			}
		}
	}

	// Channel messages are component messages; every component message is
	// carried by some channel and names its type.
	carried := map[string]bool{}
	for id, c := range channels {
		c := c.(map[string]any)
		if c["address"] != id {
			t.Errorf("channel %s: address %v, want its broker name", id, c["address"])
		}
		for key, m := range object(t, c, "messages") {
			name, ok := strings.CutPrefix(refOf(m), "#/components/messages/")
			if _, exists := messages[name]; !ok || !exists || name != key {
				t.Errorf("channel %s: message %s is %q, want a reference to components/messages/%s", id, key, refOf(m), key)
			}
			carried[name] = true
		}
	}
	for name, m := range messages {
		m := m.(map[string]any)
		if !carried[name] {
			t.Errorf("message %s is on no channel", name)
		}
		if m["name"] != name {
			t.Errorf("message %s: name %v", name, m["name"])
		}
		if refOf(m["payload"]) != "#/components/schemas/"+name {
			t.Errorf("message %s: payload %v, want its schema", name, m["payload"])
		}
		if examples, _ := m["examples"].([]any); len(examples) == 0 {
			t.Errorf("message %s: no example", name)
		}
	}
}

func TestAsyncAPICoversTheRegistry(t *testing.T) {
	doc := asyncAPIDoc(t)
	channels, operations := object(t, doc, "channels"), object(t, doc, "operations")
	messages := object(t, object(t, doc, "components"), "messages")

	sent, received := map[string][]string{}, map[string][]string{}
	for _, e := range Registry() {
		m, ok := messages[e.Name].(map[string]any)
		if !ok {
			t.Errorf("%s: no message", e.Name)
			continue
		}
		example := object(t, m["examples"].([]any)[0].(map[string]any), "payload")
		if got, want := mustJSON(example), mustJSON(generic(t, e.Example)); !bytes.Equal(got, want) {
			t.Errorf("%s: example is not the golden file", e.Name)
		}
		sent[e.Producer] = append(sent[e.Producer], e.Name)
		for _, c := range e.Consumers {
			received[c] = append(received[c], e.Name)
		}
	}
	if got, want := len(messages), len(Registry()); got != want {
		t.Errorf("%d messages, want one per registered type (%d)", got, want)
	}

	for producer, types := range sent {
		exchange := outbox.ExchangeName(producer)
		ch, ok := channels[exchange].(map[string]any)
		if !ok {
			t.Errorf("no channel for exchange %s", exchange)
			continue
		}
		amqp := object(t, object(t, ch, "bindings"), "amqp")
		ex := object(t, amqp, "exchange")
		if amqp["is"] != "routingKey" || ex["name"] != exchange || ex["type"] != "topic" || ex["durable"] != true {
			t.Errorf("channel %s: AMQP binding %v, want a durable topic exchange", exchange, amqp)
		}
		assertOperation(t, operations, producer+".send", "send", exchange, types)
	}
	for consumer, types := range received {
		queue := outbox.QueueName(consumer, "inbox")
		ch, ok := channels[queue].(map[string]any)
		if !ok {
			t.Errorf("no channel for queue %s", queue)
			continue
		}
		amqp := object(t, object(t, ch, "bindings"), "amqp")
		q := object(t, amqp, "queue")
		if amqp["is"] != "queue" || q["name"] != queue || q["durable"] != true {
			t.Errorf("channel %s: AMQP binding %v, want a durable queue", queue, amqp)
		}
		var bound []string
		for _, b := range amqp["x-bindings"].([]any) {
			b := b.(map[string]any)
			key := b["routingKey"].(string)
			producer, err := outbox.ProducerOf(key)
			if err != nil || b["exchange"] != outbox.ExchangeName(producer) {
				t.Errorf("queue %s: binding %v is not on the type's producer exchange", queue, b)
			}
			bound = append(bound, key)
		}
		if !slices.Equal(bound, types) {
			t.Errorf("queue %s binds %v, want the types %s consumes %v", queue, bound, consumer, types)
		}
		assertOperation(t, operations, consumer+".receive", "receive", queue, types)
	}
	if got, want := len(operations), len(sent)+len(received); got != want {
		t.Errorf("%d operations, want one send per producer and one receive per consumer (%d)", got, want)
	}
}

func assertOperation(t *testing.T, operations map[string]any, id, action, channel string, types []string) {
	t.Helper()
	o, ok := operations[id].(map[string]any)
	if !ok {
		t.Errorf("no operation %s", id)
		return
	}
	if o["action"] != action || refOf(o["channel"]) != "#/channels/"+channel {
		t.Errorf("operation %s: %v on %v, want %s on %s", id, o["action"], o["channel"], action, channel)
	}
	var got []string
	for _, m := range o["messages"].([]any) {
		got = append(got, refOf(m)[strings.LastIndex(refOf(m), "/")+1:])
	}
	if !slices.Equal(got, types) {
		t.Errorf("operation %s: messages %v, want %v", id, got, types)
	}
}

// TestAsyncAPISchemasWork compiles the document's schemas as draft-07 (the
// base of the AsyncAPI Schema Object): every golden example validates
// against its message's payload, and the headers accept a real envelope of
// the type and reject one of another type.
func TestAsyncAPISchemasWork(t *testing.T) {
	b, err := AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	const base = "urn:shopmesh:asyncapi"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseLoader(jsonschema.SchemeURLLoader{})
	if err := c.AddResource(base, doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range Registry() {
		payload, err := c.Compile(base + "#/components/schemas/" + e.Name)
		if err != nil {
			t.Errorf("%s: compile payload schema: %v", e.Name, err)
			continue
		}
		if err := payload.Validate(decodeInstance(t, e.Example)); err != nil {
			t.Errorf("%s: golden example does not validate against the document's payload schema: %v", e.Name, err)
		}
		if err := payload.Validate(map[string]any{}); err == nil {
			t.Errorf("%s: the document's payload schema accepts {}, the registry's does not", e.Name)
		}

		headers, err := c.Compile(base + "#/components/messages/" + e.Name + "/headers")
		if err != nil {
			t.Errorf("%s: compile headers schema: %v", e.Name, err)
			continue
		}
		envelope := map[string]any{
			outbox.HeaderID:            "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90",
			outbox.HeaderType:          e.Name,
			outbox.HeaderSource:        e.Producer,
			outbox.HeaderAggregateID:   "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c91",
			outbox.HeaderOccurredAt:    "2026-11-21T12:00:00.123456Z",
			outbox.HeaderCorrelationID: "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c92",
			outbox.HeaderCausationID:   "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c93",
			outbox.HeaderTraceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			outbox.HeaderCommittedAt:   "2026-11-21T12:00:00.2Z",
			"_watermill_message_uuid":  "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90",
		}
		if err := headers.Validate(envelope); err != nil {
			t.Errorf("%s: headers schema rejects a real envelope: %v", e.Name, err)
		}
		envelope[outbox.HeaderType] = e.Name + "x"
		if err := headers.Validate(envelope); err == nil {
			t.Errorf("%s: headers schema accepts an envelope of another type", e.Name)
		}
	}
}

func decodeInstance(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAsyncAPINamesMatchOutbox keeps the broker names and the envelope the
// document describes equal to what the outbox really uses.
func TestAsyncAPINamesMatchOutbox(t *testing.T) {
	for _, s := range services {
		if got, want := exchangeName(s), outbox.ExchangeName(s); got != want {
			t.Errorf("exchangeName(%q) = %q, outbox uses %q", s, got, want)
		}
		if got, want := queueName(s, inboxConsumer), outbox.QueueName(s, "inbox"); got != want {
			t.Errorf("queueName(%q) = %q, outbox uses %q", s, got, want)
		}
	}
	var envelope struct {
		Required   []string       `json:"required"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(envelopeSchema), &envelope); err != nil {
		t.Fatal(err)
	}
	headers := []string{
		outbox.HeaderID, outbox.HeaderType, outbox.HeaderSource, outbox.HeaderAggregateID,
		outbox.HeaderOccurredAt, outbox.HeaderCorrelationID, outbox.HeaderCausationID,
		outbox.HeaderTraceparent, outbox.HeaderCommittedAt, outbox.HeaderReplay,
	}
	for _, h := range headers {
		if _, ok := envelope.Properties[h]; !ok {
			t.Errorf("envelope schema does not describe header %q", h)
		}
	}
	if len(envelope.Properties) != len(headers) {
		t.Errorf("envelope schema describes %d headers, the outbox sets %d", len(envelope.Properties), len(headers))
	}
	// Publish always sets these; the rest depend on context.
	want := []string{outbox.HeaderID, outbox.HeaderType, outbox.HeaderSource, outbox.HeaderAggregateID, outbox.HeaderOccurredAt, outbox.HeaderCorrelationID}
	if !slices.Equal(envelope.Required, want) {
		t.Errorf("envelope requires %v, want %v", envelope.Required, want)
	}
}

func TestAsyncAPIRefusesConflictingDefinitions(t *testing.T) {
	schema := func(name, currency string) []byte {
		return []byte(`{"$id": "urn:shopmesh:event:` + name + `", "title": "` + name + `", "type": "object",
			"properties": {"total": {"$ref": "#/$defs/money"}},
			"$defs": {"money": {"type": "object", "properties": {"currency": {"type": "string", "pattern": "` + currency + `"}}}}}`)
	}
	types := []EventType{
		{Name: "a.x.v1", Producer: "a", Consumers: []string{"b"}, Schema: schema("a.x.v1", "^[A-Z]{3}$"), Example: []byte(`{}`)},
		{Name: "b.y.v1", Producer: "b", Consumers: []string{"a"}, Schema: schema("b.y.v1", "^[A-Z]{3}$"), Example: []byte(`{}`)},
	}
	if _, err := asyncAPI(types); err != nil {
		t.Fatalf("identical shared definitions: %v", err)
	}
	types[1].Schema = schema("b.y.v1", "^EUR$")
	_, err := asyncAPI(types)
	if err == nil || !strings.Contains(err.Error(), "$defs/money") {
		t.Errorf("asyncAPI with two different $defs/money = %v, want an error naming it", err)
	}
}

func object(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%s is missing or not an object", key)
	}
	return v
}

func refOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["$ref"].(string)
	return s
}

// walkRefs calls fn with the location and value of every $ref in v.
func walkRefs(v any, at string, fn func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if s, ok := child.(string); ok && k == "$ref" {
				fn(at, s)
				continue
			}
			walkRefs(child, at+pointer(k), fn)
		}
	case []any:
		for i, child := range v {
			walkRefs(child, at+"/"+strconv.Itoa(i), fn)
		}
	}
}
