#!/usr/bin/env bash
# system.sh runs the whole shopmesh system on this machine: the local platform
# (PostgreSQL and RabbitMQ, see platform.sh), then `shopmesh migrate`, then
# every service and the gateway (`shopmesh serve all`).
#
#   deploy/local/system.sh run    in the foreground; Ctrl-C stops every process it started
#   deploy/local/system.sh up     in the background; returns once the gateway is ready
#   deploy/local/system.sh down   stop the background system and the platform
#
# The binary is built to .run/bin/shopmesh; logs of `up` go to .run/logs/shopmesh.log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT
readonly RUN=$ROOT/.run
readonly PLATFORM=$ROOT/deploy/local/platform.sh
readonly BIN=$RUN/bin/shopmesh
readonly PID_FILE=$RUN/shopmesh.pid
readonly LOG=$RUN/logs/shopmesh.log
readonly DEADLINE=90 # seconds the system may take to become ready

log() { printf '%s system: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# prepare starts the platform, loads its environment, builds and migrates.
# It sets STARTED_PLATFORM when this call started the platform.
prepare() {
	command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
	STARTED_PLATFORM=
	if ! "$PLATFORM" status >/dev/null 2>&1; then
		STARTED_PLATFORM=1
	fi
	"$PLATFORM" up
	set -a
	# shellcheck disable=SC1091
	. "$RUN/env"
	set +a
	mkdir -p "$RUN/bin" "$RUN/logs"
	log "building shopmesh"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/shopmesh)
	log "provisioning and migrating"
	"$BIN" migrate
}

gateway_url() { echo "http://${SHOPMESH_GATEWAY_ADDR:-127.0.0.1:8080}"; }

wait_ready() {
	local url end
	url=$(gateway_url)
	end=$((SECONDS + DEADLINE))
	until curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; do
		if [[ -n ${1:-} ]] && ! kill -0 "$1" 2>/dev/null; then
			tail -n 40 "$LOG" >&2 || true
			die "shopmesh exited during start-up (log: $LOG)"
		fi
		((SECONDS < end)) || die "not ready after ${DEADLINE}s (log: $LOG)"
		sleep 0.2
	done
}

cmd_run() {
	prepare
	local pid status=0
	"$BIN" serve all &
	pid=$!
	# Ctrl-C reaches the whole foreground process group; serve stops its
	# services cleanly on SIGINT/SIGTERM. Forward TERM explicitly as well.
	trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
	(wait_ready "$pid" && log "ready: $(gateway_url)") &
	wait "$pid" || status=$?
	# wait returns early when a trapped signal arrives; wait for the exit.
	while kill -0 "$pid" 2>/dev/null; do wait "$pid" || status=$?; done
	trap - INT TERM
	if [[ -n $STARTED_PLATFORM ]]; then
		log "stopping the platform it started"
		"$PLATFORM" down
	fi
	# 130/143: stopped by the signal, which is how `run` is meant to end.
	if ((status == 130 || status == 143)); then status=0; fi
	return "$status"
}

running_pid() {
	local pid
	[[ -f $PID_FILE ]] || return 1
	pid=$(cat "$PID_FILE")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

cmd_up() {
	if pid=$(running_pid); then
		set -a
		# shellcheck disable=SC1091
		. "$RUN/env"
		set +a
		wait_ready "$pid"
		log "already running (pid $pid): $(gateway_url)"
		gateway_url
		return
	fi
	prepare
	nohup "$BIN" serve all >>"$LOG" 2>&1 &
	echo $! >"$PID_FILE"
	wait_ready "$(cat "$PID_FILE")"
	log "ready (pid $(cat "$PID_FILE"), log $LOG)"
	gateway_url
}

cmd_down() {
	local pid end
	if pid=$(running_pid); then
		log "stopping shopmesh (pid $pid)"
		kill -TERM "$pid"
		end=$((SECONDS + 30))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$PID_FILE"
	"$PLATFORM" down
}

case ${1:-} in
run) cmd_run ;;
up) cmd_up ;;
down) cmd_down ;;
*)
	echo "usage: $0 run|up|down" >&2
	exit 2
	;;
esac
