package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// AsyncAPI versions the document follows.
const (
	asyncAPIVersion    = "3.0.0"
	amqpBindingVersion = "0.3.0"
)

// inboxConsumer is the consumer every consuming service runs: its queue is
// shopmesh.<service>.inbox and binds every type the service consumes.
const inboxConsumer = "inbox"

// exchangeName and queueName mirror outbox.ExchangeName and
// outbox.QueueName: contracts is a leaf and must not import outbox, so a
// test keeps the two spellings equal.
func exchangeName(service string) string        { return "shopmesh." + service }
func queueName(service, consumer string) string { return "shopmesh." + service + "." + consumer }

// envelopeSchema describes the headers every event carries (outbox/event.go:
// the Header* names). The relay adds x-outbox-committed-at; replays add
// x-shopmesh-replay.
const envelopeSchema = `{
  "type": "object",
  "description": "The envelope: AMQP headers every event carries, stored with its outbox row. id, type, source, correlation_id and occurred_at are also set as the AMQP message-id, type, app-id, correlation-id and timestamp properties. Consumers ignore headers they do not know.",
  "required": ["id", "type", "source", "aggregate_id", "occurred_at", "correlation_id"],
  "properties": {
    "id": {
      "type": "string",
      "format": "uuid",
      "description": "The message id, a UUIDv7 and the deduplication key: a consumer applies each id once, however often it is delivered."
    },
    "type": {
      "type": "string",
      "pattern": "^[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*\\.v[1-9][0-9]*$",
      "description": "The event type, <service>.<fact>.v<N>; also the routing key."
    },
    "source": {
      "type": "string",
      "pattern": "^[a-z][a-z0-9_]*$",
      "description": "The producing service: the type's first segment."
    },
    "aggregate_id": {
      "type": "string",
      "minLength": 1,
      "description": "The ordering key: events of one aggregate are delivered in commit order."
    },
    "occurred_at": {
      "type": "string",
      "format": "date-time",
      "description": "When the fact happened (RFC 3339, UTC)."
    },
    "correlation_id": {
      "type": "string",
      "minLength": 1,
      "description": "The flow the event belongs to: the id of the request, or of the first event, that started it. Every event a flow causes carries it."
    },
    "causation_id": {
      "type": "string",
      "format": "uuid",
      "description": "The id of the message whose handling published this event; absent when a request caused it."
    },
    "traceparent": {
      "type": "string",
      "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
      "description": "W3C trace context of the publishing span, when tracing is on."
    },
    "x-outbox-committed-at": {
      "type": "string",
      "format": "date-time",
      "description": "Set by the relay: when the outbox row was committed, the start of end-to-end delivery latency."
    },
    "x-shopmesh-replay": {
      "type": "string",
      "description": "Present on re-deliveries only: \"history\" for a replay, \"dead-letter:<id>\" for a replayed dead letter."
    }
  }
}`

const docDescription = `The events shopmesh's services exchange through RabbitMQ. Generated from the contracts registry by ` + "`shopmesh contracts asyncapi`" + `; do not edit by hand.

Each service publishes to its own durable topic exchange, shopmesh.<service>, with the event type (<service>.<fact>.v<N>) as the routing key; only the service named by a type's first segment publishes it. Each consuming service reads one durable quorum queue, shopmesh.<service>.inbox, bound to exactly the types it consumes, so the broker filters; replicas of a service compete for its messages and every service gets its own copy. Messages are persistent JSON; the envelope travels as headers.

A type never changes incompatibly: within a version only optional fields are added. Anything else is a new version beside the old one, and consumers read every version still in the retained log.`

// AsyncAPI returns the AsyncAPI 3.0 document of the whole system, generated
// from the registry: one channel per producer exchange and one per
// consumer's inbox queue, a send operation per producer and a receive
// operation per consumer, and a message per event type and version with
// its payload schema, envelope headers and golden example. The output is
// deterministic (indented JSON, keys in a fixed order), so a checked-in copy
// can be compared byte for byte.
func AsyncAPI() ([]byte, error) {
	return asyncAPI(Registry())
}

