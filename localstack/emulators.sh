#!/usr/bin/env bash
# Local AWS emulator (moto) for machines without Docker; what the
# `make emulators-*` targets run (mk/emulators.mk).
#
#   emulators.sh up         start moto on 127.0.0.1:$EMULATOR_PORT (default
#                           4566, LocalStack's edge port), create Agentry's
#                           resources, print the variables to export
#   emulators.sh down       stop the moto that `up` started (only that one)
#   emulators.sh env        print the export lines for the running moto
#   emulators.sh admin-key  print a local admin key (kept in .emulators/)
#   emulators.sh check      run check_moto_sfn.py against a fresh moto, with
#                           and without the launcher's Step Functions patch
#
# `up` and `down` are idempotent. Only the export lines (and # comments) go
# to stdout, so `eval "$(make -s emulators-up)"` sets up a shell; the rest
# is reported on stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/.emulators
PIDFILE=$STATE/moto.pid
PORTFILE=$STATE/moto.port
LOG=$STATE/moto.log
KEYFILE=$STATE/admin.key
LAUNCHER=$ROOT/localstack/moto_launcher.py
HOST=127.0.0.1 # loopback only: the emulator takes any credentials
PORT=${EMULATOR_PORT:-4566}
REGION=${EMULATOR_REGION:-us-east-1}
PY=${PYTHON:-python3}
GO=${GO:-go}

say() { echo "$*" >&2; }
die() {
	say "emulators: $*"
	exit 1
}

need_moto() {
	local err
	if ! err=$("$PY" -c 'import moto.server' 2>&1); then
		die "$PY cannot import moto.server, so the local AWS emulator cannot run.
  $(tail -n 1 <<<"$err")
  Install moto 5.x with its server extras for $PY (pip install 'moto[server]'),
  or use LocalStack with Docker instead: see localstack/README.md."
	fi
}

# is_ours PID: true when PID is this checkout's launcher. The launcher is
# started with absolute paths to itself and to our port file, so another
# checkout's moto, or an unrelated process that inherited a recycled PID,
# never matches.
is_ours() {
	local args
	args=$(ps -ww -o args= -p "$1" 2>/dev/null) || return 1
	[[ $args == *"$LAUNCHER"* && $args == *"--port-file $PORTFILE"* ]]
}

# running: prints the PID of our live launcher, or fails.
running() {
	local pid
	[[ -s $PIDFILE ]] || return 1
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid" && echo "$pid"
}

print_env() {
	cat <<EOF
# Agentry's local AWS (moto) on $HOST:$1; point the AWS SDK and CLI at it:
export AWS_ENDPOINT_URL=http://$HOST:$1
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
EOF
}

