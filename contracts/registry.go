package contracts

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// files holds schemas/<type>.json and examples/<type>.json for every type.
//
//go:embed schemas/*.json examples/*.json
var files embed.FS

// ErrUnknownType is returned (wrapped) for an event type or version this
// build does not know. A consumer should dead-letter such a message with the
// error as its reason rather than acknowledge it.
var ErrUnknownType = errors.New("unknown event type")

// EventType describes one event type at one version.
type EventType struct {
	// Name is the wire type, `<service>.<fact>.v<N>`.
	Name string
	// Producer is the only service that publishes the type; it is Name's
	// first segment.
	Producer string
	// Consumers are the services that subscribe to the type, sorted.
	Consumers []string
	// Version is the N of Name.
	Version int
	// Description says what happened; it is the schema's description.
	Description string
	// Schema is the JSON Schema (draft 2020-12) of the payload.
	Schema json.RawMessage
	// Example is the golden example payload; it validates against Schema.
	Example json.RawMessage
	// New returns a pointer to a new zero value of the payload's Go type.
	New func() any
}

func (e EventType) clone() EventType {
	e.Consumers = slices.Clone(e.Consumers)
	e.Schema = slices.Clone(e.Schema)
	e.Example = slices.Clone(e.Example)
	return e
}

// spec is one catalogue row.
type spec struct {
	name      string
	producer  string
	new       func() any
	consumers []string
}

func newOf[T any]() any { return new(T) }

