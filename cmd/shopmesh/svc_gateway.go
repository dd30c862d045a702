package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopmesh/shopmesh/gateway"
	"github.com/shopmesh/shopmesh/internal/auth"
)

// gatewayTarget runs the public gateway. It has no database, so no
// migrations. Environment:
//
//	SHOPMESH_GATEWAY_ADDR              listen address (default 127.0.0.1:8080)
//	SHOPMESH_<SERVICE>_URL             a service's base URL (default http://127.0.0.1:<its port>)
//	SHOPMESH_JWT_SECRET                token secret; else derived from SHOPMESH_SECRET
//	SHOPMESH_GATEWAY_MAX_BODY_BYTES    request body cap (default 65536)
//	SHOPMESH_GATEWAY_REQUEST_TIMEOUT   per-request upstream timeout (default 15s)
//	SHOPMESH_GATEWAY_RATE_LIMIT        requests/second per client (default 100)
//	SHOPMESH_GATEWAY_RATE_BURST        burst per client (default 200)
func gatewayTarget() target {
	return target{
		migrations: nil,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			cfg, err := gatewayConfig(a.env.getenv)
			if err != nil {
				return err
			}
			return gateway.Run(ctx, cfg, a.logger)
		},
	}
}

func gatewayConfig(getenv func(string) string) (gateway.Config, error) {
	secret, err := jwtSecretFromEnv(getenv)
	if err != nil {
		return gateway.Config{}, err
	}
	cfg := gateway.Config{
		Addr:        getenv("SHOPMESH_GATEWAY_ADDR"),
		Upstreams:   map[gateway.Service]string{},
		TokenSecret: secret,
	}
	for _, s := range gateway.Services() {
		if u := getenv("SHOPMESH_" + strings.ToUpper(string(s)) + "_URL"); u != "" {
			cfg.Upstreams[s] = u
		}
	}
	if v := getenv("SHOPMESH_GATEWAY_MAX_BODY_BYTES"); v != "" {
		if cfg.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			return gateway.Config{}, fmt.Errorf("SHOPMESH_GATEWAY_MAX_BODY_BYTES: %w", err)
		}
	}
	if v := getenv("SHOPMESH_GATEWAY_REQUEST_TIMEOUT"); v != "" {
		if cfg.RequestTimeout, err = time.ParseDuration(v); err != nil {
			return gateway.Config{}, fmt.Errorf("SHOPMESH_GATEWAY_REQUEST_TIMEOUT: %w", err)
		}
	}
	if v := getenv("SHOPMESH_GATEWAY_RATE_LIMIT"); v != "" {
		if cfg.RateLimit, err = strconv.ParseFloat(v, 64); err != nil {
			return gateway.Config{}, fmt.Errorf("SHOPMESH_GATEWAY_RATE_LIMIT: %w", err)
		}
	}
	if v := getenv("SHOPMESH_GATEWAY_RATE_BURST"); v != "" {
		if cfg.RateBurst, err = strconv.Atoi(v); err != nil {
			return gateway.Config{}, fmt.Errorf("SHOPMESH_GATEWAY_RATE_BURST: %w", err)
		}
	}
	return cfg, cfg.Validate()
}

// jwtSecretFromEnv is the token secret shared by the user service (which
// signs) and the gateway (which verifies): SHOPMESH_JWT_SECRET as given, or
// derived from the installation secret SHOPMESH_SECRET.
func jwtSecretFromEnv(getenv func(string) string) ([]byte, error) {
	if s := getenv("SHOPMESH_JWT_SECRET"); s != "" {
		if len(s) < auth.MinSecretLen {
			return nil, fmt.Errorf("SHOPMESH_JWT_SECRET: %d bytes, need at least %d", len(s), auth.MinSecretLen)
		}
		return []byte(s), nil
	}
	if s := getenv("SHOPMESH_SECRET"); s != "" {
		return auth.DeriveSecret(s), nil
	}
	return nil, fmt.Errorf("set SHOPMESH_JWT_SECRET or SHOPMESH_SECRET (the token secret shared with the user service)")
}
