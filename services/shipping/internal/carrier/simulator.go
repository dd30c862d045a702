// Package carrier holds the simulated carrier, the default implementation of
// app.Carrier. It is deterministic: the destination country alone decides
// whether a parcel can be delivered (ZZ cannot), and the tracking number
// derives from the shipment id. Its timing is the service's configuration;
// it must not hold shipment rules.
package carrier

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/services/shipping/internal/app"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// UndeliverableCountry is the country the simulated carrier never serves.
const UndeliverableCountry = "ZZ"

// Simulator is the simulated carrier.
type Simulator struct {
	name string
}

// NewSimulator returns a carrier with the given name.
func NewSimulator(name string) (*Simulator, error) {
	if name == "" {
		return nil, errors.New("carrier name is required")
	}
	return &Simulator{name: name}, nil
}

// Name is the carrier's name.
func (s *Simulator) Name() string { return s.name }

// Pickup collects the parcel and gives it a tracking number, or refuses a
// parcel for UndeliverableCountry as undeliverable.
func (s *Simulator) Pickup(ctx context.Context, sh *domain.Shipment) (app.CarrierOutcome, error) {
	if err := ctx.Err(); err != nil {
		return app.CarrierOutcome{}, err
	}
	if sh.Address().Country == UndeliverableCountry {
		return app.CarrierOutcome{
			FailureReason: string(contracts.FailureUndeliverable),
			FailureDetail: fmt.Sprintf("%s does not deliver to country %s", s.name, UndeliverableCountry),
		}, nil
	}
	sum := sha256.Sum256([]byte(sh.ID()))
	return app.CarrierOutcome{Tracking: fmt.Sprintf("SM%012d", binary.BigEndian.Uint64(sum[:8])%1_000_000_000_000)}, nil
}

// Deliver delivers every parcel it picked up.
func (s *Simulator) Deliver(ctx context.Context, _ *domain.Shipment) (app.CarrierOutcome, error) {
	return app.CarrierOutcome{}, ctx.Err()
}