// catalogue lists every event type, who publishes it and who reacts to it:
// the "reacts to" column of DESIGN.md §2 and the order saga of §3. Analytics
// reads every event except the saga's private timer.
func catalogue() []spec {
	return []spec{
		{TypeUserRegisteredV1, "user", newOf[UserRegisteredV1], []string{"customer", "loyalty", "notification", "analytics"}},
		{TypeUserAddressChangedV1, "user", newOf[UserAddressChangedV1], []string{"customer", "notification", "analytics"}},
		{TypeUserDeactivatedV1, "user", newOf[UserDeactivatedV1], []string{"customer", "loyalty", "notification", "analytics"}},

		{TypeProductCreatedV1, "catalog", newOf[ProductCreatedV1], []string{"cart", "inventory", "analytics"}},
		{TypeProductUpdatedV1, "catalog", newOf[ProductUpdatedV1], []string{"cart", "inventory", "analytics"}},
		{TypePriceChangedV1, "catalog", newOf[PriceChangedV1], []string{"cart", "analytics"}},

		{TypeStockReservedV1, "inventory", newOf[StockReservedV1], []string{"order", "analytics"}},
		{TypeStockReservationFailedV1, "inventory", newOf[StockReservationFailedV1], []string{"order", "analytics"}},
		{TypeStockReleasedV1, "inventory", newOf[StockReleasedV1], []string{"order", "analytics"}},
		{TypeStockCommittedV1, "inventory", newOf[StockCommittedV1], []string{"analytics"}},
		{TypeStockReturnedV1, "inventory", newOf[StockReturnedV1], []string{"order", "analytics"}},
		{TypeStockAdjustedV1, "inventory", newOf[StockAdjustedV1], []string{"analytics"}},
		{TypeStockLevelChangedV1, "inventory", newOf[StockLevelChangedV1], []string{"catalog", "analytics"}},
		{TypeLowStockV1, "inventory", newOf[LowStockV1], []string{"inventory", "notification", "analytics"}},

		{TypeCartLineUpdatedV1, "cart", newOf[CartLineUpdatedV1], []string{"analytics"}},
		{TypeCartLineRemovedV1, "cart", newOf[CartLineRemovedV1], []string{"analytics"}},
		{TypeCartCheckedOutV1, "cart", newOf[CartCheckedOutV1], []string{"order", "analytics"}},

		{TypeOrderPlacedV1, "order", newOf[OrderPlacedV1], []string{"inventory", "customer", "notification", "analytics"}},
		{TypeOrderPlacedV2, "order", newOf[OrderPlacedV2], []string{"inventory", "customer", "notification", "analytics"}},
		{TypeOrderPaymentRequestedV1, "order", newOf[OrderPaymentRequestedV1], []string{"payment", "analytics"}},
		{TypeOrderPaymentTimedOutV1, "order", newOf[OrderPaymentTimedOutV1], []string{"order"}},
		{TypeOrderConfirmedV1, "order", newOf[OrderConfirmedV1], []string{"inventory", "shipping", "invoice", "customer", "notification", "analytics"}},
		{TypeOrderCancelledV1, "order", newOf[OrderCancelledV1], []string{"inventory", "shipping", "customer", "notification", "analytics"}},
		{TypeOrderCancellationRequestedV1, "order", newOf[OrderCancellationRequestedV1], []string{"shipping", "analytics"}},
		{TypeOrderRefundRequestedV1, "order", newOf[OrderRefundRequestedV1], []string{"payment", "analytics"}},
		{TypeOrderShippedV1, "order", newOf[OrderShippedV1], []string{"customer", "notification", "analytics"}},
		{TypeOrderDeliveredV1, "order", newOf[OrderDeliveredV1], []string{"customer", "notification", "analytics"}},
		{TypeOrderCompletedV1, "order", newOf[OrderCompletedV1], []string{"loyalty", "customer", "analytics"}},

		{TypePaymentAuthorizedV1, "payment", newOf[PaymentAuthorizedV1], []string{"order", "analytics"}},
		{TypePaymentDeclinedV1, "payment", newOf[PaymentDeclinedV1], []string{"order", "analytics"}},
		{TypePaymentRefundedV1, "payment", newOf[PaymentRefundedV1], []string{"order", "invoice", "notification", "analytics"}},

		{TypeShipmentCreatedV1, "shipping", newOf[ShipmentCreatedV1], []string{"order", "analytics"}},
		{TypeShipmentDispatchedV1, "shipping", newOf[ShipmentDispatchedV1], []string{"order", "analytics"}},
		{TypeShipmentDeliveredV1, "shipping", newOf[ShipmentDeliveredV1], []string{"order", "analytics"}},
		{TypeShipmentFailedV1, "shipping", newOf[ShipmentFailedV1], []string{"order", "notification", "analytics"}},
		{TypeShipmentCancelledV1, "shipping", newOf[ShipmentCancelledV1], []string{"order", "analytics"}},

		{TypeInvoiceIssuedV1, "invoice", newOf[InvoiceIssuedV1], []string{"notification", "analytics"}},
		{TypeCreditNoteIssuedV1, "invoice", newOf[CreditNoteIssuedV1], []string{"notification", "analytics"}},

		{TypeLoyaltyEnrolledV1, "loyalty", newOf[LoyaltyEnrolledV1], []string{"loyalty", "analytics"}},
		{TypePointsAwardedV1, "loyalty", newOf[PointsAwardedV1], []string{"notification", "analytics"}},
		{TypeEnrolmentBonusFailedV1, "loyalty", newOf[EnrolmentBonusFailedV1], []string{"loyalty", "notification", "analytics"}},
		{TypeEnrolmentRolledBackV1, "loyalty", newOf[EnrolmentRolledBackV1], []string{"analytics"}},

		{TypeNotificationSentV1, "notification", newOf[NotificationSentV1], []string{"analytics"}},
	}
}

// Registry returns every known event type and version, sorted by name.
func Registry() []EventType {
	r := defaultRegistry()
	out := make([]EventType, 0, len(r.names))
	for _, name := range r.names {
		out = append(out, r.types[name].clone())
	}
	return out
}

// Lookup returns the event type with the given wire name, or an error
// wrapping ErrUnknownType.
func Lookup(eventType string) (EventType, error) {
	e, err := defaultRegistry().lookup(eventType)
	if err != nil {
		return EventType{}, err
	}
	return e.clone(), nil
}

// defaultRegistry is built once from the embedded files and never changes.
var defaultRegistry = sync.OnceValue(func() *registry {
	r, err := newRegistry(files, catalogue(), upcasters())
	if err != nil {
		// The files are compiled into the binary and loaded by this package's
		// tests, so a failure is a build defect, like a bad regexp.MustCompile.
		panic(err)
	}
	return r
})

// registry is the immutable index behind Registry, Lookup, Validate and
// Upcast.
type registry struct {
	types     map[string]*entry
	names     []string            // sorted
	upcasters map[string]upcaster // by the type they read
}

