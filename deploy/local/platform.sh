#!/usr/bin/env bash
# platform.sh runs the PostgreSQL cluster and the RabbitMQ node that shopmesh is
# developed and tested against on this machine.
#
#   deploy/local/platform.sh up                start (or reuse) both servers, write .run/env
#   deploy/local/platform.sh down              stop both servers
#   deploy/local/platform.sh status            show what runs
#   deploy/local/platform.sh env               print .run/env
#   deploy/local/platform.sh restart-postgres  stop and start PostgreSQL
#   deploy/local/platform.sh restart-rabbitmq  stop and start RabbitMQ
#
# All state lives under <repo>/.run. Both servers listen on 127.0.0.1 only, on
# ports of their own (PostgreSQL 5442; RabbitMQ AMQP 5682, management 15682,
# distribution 25682, epmd 4379; node shopmesh@localhost), so a system
# PostgreSQL or RabbitMQ on the default ports is never touched.
#
# up writes .run/env (mode 600), which exports SHOPMESH_POSTGRES_URL,
# SHOPMESH_AMQP_URL, SHOPMESH_AMQP_MANAGEMENT_URL and SHOPMESH_SECRET; load it
# with `set -a; . .run/env; set +a`. Passwords are generated once and kept there.
#
# Servers run elsewhere: when SHOPMESH_POSTGRES_URL, SHOPMESH_AMQP_URL and
# SHOPMESH_AMQP_MANAGEMENT_URL are set (and are not just the values of a local
# .run/env), up starts nothing; it checks that they answer and records them in
# .run/env. down then forgets them.
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the system
# user "shopmesh" (created when missing). RabbitMQ runs as the invoking user.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT
readonly RUN=$ROOT/.run
readonly ENV_FILE=$RUN/env
readonly LOG_DIR=$RUN/logs
readonly RMQ_DIR=$RUN/rabbitmq
readonly RMQ_CTL=$RUN/rabbitmqctl
readonly RMQ_SBIN=/usr/lib/rabbitmq/bin
readonly PG_VERSION_WANTED=15

# SHOPMESH_PLATFORM_PORT_OFFSET shifts every port but epmd's and renames the
# node, so a second checkout can run its own platform beside this one.
readonly OFFSET=${SHOPMESH_PLATFORM_PORT_OFFSET:-0}
[[ $OFFSET =~ ^[0-9]+$ ]] || { echo "SHOPMESH_PLATFORM_PORT_OFFSET must be a number" >&2 && exit 2; }
readonly PG_PORT=$((5442 + OFFSET))
readonly AMQP_PORT=$((5682 + OFFSET))
readonly MGMT_PORT=$((15682 + OFFSET))
readonly DIST_PORT=$((25682 + OFFSET))
readonly EPMD_PORT=4379
if ((OFFSET == 0)); then NODE=shopmesh@localhost; else NODE=shopmesh$OFFSET@localhost; fi
readonly NODE
readonly ADMIN=shopmesh_admin
readonly VHOST=shopmesh
readonly PG_OS_USER=shopmesh
readonly DEADLINE=60 # seconds any single wait may take

# SHOPMESH_RABBITMQ_SCHEDULERS is how many Erlang schedulers the node runs
# (+S N:N); by default half the CPUs, at least one. The runtime would start
# one per CPU, but the node shares the CPUs with PostgreSQL and the services,
# and on two cores it spent a fifth to a third more CPU per message with two
# schedulers than with one (README, Performance). Takes effect when the node
# (re)starts.
RMQ_SCHEDULERS=${SHOPMESH_RABBITMQ_SCHEDULERS:-$(($(nproc) / 2))}
[[ $RMQ_SCHEDULERS =~ ^[0-9]+$ ]] || { echo "SHOPMESH_RABBITMQ_SCHEDULERS must be a number" >&2 && exit 2; }
((RMQ_SCHEDULERS >= 1)) || RMQ_SCHEDULERS=1
readonly RMQ_SCHEDULERS

# Filled in by setup_pg/load_credentials.
AS_PG=()
PG_DATA=
PG_LOG=
PG_PASSWORD=
RMQ_PASSWORD=
SECRET=

log() { printf '%s platform: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# alive reports whether pid runs and is not a zombie (in containers PID 1 may
# never reap the daemons we detach).
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $st && $st != Z* ]]
}

