package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/shopmesh/shopmesh/services/notification"
)

// notificationTarget runs the notification service. Environment:
//
//	SHOPMESH_NOTIFICATION_HTTP_ADDR          listen address (default 127.0.0.1:8111)
//	SHOPMESH_NOTIFICATION_STAFF_EMAIL        staff alert address (default staff@shopmesh.local; "off" disables alerts)
//	SHOPMESH_NOTIFICATION_DISPATCH_INTERVAL  delivery poll, a Go duration (default 250ms)
//	SHOPMESH_NOTIFICATION_MAX_SEND_ATTEMPTS  delivery attempts before giving up (default 8)
func notificationTarget() target {
	return target{
		migrations: notification.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			cfg, err := notificationConfig(a.env)
			if err != nil {
				return err
			}
			return notification.Run(ctx, cfg, a.logger)
		},
	}
}

func notificationConfig(e env) (notification.Config, error) {
	kit, err := serviceKit(e, notification.Name, "127.0.0.1:8111")
	if err != nil {
		return notification.Config{}, err
	}
	cfg := notification.Config{
		Kit: kit,
	}
	switch v := e.getenv("SHOPMESH_NOTIFICATION_STAFF_EMAIL"); v {
	case "":
	case "off":
		cfg.DisableStaffAlerts = true
	default:
		cfg.StaffEmail = v
	}
	if v := e.getenv("SHOPMESH_NOTIFICATION_DISPATCH_INTERVAL"); v != "" {
		if cfg.DispatchInterval, err = time.ParseDuration(v); err != nil {
			return notification.Config{}, fmt.Errorf("SHOPMESH_NOTIFICATION_DISPATCH_INTERVAL: %w", err)
		}
	}
	if v := e.getenv("SHOPMESH_NOTIFICATION_MAX_SEND_ATTEMPTS"); v != "" {
		if cfg.MaxSendAttempts, err = strconv.Atoi(v); err != nil {
			return notification.Config{}, fmt.Errorf("SHOPMESH_NOTIFICATION_MAX_SEND_ATTEMPTS: %w", err)
		}
	}
	return cfg, cfg.Validate()
}