type entry struct {
	EventType
	schema *jsonschema.Schema
	passed *passed // shared by the registry's entries
}

// schemaURL is the $id every schema declares.
func schemaURL(eventType string) string { return "urn:shopmesh:event:" + eventType }

// newRegistry indexes specs, compiling each schema from fsys, and checks
// that the catalogue is consistent: names, producers, files and upcasters.
func newRegistry(fsys fs.FS, specs []spec, ups []upcaster) (*registry, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // embedded schemas only, never the network or disk

	r := &registry{types: map[string]*entry{}, upcasters: map[string]upcaster{}}
	passed := newPassed(passedGeneration)
	for _, s := range specs {
		e, err := newEntry(c, fsys, s)
		if err != nil {
			return nil, fmt.Errorf("event type %s: %w", s.name, err)
		}
		e.passed = passed
		if _, dup := r.types[e.Name]; dup {
			return nil, fmt.Errorf("event type %s: listed twice", e.Name)
		}
		r.types[e.Name] = e
		r.names = append(r.names, e.Name)
	}
	slices.Sort(r.names)
	for _, u := range ups {
		if err := r.addUpcaster(u); err != nil {
			return nil, err
		}
	}
	// Consumers must be able to read every version, so every version but the
	// latest of its family needs a step to the next one.
	for _, name := range r.names {
		next := family(name) + ".v" + strconv.Itoa(r.types[name].Version+1)
		if _, ok := r.types[next]; ok && r.upcasters[name].to != next {
			return nil, fmt.Errorf("event type %s: no upcaster to %s", name, next)
		}
	}
	return r, nil
}

func newEntry(c *jsonschema.Compiler, fsys fs.FS, s spec) (*entry, error) {
	service, version, ok := parseName(s.name)
	if !ok {
		return nil, errors.New("name is not <service>.<fact>.v<N>")
	}
	if service != s.producer {
		return nil, fmt.Errorf("producer %q does not match the name's service %q", s.producer, service)
	}
	raw, err := fs.ReadFile(fsys, "schemas/"+s.name+".json")
	if err != nil {
		return nil, err
	}
	example, err := fs.ReadFile(fsys, "examples/"+s.name+".json")
	if err != nil {
		return nil, err
	}
	var head struct {
		ID          string `json:"$id"`
		Title       string `json:"title"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if head.ID != schemaURL(s.name) || head.Title != s.name {
		return nil, fmt.Errorf("schema: $id is %q and title %q, want %q and %q", head.ID, head.Title, schemaURL(s.name), s.name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if err := c.AddResource(schemaURL(s.name), doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	compiled, err := c.Compile(schemaURL(s.name))
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	consumers := slices.Clone(s.consumers)
	slices.Sort(consumers)
	return &entry{
		EventType: EventType{
			Name:        s.name,
			Producer:    s.producer,
			Consumers:   consumers,
			Version:     version,
			Description: head.Description,
			Schema:      raw,
			Example:     example,
			New:         s.new,
		},
		schema: compiled,
	}, nil
}

func (r *registry) lookup(eventType string) (*entry, error) {
	if e, ok := r.types[eventType]; ok {
		return e, nil
	}
	var known []string
	for _, name := range r.names {
		if family(name) == family(eventType) {
			known = append(known, name)
		}
	}
	if len(known) > 0 {
		return nil, fmt.Errorf("%w %q: this build reads %s", ErrUnknownType, eventType, strings.Join(known, ", "))
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownType, eventType)
}

// parseName splits `<service>.<fact>.v<N>` (snake_case segments, N ≥ 1).
func parseName(eventType string) (service string, version int, ok bool) {
	parts := strings.Split(eventType, ".")
	if len(parts) != 3 || !isSnakeCase(parts[0]) || !isSnakeCase(parts[1]) {
		return "", 0, false
	}
	n, ok := strings.CutPrefix(parts[2], "v")
	version, err := strconv.Atoi(n)
	if !ok || err != nil || version < 1 || n != strconv.Itoa(version) {
		return "", 0, false
	}
	return parts[0], version, true
}

// family is the type name without its version: "order.placed" for
// "order.placed.v1".
func family(eventType string) string {
	i := strings.LastIndex(eventType, ".v")
	if i < 0 {
		return eventType
	}
	return eventType[:i]
}