# wait_until DESCRIPTION LOGFILE COMMAND... polls COMMAND for up to DEADLINE
# seconds; on timeout it prints the tail of LOGFILE and fails.
wait_until() {
	local what=$1 logfile=$2
	shift 2
	local end=$((SECONDS + DEADLINE))
	until "$@"; do
		if ((SECONDS >= end)); then
			tail_log "$logfile"
			die "$what not ready after ${DEADLINE}s"
		fi
		sleep 0.25
	done
}

tail_log() {
	[[ -f $1 ]] || return 0
	log "last lines of $1:"
	tail -n 40 "$1" >&2 || true
}

# env_value NAME prints NAME as set by .run/env, or nothing.
env_value() {
	[[ -f $ENV_FILE ]] || return 0
	(
		set +eu
		unset "$1"
		# shellcheck disable=SC1090
		. "$ENV_FILE" >/dev/null 2>&1
		printenv "$1" || true
	)
}

# quote prints $1 as a single-quoted shell word.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

lock() {
	mkdir -p "$RUN"
	exec 9>"$RUN/platform.lock"
	flock -w 300 9 || die "another platform.sh holds $RUN/platform.lock"
}

# ---------------------------------------------------------------- packages

APT_UPDATED=
apt_install() {
	[[ $(id -u) == 0 ]] || die "$* missing; install with: sudo apt-get install -y $*"
	log "installing $*"
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z $APT_UPDATED ]]; then
		apt-get update -qq
		APT_UPDATED=1
	fi
	# A package whose service cannot start here (no init system) makes
	# apt-get fail after unpacking; callers check what they need instead.
	apt-get install -y -qq "$@" >/dev/null || log "apt-get install $* reported errors"
}

pg_bin_path() {
	local dir=/usr/lib/postgresql/$PG_VERSION_WANTED/bin
	[[ -d $dir && :$PATH: != *:$dir:* ]] && PATH=$dir:$PATH
	return 0
}

ensure_packages() {
	pg_bin_path
	if ! command -v initdb >/dev/null; then
		apt_install "postgresql-$PG_VERSION_WANTED"
		pg_bin_path
		command -v initdb >/dev/null || die "initdb still missing after installing postgresql-$PG_VERSION_WANTED"
	fi
	if [[ ! -x $RMQ_SBIN/rabbitmq-server ]]; then
		apt_install rabbitmq-server
		[[ -x $RMQ_SBIN/rabbitmq-server ]] || die "$RMQ_SBIN/rabbitmq-server still missing after installing rabbitmq-server"
	fi
	ensure_curl
}

ensure_clients() {
	pg_bin_path
	if ! command -v psql >/dev/null; then
		apt_install "postgresql-client-$PG_VERSION_WANTED"
		pg_bin_path
		command -v psql >/dev/null || die "psql still missing after installing postgresql-client-$PG_VERSION_WANTED"
	fi
	ensure_curl
}

ensure_curl() {
	command -v curl >/dev/null && return 0
	apt_install curl
	command -v curl >/dev/null || die "curl still missing after installing it"
}

# ---------------------------------------------------------------- credentials

