# shopmesh development targets. The local platform (PostgreSQL and RabbitMQ,
# state under .run/) is managed by deploy/local/platform.sh, the whole system
# by deploy/local/system.sh; targets that need them start them first.

PLATFORM := deploy/local/platform.sh
SYSTEM := deploy/local/system.sh
WITH_ENV := set -a && . ./.run/env && set +a &&

.PHONY: run up down test demo chaos bench lint

## run: the whole system in the foreground (Ctrl-C stops everything it started)
run:
	$(SYSTEM) run

## up: the whole system in the background; returns once healthy and prints the gateway URL
up:
	$(SYSTEM) up

## down: stop the background system and the platform
down:
	$(SYSTEM) down

## test: every test, against real PostgreSQL and RabbitMQ
test:
	$(PLATFORM) up
	$(WITH_ENV) go test -count=1 -timeout 20m ./...

## demo: seed a catalogue and play customers through every saga path (needs `make up`)
demo:
	$(WITH_ENV) go run ./cmd/shopmesh demo

## chaos: every chaos scenario at full length (mixed included), with the ledger check
chaos:
	$(PLATFORM) up
	$(WITH_ENV) go run ./cmd/shopmesh chaos --scenario all

## bench: outbox, relay and pipeline measured side by side with their baselines
bench:
	$(PLATFORM) up
	$(WITH_ENV) go run ./cmd/shopmesh bench

## lint: static checks
lint:
	go vet ./...
	go run ./cmd/shopmesh contracts check
