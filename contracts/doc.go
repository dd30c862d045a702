// Package contracts is the catalogue of shopmesh's events: the public API
// between services. For every event type and version it holds a Go struct, a
// JSON Schema (draft 2020-12, in schemas/<type>.json), a golden example (in
// examples/<type>.json), the producing service and the consuming services.
// It must not hold behaviour of any service, nor import one: it is a leaf
// that every service, the outbox wiring and the contract tests share.
//
// # Names and payloads
//
// A type is named `<service>.<fact>.v<N>` on the wire, for example
// order.placed.v1, and only <service> publishes it. Each type has a constant
// (TypeOrderPlacedV1) and a struct (OrderPlacedV1); wire names are written
// out, never derived from Go names. Payloads are JSON objects with
// snake_case keys; ids are UUIDs; money is Money, integer minor units and an
// ISO 4217 currency; times are RFC 3339. The envelope (message id,
// correlation, occurred_at, ...) travels outside the payload; see outbox.
//
// # Versioning rules
//
// Within a version only additive changes are allowed: new optional fields.
// Consumers must therefore ignore fields they do not know; schemas allow
// additional properties and Decode does not reject them. Widening an enum or
// a range passes schema checks but can surprise a consumer that switches on
// the value, so it too is a new version unless every consumer tolerates it.
//
// Anything else is a new version, published as a new type name (v2 beside
// v1): removing or renaming a field, changing its type or meaning, making
// an optional field required, adding a required field, or narrowing an enum
// or range. A released schema is never edited in a breaking way.
//
// Consumers must read every version still present in the retained outbox
// log, because replay and dead-letter redelivery hand them old events. They
// do so through upcasters: each version but the latest has one step that
// lifts its payload to the next version, and Upcast runs the chain, so a
// consumer handles only the latest version of each type. A registry without
// a complete chain does not build. An older version may be removed only when
// no retained event of it can remain.
//
// A new version keeps the consumers of the old one, and each of them binds
// every version (the queue receives whatever the log holds) while handling
// only the latest. order.placed.v2 is the worked example: it restructured
// v1's money (the order's currency, line totals, and totals broken down
// into subtotal, shipping and total), which a v1 reader cannot follow; the
// order service publishes only v2, and the v1 to v2 step in upcast.go lets
// inventory, customer, notification and analytics read retained v1 events.
//
// # The compatibility gate and releases
//
// released/<type>.json holds each type's schema as last released.
// CheckCompatibility compares every current schema with it, following
// properties, items and $ref to any depth, and reports each change with its
// payload path and Kind. Breaking kinds fail the gate: a removed type or
// property, a changed or narrowed JSON type, a new required field or an
// optional one made required (or the reverse), a narrowed or added enum, a
// tightened constraint (minimum raised, maximum or maxLength lowered,
// pattern or format added or changed, additionalProperties turned false,
// ...), and any change to a keyword the gate does not analyse. A widened
// enum, numeric range or type is a warning; new optional fields, loosened
// constraints and edited descriptions pass silently. The package's tests
// run the gate, and `shopmesh contracts check` runs it together with the
// check that asyncapi.json, the AsyncAPI 3.0 document AsyncAPI generates
// from the registry, is up to date.
//
// `go run ./cmd/shopmesh contracts release` updates the snapshot: it copies
// every current schema into released/ only when the gate passes, so a
// breaking edit can never become the baseline. Release when schemas are
// published (merged to main), and commit released/ with the schemas. A new
// type needs no release to build, but is protected only once released. To
// retire a version whose events can no longer be in any retained log,
// delete its schema and its released file in the same change.
//
// # Reading an event
//
//	eventType, payload, err := contracts.Upcast(msg.Type, msg.Payload)
//	if err != nil {
//		return outbox.Permanent(err) // unknown type or invalid payload: dead letter
//	}
//	switch eventType { // always the latest version: v1 arrives here as v2
//	case contracts.TypeOrderPlacedV2:
//		var e contracts.OrderPlacedV2
//		if err := contracts.Decode(eventType, payload, &e); err != nil {
//			return outbox.Permanent(err)
//		}
//		...
//	}
//
// Validate and Decode reject, besides schema violations, what Go's JSON
// decoder would accept silently: duplicate keys and keys that differ from
// another only in case. An unknown type or version is an error wrapping
// ErrUnknownType, never something to acknowledge silently.
package contracts