load_credentials() {
	local url
	url=$(env_value SHOPMESH_POSTGRES_URL)
	[[ $url =~ ^postgres://$ADMIN:([^@]*)@127\.0\.0\.1:$PG_PORT/ ]] && PG_PASSWORD=${BASH_REMATCH[1]}
	url=$(env_value SHOPMESH_AMQP_URL)
	[[ $url =~ ^amqp://$ADMIN:([^@]*)@127\.0\.0\.1:$AMQP_PORT/ ]] && RMQ_PASSWORD=${BASH_REMATCH[1]}
	SECRET=$(env_value SHOPMESH_SECRET)
	[[ -n $PG_PASSWORD ]] || PG_PASSWORD=$(random_hex 16)
	[[ -n $RMQ_PASSWORD ]] || RMQ_PASSWORD=$(random_hex 16)
	[[ -n $SECRET ]] || SECRET=$(random_hex 32)
}

# write_env PLATFORM POSTGRES_URL AMQP_URL MANAGEMENT_URL [EXTRA_LINES]
write_env() {
	local tmp
	mkdir -p "$RUN"
	tmp=$(mktemp "$RUN/env.XXXXXX")
	chmod 600 "$tmp"
	{
		echo "# Written by deploy/local/platform.sh; load with: set -a; . .run/env; set +a"
		echo "export SHOPMESH_PLATFORM=$(quote "$1")"
		echo "export SHOPMESH_POSTGRES_URL=$(quote "$2")"
		echo "export SHOPMESH_AMQP_URL=$(quote "$3")"
		echo "export SHOPMESH_AMQP_MANAGEMENT_URL=$(quote "$4")"
		echo "export SHOPMESH_SECRET=$(quote "$SECRET")"
		[[ -z ${5:-} ]] || printf '%s\n' "$5"
	} >"$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

write_local_env() {
	write_env local \
		"postgres://$ADMIN:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
		"amqp://$ADMIN:$RMQ_PASSWORD@127.0.0.1:$AMQP_PORT/$VHOST" \
		"http://$ADMIN:$RMQ_PASSWORD@127.0.0.1:$MGMT_PORT" \
		"export SHOPMESH_POSTGRES_DATA=$(quote "$PG_DATA")
export SHOPMESH_RABBITMQ_CTL=$(quote "$RMQ_CTL")
export SHOPMESH_RABBITMQ_NODE=$(quote "$NODE")"
}

# ---------------------------------------------------------------- postgres

# setup_pg [create] decides who runs PostgreSQL and where its data lives;
# with "create" it adds the system user when missing.
setup_pg() {
	if [[ $(id -u) == 0 ]]; then
		if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
			[[ ${1:-} == create ]] || return 1
			log "creating system user $PG_OS_USER"
			useradd --system --user-group --home-dir /nonexistent --no-create-home \
				--shell /usr/sbin/nologin "$PG_OS_USER"
		fi
		AS_PG=(runuser -u "$PG_OS_USER" --)
	fi
	PG_DATA=$RUN/postgres
	PG_LOG=$LOG_DIR/postgres.log
	if [[ -L $PG_DATA ]]; then
		PG_DATA=$(readlink -f "$PG_DATA")
		PG_LOG=$(dirname "$PG_DATA")/postgres.log
	elif [[ ${#AS_PG[@]} -gt 0 && ! -e $PG_DATA ]] && ! as_pg test -x "$RUN"; then
		# The checkout lives where the unprivileged user cannot reach (e.g.
		# under /root): keep the cluster outside it and link it from .run.
		local home
		home=/var/lib/shopmesh/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
		mkdir -p "$home"
		chown "$PG_OS_USER": "$home"
		chmod 700 "$home"
		ln -s "$home/postgres" "$RUN/postgres"
		PG_DATA=$home/postgres
		PG_LOG=$home/postgres.log
		log "$RUN is not reachable by $PG_OS_USER; PostgreSQL data lives in $PG_DATA"
	fi
}

# as_pg runs a command as the PostgreSQL owner from a directory it can read.
as_pg() { (cd / && "${AS_PG[@]}" "$@"); }

pg_own() { [[ ${#AS_PG[@]} -eq 0 ]] || chown "$PG_OS_USER": "$@"; }

# pg_postmaster prints the pid of the running postmaster. Unlike pg_ctl
# status it does not take a zombie (killed, not yet reaped) for a server.
pg_postmaster() {
	local pid
	[[ -f $PG_DATA/postmaster.pid ]] || return 1
	pid=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

pg_running() { pg_postmaster >/dev/null; }

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }

pg_auth_ok() {
	PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$PG_PORT" -U "$ADMIN" \
		-d postgres -XAtqc 'select 1' >/dev/null 2>&1
}

pg_init() {
	log "initialising PostgreSQL cluster in $PG_DATA"
	rm -rf "$PG_DATA"
	mkdir -p "$PG_DATA"
	chmod 700 "$PG_DATA"
	pg_own "$PG_DATA"
	local pwfile locale=(--no-locale)
	locale -a 2>/dev/null | grep -qix 'c\.utf-\?8' && locale=(--locale=C.UTF-8)
	pwfile=$(mktemp)
	printf '%s\n' "$PG_PASSWORD" >"$pwfile"
	pg_own "$pwfile"
	if ! as_pg initdb -D "$PG_DATA" -U "$ADMIN" --pwfile="$pwfile" -A scram-sha-256 -E UTF8 \
		"${locale[@]}" >"$LOG_DIR/initdb.log" 2>&1; then
		rm -f "$pwfile"
		rm -rf "$PG_DATA"
		tail_log "$LOG_DIR/initdb.log"
		die "initdb failed"
	fi
	rm -f "$pwfile"
	echo "include_if_exists = 'shopmesh.conf'" >>"$PG_DATA/postgresql.conf"
}

# pg_configure rewrites the settings we own on every start, so changing them
# here takes effect on the next restart of an existing cluster.
pg_configure() {
	cat >"$PG_DATA/shopmesh.conf" <<-EOF
		# Written by deploy/local/platform.sh on every start; edit the script instead.
		listen_addresses = '127.0.0.1'
		port = $PG_PORT
		unix_socket_directories = ''
		max_connections = 400
		password_encryption = 'scram-sha-256'
	EOF
	cat >"$PG_DATA/pg_hba.conf" <<-EOF
		# Written by deploy/local/platform.sh on every start; edit the script instead.
		host all all 127.0.0.1/32 scram-sha-256
	EOF
	chmod 600 "$PG_DATA/shopmesh.conf" "$PG_DATA/pg_hba.conf"
	pg_own "$PG_DATA/shopmesh.conf" "$PG_DATA/pg_hba.conf"
}

pg_start() {
	if port_open "$PG_PORT"; then
		die "127.0.0.1:$PG_PORT is taken by another process; stop it first"
	fi
	if [[ -f $PG_DATA/postmaster.pid ]]; then
		# The postmaster died (it may linger as a zombie, which would make
		# the new one believe it still runs).
		log "removing the stale postmaster.pid of a crashed PostgreSQL"
		rm -f "$PG_DATA/postmaster.pid"
	fi
	pg_configure
	touch "$PG_LOG"
	pg_own "$PG_LOG"
	log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
	# 9>&- keeps the postmaster from inheriting the platform lock.
	if ! as_pg pg_ctl -D "$PG_DATA" -l "$PG_LOG" -w -t "$DEADLINE" start >/dev/null 9>&-; then
		tail_log "$PG_LOG"
		die "PostgreSQL did not start"
	fi
}

pg_stop() {
	pg_running || return 0
	log "stopping PostgreSQL"
	as_pg pg_ctl -D "$PG_DATA" -m fast -w -t "$DEADLINE" stop >/dev/null ||
		die "PostgreSQL did not stop within ${DEADLINE}s"
}

# pg_reset_password sets the admin password of a stopped cluster in
# single-user mode: the cluster outlived the .run/env holding its password.
pg_reset_password() {
	log "resetting the PostgreSQL admin password to the one in $ENV_FILE"
	printf "ALTER ROLE %s WITH LOGIN SUPERUSER PASSWORD '%s';\n" "$ADMIN" "$PG_PASSWORD" |
		as_pg postgres --single -D "$PG_DATA" postgres >>"$PG_LOG" 2>&1 ||
		die "could not reset the admin password (see $PG_LOG)"
}

pg_up() {
	[[ -f $PG_DATA/PG_VERSION ]] || pg_init
	if pg_running; then
		log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
	else
		pg_start
	fi
	wait_until "PostgreSQL" "$PG_LOG" pg_ready
	if ! pg_auth_ok; then
		pg_stop
		pg_reset_password
		pg_start
		wait_until "PostgreSQL" "$PG_LOG" pg_ready
		pg_auth_ok || die "cannot log in to PostgreSQL as $ADMIN"
	fi
}

# ---------------------------------------------------------------- rabbitmq

readonly RMQ_PID_FILE=$RMQ_DIR/mnesia/$NODE.pid
readonly RMQ_LOG=$RMQ_DIR/log/$NODE.log
readonly RMQ_STARTUP_LOG=$RMQ_DIR/log/startup.log

# rmq_write_files writes the node's environment, configuration and the
# rabbitmqctl wrapper. The default_* settings only seed a fresh node;
# rmq_ensure_access keeps an existing one in line.
rmq_write_files() {
	mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log" "$RMQ_DIR/conf.d"
	if [[ ! -s $RMQ_DIR/.erlang.cookie ]]; then
		(umask 077 && random_hex 20 | tr a-f A-F >"$RMQ_DIR/.erlang.cookie")
	fi
	chmod 400 "$RMQ_DIR/.erlang.cookie"
	: >"$RMQ_DIR/rabbitmq-env.conf" # shadows /etc/rabbitmq/rabbitmq-env.conf
	echo '[rabbitmq_management].' >"$RMQ_DIR/enabled_plugins"
	(
		umask 077
		cat >"$RMQ_DIR/rabbitmq.conf" <<-EOF
			# Written by deploy/local/platform.sh on every start; edit the script instead.
			management.tcp.ip = 127.0.0.1
			management.tcp.port = $MGMT_PORT
			# Queue depths in the management API refresh this often (ms).
			collect_statistics_interval = 1000
			loopback_users = none
			default_vhost = $VHOST
			default_user = $ADMIN
			default_pass = $RMQ_PASSWORD
			default_user_tags.administrator = true
			default_permissions.configure = .*
			default_permissions.read = .*
			default_permissions.write = .*
			log.console = false
			log.file.level = info
		EOF
	)
	{
		echo "# Written by deploy/local/platform.sh: the environment of node $NODE."
		local kv
		for kv in \
			"HOME=$RMQ_DIR" \
			"ERL_EPMD_PORT=$EPMD_PORT" \
			"ERL_EPMD_ADDRESS=127.0.0.1" \
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} +S $RMQ_SCHEDULERS:$RMQ_SCHEDULERS" \
			"RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}" \
			"RABBITMQ_NODENAME=$NODE" \
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
			"RABBITMQ_NODE_PORT=$AMQP_PORT" \
			"RABBITMQ_DIST_PORT=$DIST_PORT" \
			"RABBITMQ_CTL_DIST_PORT_MIN=$((DIST_PORT + 10000))" \
			"RABBITMQ_CTL_DIST_PORT_MAX=$((DIST_PORT + 10010))" \
			"RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia" \
			"RABBITMQ_LOG_BASE=$RMQ_DIR/log" \
			"RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins" \
			"RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf" \
			"RABBITMQ_CONFIG_FILES=$RMQ_DIR/conf.d" \
			"RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config" \
			"RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf"; do
			echo "export ${kv%%=*}=$(quote "${kv#*=}")"
		done
	} >"$RMQ_DIR/node.env"
	cat >"$RMQ_CTL" <<-EOF
		#!/usr/bin/env bash
		# Written by deploy/local/platform.sh: rabbitmqctl for node $NODE.
		. $(quote "$RMQ_DIR/node.env")
		exec $RMQ_SBIN/rabbitmqctl "\$@"
	EOF
	chmod 755 "$RMQ_CTL"
}

rmq_pid() {
	local pid
	[[ -f $RMQ_PID_FILE ]] || return 1
	pid=$(<"$RMQ_PID_FILE")
	[[ -n $pid ]] && alive "$pid" && grep -q beam "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

rmq_running() { rmq_pid >/dev/null; }

rmq_listening() { port_open "$AMQP_PORT" && port_open "$MGMT_PORT"; }

rmq_start() {
	local port
	for port in "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT"; do
		! port_open "$port" || die "127.0.0.1:$port is taken by another process; stop it first"
	done
	rm -f "$RMQ_PID_FILE"
	log "starting RabbitMQ node $NODE on 127.0.0.1:$AMQP_PORT (management $MGMT_PORT)"
	(
		# shellcheck disable=SC1091
		. "$RMQ_DIR/node.env"
		cd "$RMQ_DIR"
		setsid nohup "$RMQ_SBIN/rabbitmq-server" >>"$RMQ_STARTUP_LOG" 2>&1 </dev/null 9>&- &
		echo $! >"$RMQ_DIR/server.pid"
	)
	local server end=$((SECONDS + DEADLINE))
	server=$(<"$RMQ_DIR/server.pid")
	until rmq_listening; do
		if ! alive "$server"; then
			tail_log "$RMQ_STARTUP_LOG"
			tail_log "$RMQ_LOG"
			die "RabbitMQ exited during startup"
		fi
		if ((SECONDS >= end)); then
			tail_log "$RMQ_LOG"
			die "RabbitMQ not listening after ${DEADLINE}s"
		fi
		sleep 0.25
	done
}

rmq_await() {
	if ! timeout $((DEADLINE + 10)) "$RMQ_CTL" await_startup --timeout "$DEADLINE" >/dev/null 2>&1; then
		tail_log "$RMQ_LOG"
		die "RabbitMQ did not finish booting within ${DEADLINE}s"
	fi
}

rmq_stop() {
	local pid
	pid=$(rmq_pid) || return 0
	log "stopping RabbitMQ node $NODE"
	timeout $((DEADLINE + 10)) "$RMQ_CTL" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
	local end=$((SECONDS + DEADLINE))
	while alive "$pid"; do
		if ((SECONDS >= end)); then
			log "RabbitMQ did not stop within ${DEADLINE}s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.25
	done
}

# mgmt_api METHOD PATH [BODY] calls the management API as the admin and
# prints the HTTP status code.
mgmt_api() {
	local args=(-sS -o /dev/null -w '%{http_code}' -m 10 -u "$ADMIN:$RMQ_PASSWORD" -X "$1")
	[[ -z ${3:-} ]] || args+=(-H 'content-type: application/json' -d "$3")
	curl "${args[@]}" "http://127.0.0.1:$MGMT_PORT$2" || echo 000
}

rmq_admin_ok() { [[ $(mgmt_api GET /api/whoami) == 200 ]]; }

rmq_ensure_access() {
	if ! rmq_admin_ok; then
		log "setting the RabbitMQ admin credentials to the ones in $ENV_FILE"
		"$RMQ_CTL" add_user "$ADMIN" "$RMQ_PASSWORD" >/dev/null 2>&1 ||
			"$RMQ_CTL" change_password "$ADMIN" "$RMQ_PASSWORD" >/dev/null
		"$RMQ_CTL" set_user_tags "$ADMIN" administrator >/dev/null
		wait_until "RabbitMQ admin login" "$RMQ_LOG" rmq_admin_ok
	fi
	local code
	code=$(mgmt_api PUT "/api/vhosts/$VHOST" '{}')
	[[ $code == 201 || $code == 204 ]] || die "create vhost $VHOST: HTTP $code"
	code=$(mgmt_api PUT "/api/permissions/$VHOST/$ADMIN" '{"configure":".*","write":".*","read":".*"}')
	[[ $code == 201 || $code == 204 ]] || die "grant $ADMIN on $VHOST: HTTP $code"
	code=$(mgmt_api DELETE /api/users/guest)
	[[ $code == 204 || $code == 404 ]] || die "delete user guest: HTTP $code"
}

rmq_up() {
	rmq_write_files
	if rmq_running; then
		log "RabbitMQ node $NODE already running"
		wait_until "RabbitMQ listeners" "$RMQ_LOG" rmq_listening
	else
		rmq_start
		rmq_await
	fi
	rmq_ensure_access
}

# ---------------------------------------------------------------- external

external_up() {
	local pg=$1 amqp=$2 mgmt=$3
	[[ -n $mgmt ]] || die "SHOPMESH_AMQP_MANAGEMENT_URL must be set along with SHOPMESH_POSTGRES_URL and SHOPMESH_AMQP_URL"
	ensure_clients
	log "using the servers from the environment"
	PGCONNECT_TIMEOUT=5 psql "$pg" -XAtqc 'select 1' >/dev/null ||
		die "PostgreSQL at SHOPMESH_POSTGRES_URL does not answer"
	[[ $amqp =~ ^amqps?://([^@/]*@)?([^:/?]+)(:([0-9]+))? ]] || die "cannot parse SHOPMESH_AMQP_URL"
	port_open "${BASH_REMATCH[4]:-5672}" "${BASH_REMATCH[2]}" ||
		die "RabbitMQ at SHOPMESH_AMQP_URL does not answer"
	curl -fsS -m 10 -o /dev/null "${mgmt%/}/api/overview" ||
		die "RabbitMQ management API at SHOPMESH_AMQP_MANAGEMENT_URL does not answer"
	SECRET=${SHOPMESH_SECRET:-$(env_value SHOPMESH_SECRET)}
	[[ -n $SECRET ]] || SECRET=$(random_hex 32)
	write_env external "$pg" "$amqp" "$mgmt"
}

# ---------------------------------------------------------------- commands

local_up() {
	ensure_packages
	mkdir -p "$LOG_DIR" "$RMQ_DIR"
	chmod 755 "$RUN" "$LOG_DIR"
	setup_pg create
	load_credentials
	write_local_env # first, so generated passwords outlive a failed start
	pg_up
	rmq_up
	log "platform up: PostgreSQL 127.0.0.1:$PG_PORT, RabbitMQ 127.0.0.1:$AMQP_PORT (management $MGMT_PORT); env in $ENV_FILE"
}

cmd_up() {
	local pg=${SHOPMESH_POSTGRES_URL:-} amqp=${SHOPMESH_AMQP_URL:-} mgmt=${SHOPMESH_AMQP_MANAGEMENT_URL:-}
	local platform
	platform=$(env_value SHOPMESH_PLATFORM)
	if [[ -n $pg && -n $amqp ]]; then
		# Values that merely come from a sourced local .run/env mean "local".
		if [[ $platform == local && $pg == "$(env_value SHOPMESH_POSTGRES_URL)" &&
			$amqp == "$(env_value SHOPMESH_AMQP_URL)" ]]; then
			local_up
		else
			external_up "$pg" "$amqp" "$mgmt"
		fi
	elif [[ $platform == external ]]; then
		external_up "$(env_value SHOPMESH_POSTGRES_URL)" "$(env_value SHOPMESH_AMQP_URL)" \
			"$(env_value SHOPMESH_AMQP_MANAGEMENT_URL)"
	else
		local_up
	fi
}

cmd_down() {
	pg_bin_path
	if [[ $(env_value SHOPMESH_PLATFORM) == external ]]; then
		log "forgetting the external servers"
		rm -f "$ENV_FILE"
	fi
	if [[ -e $RUN/postgres ]] && command -v pg_ctl >/dev/null && setup_pg; then
		pg_stop
	fi
	if [[ -x $RMQ_CTL ]]; then
		rmq_stop
	fi
	log "platform down"
}

cmd_status() {
	local platform rc=0 pid
	pg_bin_path
	platform=$(env_value SHOPMESH_PLATFORM)
	echo "platform:   ${platform:-none (run: deploy/local/platform.sh up)}"
	if [[ $platform == external ]]; then
		echo "postgres:   $(env_value SHOPMESH_POSTGRES_URL | sed 's#//\([^:]*\):[^@]*@#//\1:***@#')"
		echo "amqp:       $(env_value SHOPMESH_AMQP_URL | sed 's#//\([^:]*\):[^@]*@#//\1:***@#')"
		return 0
	fi
	if [[ -e $RUN/postgres ]] && command -v pg_ctl >/dev/null && setup_pg; then
		if pid=$(pg_postmaster); then
			echo "postgres:   running, pid $pid, 127.0.0.1:$PG_PORT, data $PG_DATA"
		else
			echo "postgres:   stopped (data $PG_DATA)"
			rc=3
		fi
	else
		echo "postgres:   not initialised"
		rc=3
	fi
	if pid=$(rmq_pid); then
		echo "rabbitmq:   running, pid $pid, node $NODE, amqp 127.0.0.1:$AMQP_PORT, management 127.0.0.1:$MGMT_PORT"
	else
		echo "rabbitmq:   stopped"
		rc=3
	fi
	[[ ! -f $ENV_FILE ]] || echo "env:        $ENV_FILE"
	return "$rc"
}

cmd_env() {
	[[ -f $ENV_FILE ]] || die "no $ENV_FILE; run: deploy/local/platform.sh up"
	cat "$ENV_FILE"
}

require_local() {
	[[ $(env_value SHOPMESH_PLATFORM) != external ]] || die "the servers are external; nothing to restart here"
	ensure_packages
	mkdir -p "$LOG_DIR" "$RMQ_DIR"
	setup_pg create
	load_credentials
}

main() {
	case ${1:-} in
	up)
		lock
		cmd_up
		;;
	down)
		lock
		cmd_down
		;;
	status) cmd_status ;;
	env) cmd_env ;;
	restart-postgres)
		lock
		require_local
		pg_stop
		pg_up
		;;
	restart-rabbitmq)
		lock
		require_local
		rmq_write_files
		rmq_stop
		rmq_up
		;;
	*)
		echo "usage: $0 up|down|status|env|restart-postgres|restart-rabbitmq" >&2
		exit 2
		;;
	esac
}

main "$@"
