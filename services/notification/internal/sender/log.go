// Package sender holds the notification service's Senders: how a rendered
// notification leaves the system. Only the log sender exists: the record in
// the notifications table is the delivery, and a log line says so. It must
// not decide what is sent or to whom.
package sender

import (
	"context"
	"log/slog"

	"github.com/shopmesh/shopmesh/services/notification/internal/app"
)

// Log delivers by logging: the notification is already recorded in the
// service's table, which is what the API shows. Outbound SMTP would be
// another Sender beside it.
type Log struct {
	logger *slog.Logger
}

// NewLog returns a Log sender writing to logger.
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{logger: logger}
}

var _ app.Sender = (*Log)(nil)

// Send logs m without its body (which may hold personal data) and succeeds.
func (l *Log) Send(ctx context.Context, m app.Message) error {
	l.logger.InfoContext(ctx, "notification sent", "notification_id", m.NotificationID,
		"channel", m.Channel, "to", m.To, "subject", m.Subject)
	return nil
}
