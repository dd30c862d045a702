package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/user"
)

// userTarget runs the user service. Environment:
//
//	SHOPMESH_USER_HTTP_ADDR   listen address (default 127.0.0.1:8101)
//	SHOPMESH_USER_TOKEN_TTL   access token lifetime, a Go duration (default 1h)
//	SHOPMESH_JWT_SECRET       token secret; else derived from SHOPMESH_SECRET
func userTarget() target {
	return target{
		migrations: user.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			cfg, err := userConfig(a.env)
			if err != nil {
				return err
			}
			return user.Run(ctx, cfg, a.logger)
		},
	}
}

func userConfig(e env) (user.Config, error) {
	kit, err := serviceKit(e, user.Name, "127.0.0.1:8101")
	if err != nil {
		return user.Config{}, err
	}
	secret, err := jwtSecretFromEnv(e.getenv)
	if err != nil {
		return user.Config{}, err
	}
	cfg := user.Config{
		Kit:         kit,
		TokenSecret: secret,
	}
	if v := e.getenv("SHOPMESH_USER_TOKEN_TTL"); v != "" {
		if cfg.TokenTTL, err = time.ParseDuration(v); err != nil {
			return user.Config{}, fmt.Errorf("SHOPMESH_USER_TOKEN_TTL: %w", err)
		}
	}
	return cfg, cfg.Validate()
}
