package contracts

import "fmt"

// upcaster lifts a payload of one version to the next version of the same
// event type.
type upcaster struct {
	from, to string
	fn       func(payload []byte) ([]byte, error)
}

// upcasters lists every step of every upcast chain. A step is a pure
// function of the old payload: where the new version needs data the old one
// lacks, the step fills a documented default. There is none while every type
// is at v1; order.placed.v2 would add
//
//	{TypeOrderPlacedV1, TypeOrderPlacedV2, orderPlacedV1ToV2},
func upcasters() []upcaster {
	return nil
}

// Upcast returns payload as the latest version of eventType's event, with
// that version's name. The payload is validated against its own version
// first, and every step's result against the version it produces, so the
// result can be decoded into the latest Go type. A payload already at the
// latest version is returned unchanged.
//
// A consumer upcasts each message and handles only the latest version of
// every type it reads, however old the retained event it is given.
func Upcast(eventType string, payload []byte) (latestType string, latestPayload []byte, err error) {
	return defaultRegistry().upcast(eventType, payload)
}

func (r *registry) upcast(eventType string, payload []byte) (string, []byte, error) {
	e, err := r.lookup(eventType)
	if err != nil {
		return "", nil, err
	}
	if err := e.validate(payload); err != nil {
		return "", nil, err
	}
	for {
		u, ok := r.upcasters[eventType]
		if !ok {
			return eventType, payload, nil
		}
		next, err := u.fn(payload)
		if err != nil {
			return "", nil, fmt.Errorf("upcast %s to %s: %w", u.from, u.to, err)
		}
		if err := r.types[u.to].validate(next); err != nil {
			return "", nil, fmt.Errorf("upcast %s to %s: %w", u.from, u.to, err)
		}
		eventType, payload = u.to, next
	}
}

func (r *registry) addUpcaster(u upcaster) error {
	from, ok := r.types[u.from]
	if !ok {
		return fmt.Errorf("upcaster from %s: unknown type", u.from)
	}
	to, ok := r.types[u.to]
	if !ok {
		return fmt.Errorf("upcaster to %s: unknown type", u.to)
	}
	if family(u.from) != family(u.to) || to.Version != from.Version+1 {
		return fmt.Errorf("upcaster %s to %s: must lift one version of one event", u.from, u.to)
	}
	if _, dup := r.upcasters[u.from]; dup {
		return fmt.Errorf("upcaster from %s: listed twice", u.from)
	}
	r.upcasters[u.from] = u
	return nil
}
