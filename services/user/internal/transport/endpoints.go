// Package transport exposes the user service over HTTP with go-kit: one
// endpoint per use case with its own request and response, decoders that
// read the gateway's identity headers and strict JSON bodies, and one error
// encoder mapping domain and app errors to problem+json. It must not hold
// business rules.
package transport

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/shopmesh/shopmesh/services/user/internal/app"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// Endpoints are the user service's go-kit endpoints.
type Endpoints struct {
	Register   endpoint.Endpoint
	Login      endpoint.Endpoint
	SetAddress endpoint.Endpoint
	GetAddress endpoint.Endpoint
	Deactivate endpoint.Endpoint
}

// MakeEndpoints builds the endpoints of s.
func MakeEndpoints(s *app.Service) Endpoints {
	return Endpoints{
		Register:   makeRegister(s),
		Login:      makeLogin(s),
		SetAddress: makeSetAddress(s),
		GetAddress: makeGetAddress(s),
		Deactivate: makeDeactivate(s),
	}
}

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type userResponse struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Err   error  `json:"-"`
}

func (r userResponse) Failed() error { return r.Err }

func makeRegister(s *app.Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(registerRequest)
		u, err := s.Register(ctx, app.RegisterInput{Email: req.Email, Password: req.Password, Name: req.Name})
		if err != nil {
			return userResponse{Err: err}, nil
		}
		return userResponse{ID: u.ID().String(), Email: u.Email().String(), Name: u.Name().String()}, nil
	}
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Err       error     `json:"-"`
}

func (r loginResponse) Failed() error { return r.Err }

func makeLogin(s *app.Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(loginRequest)
		t, err := s.Login(ctx, app.LoginInput{Email: req.Email, Password: req.Password})
		if err != nil {
			return loginResponse{Err: err}, nil
		}
		return loginResponse{Token: t.Token, ExpiresAt: t.ExpiresAt.UTC()}, nil
	}
}

// addressBody is an address on the wire (request and response).
type addressBody struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type setAddressRequest struct {
	caller  app.Caller
	address addressBody
}

type addressResponse struct {
	addressBody
	Err error `json:"-"`
}

func (r addressResponse) Failed() error { return r.Err }

func toAddressBody(a domain.Address) addressBody {
	return addressBody{Name: a.Name(), Line1: a.Line1(), Line2: a.Line2(), City: a.City(), PostalCode: a.PostalCode(), Country: a.Country()}
}

func makeSetAddress(s *app.Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(setAddressRequest)
		b := req.address
		a, err := s.SetAddress(ctx, req.caller, app.AddressInput{
			Name: b.Name, Line1: b.Line1, Line2: b.Line2, City: b.City, PostalCode: b.PostalCode, Country: b.Country,
		})
		if err != nil {
			return addressResponse{Err: err}, nil
		}
		return addressResponse{addressBody: toAddressBody(a)}, nil
	}
}

type getAddressRequest struct {
	caller app.Caller
}

func makeGetAddress(s *app.Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getAddressRequest)
		a, err := s.Address(ctx, req.caller)
		if err != nil {
			return addressResponse{Err: err}, nil
		}
		return addressResponse{addressBody: toAddressBody(a)}, nil
	}
}

type deactivateRequest struct {
	caller app.Caller
	userID string
	Reason string `json:"reason"`
}

type accountResponse struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	Name          string     `json:"name"`
	Role          string     `json:"role"`
	Active        bool       `json:"active"`
	DeactivatedAt *time.Time `json:"deactivated_at"`
	Err           error      `json:"-"`
}

func (r accountResponse) Failed() error { return r.Err }

func makeDeactivate(s *app.Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(deactivateRequest)
		u, err := s.Deactivate(ctx, req.caller, req.userID, req.Reason)
		if err != nil {
			return accountResponse{Err: err}, nil
		}
		resp := accountResponse{ID: u.ID().String(), Email: u.Email().String(), Name: u.Name().String(),
			Role: u.Role().String(), Active: u.Active()}
		if !u.Active() {
			t := u.DeactivatedAt()
			resp.DeactivatedAt = &t
		}
		return resp, nil
	}
}
