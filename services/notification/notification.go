// Package notification runs the notification service: it reacts to the
// customer-visible events of the shop (orders, refunds, invoices, credit
// notes, account changes, loyalty points) and to failures staff must hear
// about (low stock, failed shipments, failed loyalty bonuses), records one
// notification per event, recipient and channel, exactly once, and delivers
// them through a Sender (by default the log sender: the record is the
// delivery; outbound SMTP is not built in). Customers list their own
// notifications over HTTP. It keeps a read model of customers' emails and
// names from user events, owns the notification database and nothing else.
package notification

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/app"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
	"github.com/shopmesh/shopmesh/services/notification/internal/postgres"
	"github.com/shopmesh/shopmesh/services/notification/internal/sender"
	"github.com/shopmesh/shopmesh/services/notification/internal/transport"
)

// Name is the service's name: event source, queue prefix, version table.
const Name = "notification"

// Consumer is the name of the service's one consumer (queue
// shopmesh.notification.inbox).
const Consumer = "inbox"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the service's goose migrations, at the root of the FS.
var Migrations = servicekit.MigrationsDir(migrationFiles)

// DefaultStaffEmail receives staff alerts unless configured otherwise.
const DefaultStaffEmail = "staff@shopmesh.local"

// Config configures the notification service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// StaffEmail receives staff alerts (failures only). Default
	// DefaultStaffEmail; set DisableStaffAlerts to send none.
	StaffEmail         string
	DisableStaffAlerts bool
	// DispatchInterval is how often pending notifications are delivered.
	// Default 250ms.
	DispatchInterval time.Duration
	// MaxSendAttempts bounds delivery attempts of one notification before it
	// is marked failed. Default 8.
	MaxSendAttempts int
	// SendBackoff is the delay after the first failed attempt, doubling up
	// to MaxSendBackoff. Defaults 1s and 5m.
	SendBackoff    time.Duration
	MaxSendBackoff time.Duration
	// Consumer adjusts the inbox consumer's defaults (workers, retries).
	// The defaults are servicekit.LingeringBatches: notifications are
	// recorded for the next dispatch pass, which is DispatchInterval away.
	Consumer func(*outbox.ConsumerConfig)
}

func (c Config) withDefaults() Config {
	c.Kit.Name = Name
	c.Kit.Migrations = Migrations
	if c.StaffEmail == "" {
		c.StaffEmail = DefaultStaffEmail
	}
	if c.DisableStaffAlerts {
		c.StaffEmail = ""
	}
	if c.DispatchInterval == 0 {
		c.DispatchInterval = 250 * time.Millisecond
	}
	if c.MaxSendAttempts == 0 {
		c.MaxSendAttempts = 8
	}
	if c.SendBackoff == 0 {
		c.SendBackoff = time.Second
	}
	if c.MaxSendBackoff == 0 {
		c.MaxSendBackoff = 5 * time.Minute
	}
	return c
}

func (c Config) app() app.Config {
	return app.Config{
		StaffEmail: c.StaffEmail,
		Retry:      domain.Retry{MaxAttempts: c.MaxSendAttempts, Backoff: c.SendBackoff, MaxBackoff: c.MaxSendBackoff},
		BatchSize:  100,
	}
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := c.Kit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DispatchInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("notification: dispatch interval %s is below 10ms", c.DispatchInterval))
	}
	if err := c.app().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("notification: %w", err))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	logger = cfg.Kit.ServiceLogger(logger)
	logger.Info("starting", "http", cfg.Kit.HTTPAddr, "staff_email", cfg.StaffEmail,
		"dispatch_interval", cfg.DispatchInterval, "max_send_attempts", cfg.MaxSendAttempts)

	templates, err := domain.NewTemplates()
	if err != nil {
		return err
	}
	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.New(node.Pool, node.Outbox)
		svc, err := app.NewService(store, sender.NewLog(logger), templates, cfg.app(), time.Now, outbox.NewID)
		if err != nil {
			return nil, nil, err
		}
		err = node.Inbox(Consumer, servicekit.Then(servicekit.LingeringBatches, cfg.Consumer), func(consumer *outbox.Consumer) error {
			handler := transport.EventHandler(svc, store.InTx)
			for _, t := range transport.Consumes(Name) {
				if err := consumer.Handle(t, handler); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		dispatcher := func(ctx context.Context) error {
			return svc.RunDispatcher(ctx, cfg.DispatchInterval, func(err error) {
				logger.Warn("dispatch failed; retrying", "err", err)
			})
		}
		return transport.NewHandler(transport.MakeEndpoints(svc), logger), []servicekit.Background{dispatcher}, nil
	})
}
