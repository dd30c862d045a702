package app

import (
	"context"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// AddressInput is a postal address as the client sent it.
type AddressInput struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

// SetAddress makes in the caller's default address. It publishes
// user.address_changed.v1 when the address actually changed; setting the
// same address again is a no-op, so retries publish nothing twice.
func (s *Service) SetAddress(ctx context.Context, c Caller, in AddressInput) (domain.Address, error) {
	id, err := authenticated(c)
	if err != nil {
		return domain.Address{}, err
	}
	addr, err := domain.NewAddress(in.Name, in.Line1, in.Line2, in.City, in.PostalCode, in.Country)
	if err != nil {
		return domain.Address{}, err
	}
	err = s.repo.Update(ctx, id, func(u *domain.User) ([]outbox.Event, error) {
		changed, err := u.SetAddress(addr)
		if err != nil || !changed {
			return nil, err
		}
		return []outbox.Event{{
			Type:        contracts.TypeUserAddressChangedV1,
			AggregateID: u.ID().String(),
			OccurredAt:  s.now(),
			Payload: contracts.UserAddressChangedV1{
				UserID: u.ID().String(),
				Address: contracts.Address{
					Name: addr.Name(), Line1: addr.Line1(), Line2: addr.Line2(),
					City: addr.City(), PostalCode: addr.PostalCode(), Country: addr.Country(),
				},
			},
		}}, nil
	})
	if err != nil {
		return domain.Address{}, err
	}
	return addr, nil
}

// Address returns the caller's default address, or ErrNoAddress.
func (s *Service) Address(ctx context.Context, c Caller) (domain.Address, error) {
	id, err := authenticated(c)
	if err != nil {
		return domain.Address{}, err
	}
	u, err := s.repo.ByID(ctx, id)
	if err != nil {
		return domain.Address{}, err
	}
	a, ok := u.Address()
	if !ok {
		return domain.Address{}, domain.ErrNoAddress
	}
	return a, nil
}
