# shopmesh development targets. The local platform (PostgreSQL and RabbitMQ,
# state under .run/) is managed by deploy/local/platform.sh; targets that need
# it start it first and load .run/env.

PLATFORM := deploy/local/platform.sh
WITH_ENV := set -a && . ./.run/env && set +a &&

.PHONY: up down test run lint

## up: start the platform and print its environment
up:
	$(PLATFORM) up
	$(PLATFORM) env

## down: stop the platform
down:
	$(PLATFORM) down

## test: run every test against the platform
test:
	$(PLATFORM) up
	$(WITH_ENV) go test -count=1 -timeout 15m ./...

## run: run every service and the gateway in one process (Ctrl-C stops it)
run:
	$(PLATFORM) up
	$(WITH_ENV) exec go run ./cmd/shopmesh serve all

## lint: static checks
lint:
	go vet ./...
