package contracts

// Event types published by the notification service.
const (
	TypeNotificationSentV1 = "notification.sent.v1"
)

// Channel is how a notification was delivered.
type Channel string

// Notification channels.
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
)

// Audience is who a notification was for.
type Audience string

// Notification audiences.
const (
	AudienceCustomer Audience = "customer"
	AudienceStaff    Audience = "staff"
)

// NotificationSentV1 is notification.sent.v1: a notification was sent.
// TriggerType and TriggerID name the event that caused it; UserID is set
// when Audience is AudienceCustomer.
type NotificationSentV1 struct {
	NotificationID string   `json:"notification_id"`
	Channel        Channel  `json:"channel"`
	Audience       Audience `json:"audience"`
	UserID         string   `json:"user_id,omitempty"`
	Template       string   `json:"template"`
	TriggerType    string   `json:"trigger_type"`
	TriggerID      string   `json:"trigger_id"`
}
