package contracts

// Event types published by the loyalty service. Enrolment is a small saga of
// its own: enrolled, then the bonus is awarded or fails, and a failed bonus
// rolls the enrolment back while the user stays registered.
const (
	TypeLoyaltyEnrolledV1      = "loyalty.enrolled.v1"
	TypePointsAwardedV1        = "loyalty.points_awarded.v1"
	TypeEnrolmentBonusFailedV1 = "loyalty.enrolment_bonus_failed.v1"
	TypeEnrolmentRolledBackV1  = "loyalty.enrolment_rolled_back.v1"
)

// LoyaltyEnrolledV1 is loyalty.enrolled.v1: a registered user joined the
// loyalty programme. The enrolment bonus follows as its own step.
type LoyaltyEnrolledV1 struct {
	UserID string `json:"user_id"`
}

// PointsReason says what earned loyalty points.
type PointsReason string

// Reasons for awarding points.
const (
	PointsEnrolmentBonus PointsReason = "enrolment_bonus"
	PointsOrderCompleted PointsReason = "order_completed"
)

// PointsAwardedV1 is loyalty.points_awarded.v1: points were added to a
// member's balance. OrderID is set when Reason is PointsOrderCompleted.
type PointsAwardedV1 struct {
	UserID  string       `json:"user_id"`
	Points  int          `json:"points"`
	Balance int          `json:"balance"`
	Reason  PointsReason `json:"reason"`
	OrderID string       `json:"order_id,omitempty"`
}

// EnrolmentBonusFailedV1 is loyalty.enrolment_bonus_failed.v1: the
// enrolment bonus could not be awarded. Loyalty rolls the enrolment back.
type EnrolmentBonusFailedV1 struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// EnrolmentRolledBackV1 is loyalty.enrolment_rolled_back.v1: an enrolment
// was undone after its bonus failed. The user may be enrolled again.
type EnrolmentRolledBackV1 struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}
