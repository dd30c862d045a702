package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/shopmesh/shopmesh/services/loyalty"
)

// loyaltyTarget runs the loyalty service. Environment:
//
//	SHOPMESH_LOYALTY_HTTP_ADDR          listen address (default 127.0.0.1:8110)
//	SHOPMESH_LOYALTY_ENROLMENT_BONUS    points granted on enrolment (default 100)
//	SHOPMESH_LOYALTY_BONUS_FAIL_DOMAIN  email domain whose enrolment bonus always fails,
//	                                    so the enrolment is rolled back (default: none)
func loyaltyTarget() target {
	return target{
		migrations: loyalty.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			cfg, err := loyaltyConfig(a.env)
			if err != nil {
				return err
			}
			return loyalty.Run(ctx, cfg, a.logger)
		},
	}
}

func loyaltyConfig(e env) (loyalty.Config, error) {
	kit, err := serviceKit(e, loyalty.Name, "127.0.0.1:8110")
	if err != nil {
		return loyalty.Config{}, err
	}
	cfg := loyalty.Config{
		Kit:             kit,
		BonusFailDomain: e.getenv("SHOPMESH_LOYALTY_BONUS_FAIL_DOMAIN"),
	}
	if v := e.getenv("SHOPMESH_LOYALTY_ENROLMENT_BONUS"); v != "" {
		if cfg.EnrolmentBonus, err = strconv.Atoi(v); err != nil || cfg.EnrolmentBonus < 1 {
			return loyalty.Config{}, fmt.Errorf("SHOPMESH_LOYALTY_ENROLMENT_BONUS: %q is not a positive integer", v)
		}
	}
	return cfg, cfg.Validate()
}