cmd_up() {
	local pid port i
	mkdir -p "$STATE"
	if pid=$(running); then
		# Another `up` may have started it a moment ago: give it the same
		# minute to start listening that a fresh start gets.
		for ((i = 0; i < 600; i++)); do
			[[ -s $PORTFILE ]] && break
			sleep 0.1
		done
		[[ -s $PORTFILE ]] || die "moto (pid $pid) is running but has not reported a port; see $LOG"
		port=$(<"$PORTFILE")
		say "moto is already running (pid $pid) on $HOST:$port; \`make emulators-down\` stops it"
		if [[ $port != "$PORT" ]]; then
			say "note: it listens on $port, not EMULATOR_PORT=$PORT; stop it first to move it"
		fi
		print_env "$port"
		return 0
	fi
	rm -f "$PIDFILE" "$PORTFILE" # left by a launcher that died
	need_moto

	# A session of its own (setsid -f), so a Ctrl-C meant for the program
	# started next (make run-aws-local) or a closed terminal does not take
	# the emulator along; `down` stops it. The launcher writes its own PID
	# because `setsid -f` forks and $! would be the wrong process.
	local launch=("$PY" "$LAUNCHER" --host "$HOST" --port "$PORT" --port-file "$PORTFILE" --pid-file "$PIDFILE" --sfn-execute)
	# 9>&-: the launcher must not inherit the lock (see lock below), or it
	# would hold it for its whole life and block every later up/down.
	if command -v setsid >/dev/null; then
		setsid -f "${launch[@]}" >"$LOG" 2>&1 </dev/null 9>&-
	else # macOS has no setsid; nohup at least survives the terminal
		nohup "${launch[@]}" >"$LOG" 2>&1 </dev/null 9>&- &
	fi

	# The port file appears once moto accepts connections; a launcher that
	# exits first (port taken, broken moto) has failed.
	for ((i = 0; i < 600; i++)); do
		[[ -s $PORTFILE ]] && break
		if [[ -s $PIDFILE ]] && ! kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
			rm -f "$PIDFILE"
			if grep -q "is not free" "$LOG"; then
				die "port $PORT on $HOST is already in use.
  Another emulator (LocalStack?) may be running there; stop it or choose
  another port: make emulators-up EMULATOR_PORT=4567"
			fi
			die "moto exited during start; its log ($LOG) ends with:
$(tail -n 20 "$LOG")"
		fi
		sleep 0.1
	done
	[[ -s $PORTFILE ]] || die "moto did not start listening within 60s; see $LOG"
	pid=$(<"$PIDFILE")
	port=$(<"$PORTFILE")
	say "moto started (pid $pid) on $HOST:$port, log in $LOG"

	# Create the resources; if that fails, stop what we started so that a
	# second `up` does not report a half-made emulator as ready.
	if ! (cd "$ROOT" && env AWS_ENDPOINT_URL="http://$HOST:$port" AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION" \
		AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN= AWS_PROFILE= AWS_EC2_METADATA_DISABLED=true \
		"$GO" run ./localstack/bootstrap) >&2; then
		cmd_down
		die "creating Agentry's resources failed (above); the emulator was stopped again"
	fi
	print_env "$port"
}

cmd_down() {
	local pid i
	if [[ ! -e $PIDFILE ]]; then
		say "moto is not running (no $PIDFILE)"
		rm -f "$PORTFILE"
		return 0
	fi
	if ! pid=$(running); then
		# The launcher died or its PID now belongs to someone else: never
		# signal a process we cannot prove is ours.
		say "moto is not running (stale $PIDFILE removed)"
		rm -f "$PIDFILE" "$PORTFILE"
		return 0
	fi
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		is_ours "$pid" || break
		sleep 0.1
	done
	if is_ours "$pid"; then
		say "moto (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
		kill -KILL "$pid"
	fi
	rm -f "$PIDFILE" "$PORTFILE"
	say "moto (pid $pid) stopped"
}

cmd_env() {
	running >/dev/null || die "moto is not running; start it with \`make emulators-up\`"
	print_env "$(<"$PORTFILE")"
}

# A stable admin key for local runs of the AWS backend, which (unlike the
# embedded one) does not generate its own. Local only: never deployed.
cmd_admin_key() {
	mkdir -p "$STATE"
	if [[ ! -s $KEYFILE ]]; then
		(umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$KEYFILE")
		say "generated a local admin key in $KEYFILE"
	fi
	cat "$KEYFILE"
}

cmd_check() {
	need_moto
	"$PY" "$ROOT/localstack/check_moto_sfn.py" || die "Step Functions check failed with the launcher's patch"
	say "--- the same checks without the patch (does moto still need it?):"
	local rc=0
	"$PY" "$ROOT/localstack/check_moto_sfn.py" --unpatched || rc=$?
	case $rc in
	0) ;;
	2) say "WARNING: this moto no longer has the Step Functions bugs; remove patch_stepfunctions from $LAUNCHER" ;;
	*) die "the unpatched check could not run (exit $rc)" ;;
	esac
}

# up and down change the state files; two at once (make -j, two
# terminals) must not both start a launcher. flock is util-linux; where it
# is missing (macOS) we go without.
lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/lock"
	if command -v flock >/dev/null; then flock 9; fi
}

case ${1:-} in
up) lock && cmd_up ;;
down) lock && cmd_down ;;
env) cmd_env ;;
admin-key) cmd_admin_key ;;
check) cmd_check ;;
*)
	say "usage: $0 up|down|env|admin-key|check"
	exit 2
	;;
esac
