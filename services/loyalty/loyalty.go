// Package loyalty runs the loyalty service: it enrols registered users in
// the loyalty programme, grants them an enrolment bonus, awards points for
// completed orders exactly once per order, freezes deactivated users'
// memberships, and shows members their points. It owns the loyalty
// database (memberships and the points ledger) and nothing else.
//
// Enrolment is a small saga inside the service, each step its own
// inbox-guarded transaction: user.registered.v1 enrols the user and
// publishes loyalty.enrolled.v1; reading that, the service grants the bonus
// (loyalty.points_awarded.v1, reason enrolment_bonus) or, if the bonus
// cannot be granted, publishes loyalty.enrolment_bonus_failed.v1; reading
// that, it rolls the enrolment back (loyalty.enrolment_rolled_back.v1). The
// user stays registered: the user service never hears of it. Config's
// BonusFailDomain makes the bonus fail deterministically for emails at one
// domain, which is how tests and demos drive the rollback path. A
// rolled-back user is not enrolled again by a repeated registration; nothing
// in the shop re-enrols them today.
//
// Events consumed: user.registered.v1, user.deactivated.v1,
// order.completed.v1, and its own loyalty.enrolled.v1 and
// loyalty.enrolment_bonus_failed.v1. Events published: loyalty.enrolled.v1,
// loyalty.points_awarded.v1, loyalty.enrolment_bonus_failed.v1,
// loyalty.enrolment_rolled_back.v1.
//
// Points: one per whole currency unit of a completed order's total, for
// active members only (bonus granted, not frozen). The ledger's unique
// (order, reason) index makes an award happen once per order even when the
// completion is announced again under a new message id.
//
// API: GET /api/v1/me/points (the caller's own balance and ledger).
package loyalty

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/app"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/postgres"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/transport"
)

// Name is the service's name: event source, queue prefix, database owner.
const Name = "loyalty"

// Consumer is the name of the service's one consumer (queue
// shopmesh.loyalty.inbox).
const Consumer = "inbox"

// DefaultEnrolmentBonus is the points a new member gets by default.
const DefaultEnrolmentBonus = 100

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Config configures the loyalty service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// EnrolmentBonus is the points granted on enrolment. Default
	// DefaultEnrolmentBonus; at least 1.
	EnrolmentBonus int
	// BonusFailDomain, when set, makes the enrolment bonus fail permanently
	// for users whose email is at this domain (e.g. "bonus-fails.example"),
	// so the enrolment is rolled back. Empty (the default): bonuses never
	// fail except for users deactivated before their bonus.
	BonusFailDomain string
	// Consumer adjusts the inbox consumer's defaults (workers, retries).
	// The defaults are servicekit.LingeringBatches: nobody waits on points
	// within a tenth of a second.
	Consumer func(*outbox.ConsumerConfig)
}

func (c Config) withDefaults() Config {
	c.Kit.Name = Name
	c.Kit.Migrations = Migrations
	if c.EnrolmentBonus == 0 {
		c.EnrolmentBonus = DefaultEnrolmentBonus
	}
	return c
}

func (c Config) bonus() domain.BonusPolicy {
	return domain.BonusPolicy{Points: c.EnrolmentBonus, FailDomain: c.BonusFailDomain}
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	c = c.withDefaults()
	if err := c.bonus().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("loyalty: %w", err))
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
	logger.Info("starting", "http", cfg.Kit.HTTPAddr, "enrolment_bonus", cfg.EnrolmentBonus,
		"bonus_fail_domain", cfg.BonusFailDomain)

	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.NewStore(node.Pool, node.Outbox)
		svc, err := app.NewService(store, cfg.bonus(), app.WithClock(clock))
		if err != nil {
			return nil, nil, err
		}
		events := transport.NewEvents(func(tx pgx.Tx) *app.Service { return svc.With(store.InTx(tx)) }, logger)
		err = node.Inbox(Consumer, servicekit.Then(servicekit.LingeringBatches, cfg.Consumer), func(inbox *outbox.Consumer) error { return events.Register(inbox, Name) })
		if err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), logger), nil, nil
	})
}

// clock is the service's time: UTC at PostgreSQL's precision, so a time read
// back from the database equals the one written.
func clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
