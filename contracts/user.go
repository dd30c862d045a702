package contracts

// Event types published by the user service.
const (
	TypeUserRegisteredV1     = "user.registered.v1"
	TypeUserAddressChangedV1 = "user.address_changed.v1"
	TypeUserDeactivatedV1    = "user.deactivated.v1"
)

// UserRegisteredV1 is user.registered.v1: a customer account was created.
type UserRegisteredV1 struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
}

// UserAddressChangedV1 is user.address_changed.v1: a user changed their
// default shipping address.
type UserAddressChangedV1 struct {
	UserID  string  `json:"user_id"`
	Address Address `json:"address"`
}

// UserDeactivatedV1 is user.deactivated.v1: an administrator deactivated an
// account. It can no longer log in; its history is kept.
type UserDeactivatedV1 struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason,omitempty"`
}