func asyncAPI(types []EventType) ([]byte, error) {
	types = slices.Clone(types)
	slices.SortFunc(types, func(a, b EventType) int { return strings.Compare(a.Name, b.Name) })

	envelope, err := decodeOrdered([]byte(envelopeSchema))
	if err != nil {
		return nil, fmt.Errorf("envelope schema: %w", err)
	}
	schemas := map[string]any{"envelope": envelope}
	shared := map[string]sharedDef{} // hoisted $defs by name
	messages := map[string]apiMessage{}
	sent := map[string][]string{}     // producer -> types
	received := map[string][]string{} // consumer -> types
	for _, e := range types {
		payload, defs, err := payloadSchema(e.Schema)
		if err != nil {
			return nil, fmt.Errorf("event type %s: %w", e.Name, err)
		}
		if _, dup := schemas[e.Name]; dup {
			return nil, fmt.Errorf("event type %s: listed twice", e.Name)
		}
		schemas[e.Name] = payload
		for _, d := range defs {
			if prev, ok := shared[d.name]; ok {
				if prev.canonical != d.canonical {
					return nil, fmt.Errorf("event types %s and %s define $defs/%s differently; the document shares definitions by name, so rename one", prev.owner, e.Name, d.name)
				}
				continue
			}
			if _, taken := schemas[d.name]; taken {
				return nil, fmt.Errorf("event type %s: $defs/%s collides with another schema's name", e.Name, d.name)
			}
			d.owner = e.Name
			shared[d.name] = d
			schemas[d.name] = d.value
		}
		messages[e.Name] = newMessage(e)
		sent[e.Producer] = append(sent[e.Producer], e.Name)
		for _, c := range e.Consumers {
			received[c] = append(received[c], e.Name)
		}
	}

	doc := apiDoc{
		AsyncAPI: asyncAPIVersion,
		Info: apiInfo{
			Title: "shopmesh events",
			// The document's own version; each event type carries its
			// version in its name.
			Version:     "1.0.0",
			Description: docDescription,
		},
		DefaultContentType: "application/json",
		Servers: map[string]apiServer{"rabbitmq": {
			Host:            "{host}:{port}",
			Pathname:        "/{vhost}",
			Protocol:        "amqp",
			ProtocolVersion: "0.9.1",
			Title:           "RabbitMQ",
			Description:     "The RabbitMQ virtual host every exchange and queue below lives in (RabbitMQ 3.10 or later: quorum queues, publisher confirms). Where it runs is deployment configuration (SHOPMESH_AMQP_URL).",
			Variables: map[string]apiServerVariable{
				"host":  {Default: "localhost", Description: "Broker host."},
				"port":  {Default: "5672", Description: "AMQP port."},
				"vhost": {Default: "shopmesh", Description: "Virtual host holding the shopmesh topology."},
			},
			Security: []ref{refTo("components", "securitySchemes", "service")},
		}},
		Channels:   map[string]apiChannel{},
		Operations: map[string]apiOperation{},
		Components: apiComponents{
			Schemas:  schemas,
			Messages: messages,
			SecuritySchemes: map[string]apiSecurityScheme{"service": {
				Type:        "userPassword",
				Description: "Each service connects as its own user, shopmesh_<service>, allowed to configure and write its own exchange and queues (shopmesh.<service>, shopmesh.<service>.*) and to read the exchanges of the services it consumes from.",
			}},
		},
	}
	servers := []ref{refTo("servers", "rabbitmq")}
	for producer, names := range sent {
		id := exchangeName(producer)
		doc.Channels[id] = apiChannel{
			Address:     id,
			Title:       producer + " events",
			Description: fmt.Sprintf("The %s service's topic exchange: every event %s publishes, routed by its type.", producer, producer),
			Servers:     servers,
			Messages:    channelMessages(names),
			Bindings: apiChannelBindings{AMQP: apiAMQPChannel{
				Is:             "routingKey",
				Exchange:       &apiAMQPExchange{Name: id, Type: "topic", Durable: true, AutoDelete: false},
				BindingVersion: amqpBindingVersion,
			}},
		}
		doc.Operations[producer+".send"] = apiOperation{
			Action:      "send",
			Channel:     refTo("channels", id),
			Title:       producer + " publishes",
			Description: fmt.Sprintf("The %s service's relay forwards committed outbox rows to %s in commit order, persistent and mandatory, and marks them sent only after the broker confirms them.", producer, id),
			Messages:    operationMessages(id, names),
			Bindings:    apiOperationBindings{AMQP: apiAMQPOperation{DeliveryMode: 2, Mandatory: true, BindingVersion: amqpBindingVersion}},
		}
	}
	for consumer, names := range received {
		id := queueName(consumer, inboxConsumer)
		var bindings []apiQueueBinding
		for _, name := range names {
			producer, _, _ := parseName(name) // the registry checked every name
			bindings = append(bindings, apiQueueBinding{Exchange: exchangeName(producer), RoutingKey: name})
		}
		doc.Channels[id] = apiChannel{
			Address: id,
			Title:   consumer + " inbox",
			Description: fmt.Sprintf("The %s service's quorum queue, bound on each producer's exchange to every type %s consumes (x-bindings). "+
				"Replicas of %s compete for its messages. What the broker dead-letters goes to %s.dlx and its queue %s.dlq.", consumer, consumer, consumer, id, id),
			Servers:  servers,
			Messages: channelMessages(names),
			Bindings: apiChannelBindings{AMQP: apiAMQPChannel{
				Is:             "queue",
				Queue:          &apiAMQPQueue{Name: id, Durable: true, Exclusive: false, AutoDelete: false},
				BindingVersion: amqpBindingVersion,
				Bindings:       bindings,
			}},
		}
		doc.Operations[consumer+".receive"] = apiOperation{
			Action:      "receive",
			Channel:     refTo("channels", id),
			Title:       consumer + " consumes",
			Description: fmt.Sprintf("The %s service applies each message once, in one transaction with its inbox claim, then acknowledges it. A message it cannot apply (unknown type or version, invalid payload, exhausted retries) is dead-lettered with the reason, never acknowledged silently.", consumer),
			Messages:    operationMessages(id, names),
			Bindings:    apiOperationBindings{AMQP: apiAMQPOperation{Ack: true, BindingVersion: amqpBindingVersion}},
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode AsyncAPI document: %w", err)
	}
	return buf.Bytes(), nil
}

func newMessage(e EventType) apiMessage {
	return apiMessage{
		Name:        e.Name,
		Title:       e.Name,
		Description: e.Description,
		ContentType: "application/json",
		Headers: apiHeaders{
			Type:  "object",
			AllOf: []ref{refTo("components", "schemas", "envelope")},
			Properties: map[string]apiConst{
				"type":   {Const: e.Name},
				"source": {Const: e.Producer},
			},
		},
		Payload:       refTo("components", "schemas", e.Name),
		CorrelationID: apiCorrelationID{Location: "$message.header#/correlation_id"},
		Bindings:      apiMessageBindings{AMQP: apiAMQPMessage{MessageType: e.Name, BindingVersion: amqpBindingVersion}},
		Examples: []apiExample{{
			Name:    "golden",
			Summary: "The golden example, contracts/examples/" + e.Name + ".json.",
			Payload: e.Example,
		}},
	}
}

func channelMessages(names []string) map[string]ref {
	out := make(map[string]ref, len(names))
	for _, name := range names {
		out[name] = refTo("components", "messages", name)
	}
	return out
}

// operationMessages points into the channel's own messages, as AsyncAPI 3
// requires of an operation.
func operationMessages(channel string, names []string) []ref {
	out := make([]ref, 0, len(names))
	for _, name := range slices.Sorted(slices.Values(names)) {
		out = append(out, refTo("channels", channel, "messages", name))
	}
	return out
}

// sharedDef is a $defs entry hoisted to components/schemas.
type sharedDef struct {
	name      string
	value     any
	canonical string // compact JSON, to tell identical definitions apart
	owner     string // the first type that defined it
}

// payloadSchema turns an event schema into the payload schema of the
// document: $schema, $id and $defs are dropped, every $defs entry is
// returned to be shared under components/schemas, and each "#/$defs/<name>"
// reference is rewritten to point there. The keywords the contracts use are
// the same in draft 2020-12 and in the AsyncAPI Schema Object (a superset of
// draft 07), so the schema keeps its meaning.
func payloadSchema(raw []byte) (any, []sharedDef, error) {
	v, err := decodeOrdered(raw)
	if err != nil {
		return nil, nil, err
	}
	root, ok := v.(ordered)
	if !ok {
		return nil, nil, errors.New("schema is not a JSON object")
	}
	var defs []sharedDef
	var payload ordered
	for _, m := range root {
		switch m.key {
		case "$schema", "$id":
		case "$defs":
			obj, ok := m.value.(ordered)
			if !ok {
				return nil, nil, errors.New("$defs is not an object")
			}
			for _, d := range obj {
				value, err := rewriteRefs(d.value)
				if err != nil {
					return nil, nil, fmt.Errorf("$defs/%s: %w", d.key, err)
				}
				canonical, err := json.Marshal(value)
				if err != nil {
					return nil, nil, err
				}
				defs = append(defs, sharedDef{name: d.key, value: value, canonical: string(canonical)})
			}
		default:
			value, err := rewriteRefs(m.value)
			if err != nil {
				return nil, nil, err
			}
			payload = append(payload, member{m.key, value})
		}
	}
	return payload, defs, nil
}

func rewriteRefs(v any) (any, error) {
	switch v := v.(type) {
	case ordered:
		out := make(ordered, 0, len(v))
		for _, m := range v {
			if s, ok := m.value.(string); ok && m.key == "$ref" {
				name, ok := strings.CutPrefix(s, "#/$defs/")
				if !ok || strings.Contains(name, "/") {
					return nil, fmt.Errorf("$ref %q: only #/$defs/<name> references are supported", s)
				}
				out = append(out, member{m.key, refTo("components", "schemas", name).Ref})
				continue
			}
			value, err := rewriteRefs(m.value)
			if err != nil {
				return nil, err
			}
			out = append(out, member{m.key, value})
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			var err error
			if out[i], err = rewriteRefs(item); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

// ordered is a JSON object that keeps its members in document order, so
// schemas read in the document as their authors wrote them.
type ordered []member

type member struct {
	key   string
	value any
}

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(m.key)
		if err != nil {
			return nil, err
		}
		v, err := marshalNoEscape(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalNoEscape marshals v without escaping <, > and &, as the document
// encoder does.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// decodeOrdered decodes JSON into ordered objects, []any, json.Number,
// string, bool and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeOrderedValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func decodeOrderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := ordered{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, member{key.(string), v})
		}
		_, err := dec.Token()
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	}
	return tok, nil
}

// ref is an AsyncAPI Reference Object.
type ref struct {
	Ref string `json:"$ref"`
}

// refTo points at a location of the document.
func refTo(tokens ...string) ref { return ref{Ref: "#" + pointer(tokens...)} }

// The document's shape: AsyncAPI 3.0 objects, fields in the order a reader
// expects. Maps are encoded with sorted keys.
type (
	apiDoc struct {
		AsyncAPI           string                  `json:"asyncapi"`
		Info               apiInfo                 `json:"info"`
		DefaultContentType string                  `json:"defaultContentType"`
		Servers            map[string]apiServer    `json:"servers"`
		Channels           map[string]apiChannel   `json:"channels"`
		Operations         map[string]apiOperation `json:"operations"`
		Components         apiComponents           `json:"components"`
	}
	apiInfo struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	}
	apiServer struct {
		Host            string                       `json:"host"`
		Pathname        string                       `json:"pathname"`
		Protocol        string                       `json:"protocol"`
		ProtocolVersion string                       `json:"protocolVersion"`
		Title           string                       `json:"title"`
		Description     string                       `json:"description"`
		Variables       map[string]apiServerVariable `json:"variables"`
		Security        []ref                        `json:"security"`
	}
	apiServerVariable struct {
		Default     string `json:"default"`
		Description string `json:"description"`
	}
	apiChannel struct {
		Address     string             `json:"address"`
		Title       string             `json:"title"`
		Description string             `json:"description"`
		Servers     []ref              `json:"servers"`
		Messages    map[string]ref     `json:"messages"`
		Bindings    apiChannelBindings `json:"bindings"`
	}
	apiChannelBindings struct {
		AMQP apiAMQPChannel `json:"amqp"`
	}
	apiAMQPChannel struct {
		Is             string           `json:"is"`
		Exchange       *apiAMQPExchange `json:"exchange,omitempty"`
		Queue          *apiAMQPQueue    `json:"queue,omitempty"`
		BindingVersion string           `json:"bindingVersion"`
		// Bindings lists a queue's bindings, which the AMQP binding has no
		// field for.
		Bindings []apiQueueBinding `json:"x-bindings,omitempty"`
	}
	apiAMQPExchange struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		Durable    bool   `json:"durable"`
		AutoDelete bool   `json:"autoDelete"`
	}
	apiAMQPQueue struct {
		Name       string `json:"name"`
		Durable    bool   `json:"durable"`
		Exclusive  bool   `json:"exclusive"`
		AutoDelete bool   `json:"autoDelete"`
	}
	apiQueueBinding struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routingKey"`
	}
	apiOperation struct {
		Action      string               `json:"action"`
		Channel     ref                  `json:"channel"`
		Title       string               `json:"title"`
		Description string               `json:"description"`
		Messages    []ref                `json:"messages"`
		Bindings    apiOperationBindings `json:"bindings"`
	}
	apiOperationBindings struct {
		AMQP apiAMQPOperation `json:"amqp"`
	}
	apiAMQPOperation struct {
		DeliveryMode   int    `json:"deliveryMode,omitempty"`
		Mandatory      bool   `json:"mandatory,omitempty"`
		Ack            bool   `json:"ack,omitempty"`
		BindingVersion string `json:"bindingVersion"`
	}
	apiComponents struct {
		Schemas         map[string]any               `json:"schemas"`
		Messages        map[string]apiMessage        `json:"messages"`
		SecuritySchemes map[string]apiSecurityScheme `json:"securitySchemes"`
	}
	apiSecurityScheme struct {
		Type        string `json:"type"`
		Description string `json:"description"`
	}
	apiMessage struct {
		Name          string             `json:"name"`
		Title         string             `json:"title"`
		Description   string             `json:"description"`
		ContentType   string             `json:"contentType"`
		Headers       apiHeaders         `json:"headers"`
		Payload       ref                `json:"payload"`
		CorrelationID apiCorrelationID   `json:"correlationId"`
		Bindings      apiMessageBindings `json:"bindings"`
		Examples      []apiExample       `json:"examples"`
	}
	// apiHeaders is the envelope narrowed to one type: its type and source
	// headers are constants.
	apiHeaders struct {
		Type       string              `json:"type"`
		AllOf      []ref               `json:"allOf"`
		Properties map[string]apiConst `json:"properties"`
	}
	apiConst struct {
		Const string `json:"const"`
	}
	apiCorrelationID struct {
		Location string `json:"location"`
	}
	apiMessageBindings struct {
		AMQP apiAMQPMessage `json:"amqp"`
	}
	apiAMQPMessage struct {
		MessageType    string `json:"messageType"`
		BindingVersion string `json:"bindingVersion"`
	}
	apiExample struct {
		Name    string          `json:"name"`
		Summary string          `json:"summary"`
		Payload json.RawMessage `json:"payload"`
	}
)
