#!/usr/bin/env bash
# bench/run.sh — the ingest load benchmark of docs/PERFORMANCE.md.
#
# For each fsync policy and concurrency it runs ROUNDS rounds of the four targets in turn
# (a, b, c, d, a, b, c, d, ...), so that noise on the machine falls on all of them alike:
#   (a) hookd   `hookd serve --roles ingest` on its embedded JetStream
#   (b) bare    net/http reading the body and answering 202 (the HTTP ceiling)
#   (c) floor   net/http + HMAC + one synchronous JetStream publish (the durable floor)
#   (d) probot  a no-op Probot app (Node), bench/probot
# and, when named in TARGETS, hookd-gc<N>: (a) run with GOGC=<N>; hookd-at-<rev>: (a) built from
# git revision <rev> (an A/B against an earlier build in the same run); floor-conns<N>: (c) publishing
# over N NATS connections in turn.
# Every round starts the target afresh (fresh data directory), waits until it answers a signed
# delivery, warms up for WARMUP, measures for DURATION (bench/cmd/load) and stops it. Then one
# long round each of hookd, the floor and the floor on a plain stream (floor-plain: a subject per
# event name instead of one per delivery) records RSS against the number of requests (SOAK).
# Raw JSON goes to bench/results/<time>/; bench/cmd/report prints the medians, the ratios and
# whether the issue's targets are met.
#
# Usage: bench/run.sh            (from anywhere; about 15 minutes with the defaults)
# Settings (environment):
#   ROUNDS=3  WARMUP=3s  DURATION=10s  CONCS="32 128"  SYNCS="interval always"
#   TARGETS="hookd bare floor probot"
#   SOAK=60s (0 to skip)  SOAK_TARGETS="hookd floor floor-plain"  SOAK_SYNC=interval  SOAK_CONC=32
#   OUT=bench/results/<time>  BASE_PORT=18080
# Needs: Go, Node ≥ 20.18.1 with npm (for probot; leave it out of TARGETS otherwise), openssl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3s}
DURATION=${DURATION:-10s}
CONCS=${CONCS:-"32 128"}
SYNCS=${SYNCS:-"interval always"}
TARGETS=${TARGETS:-"hookd bare floor probot"}
SOAK=${SOAK:-60s}
SOAK_SYNC=${SOAK_SYNC:-interval}
SOAK_CONC=${SOAK_CONC:-32}
SOAK_TARGETS=${SOAK_TARGETS:-"hookd floor floor-plain"}
BASE_PORT=${BASE_PORT:-18080}
OUT=${OUT:-bench/results/$(date -u +%Y%m%d-%H%M%S)}
SECRET=bench-webhook-secret-$RANDOM$RANDOM

TMP=$(mktemp -d -t hookd-bench.XXXXXX)
PID=
cleanup() {
	if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The targets this run starts.
USED=" "
((ROUNDS > 0)) && USED+="$TARGETS "
[[ $SOAK != 0 ]] && USED+="$SOAK_TARGETS "

mkdir -p "$OUT"
log "building into $TMP"
if [[ $USED == *" hookd"* ]]; then
	go build -o "$TMP/hookd" ./cmd/hookd
fi
# hookd-at-<rev>: hookd built from another revision, for an A/B in the same run.
for target in $USED; do
	if [[ $target == hookd-at-* ]]; then
		rev=${target#hookd-at-}
		git worktree add -q --detach "$TMP/src-$rev" "$rev"
		(cd "$TMP/src-$rev" && go build -o "$TMP/hookd-at-$rev" ./cmd/hookd)
		git worktree remove --force "$TMP/src-$rev"
	fi
done
go build -o "$TMP/" ./bench/cmd/load ./bench/cmd/bare ./bench/cmd/floor ./bench/cmd/report
if [[ $USED == *" probot "* ]]; then
	if [[ ! -d bench/probot/node_modules ]]; then
		log "installing probot (npm ci) into bench/probot/node_modules"
		(cd bench/probot && npm ci --no-audit --no-fund --loglevel=error)
	fi
	# A throwaway GitHub App key: Probot wants one to start; no request ever uses it.
	openssl genrsa -out "$TMP/app.pem" 2048 2>/dev/null
fi

{
	echo "date: $(date -u +%FT%TZ)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "kernel: $(uname -r)"
	echo "go: $(go version)"
	echo "node: $(node --version 2>/dev/null || echo none)"
	echo "probot: $(sed -n 's/.*"probot": "\(.*\)".*/\1/p' bench/probot/package.json)"
	echo "settings: ROUNDS=$ROUNDS WARMUP=$WARMUP DURATION=$DURATION CONCS='$CONCS' SYNCS='$SYNCS' TARGETS='$TARGETS' SOAK=$SOAK SOAK_TARGETS='$SOAK_TARGETS'"
	echo "load generator and servers share the machine"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# start TARGET SYNC N: starts the target in the background; sets PID, URL and EXPECT.
start() {
	local target=$1 sync=$2 n=$3 data="$TMP/data-$n"
	case $target in
	hookd | hookd-gc* | hookd-at-*)
		# hookd-gc<N>: hookd with GOGC=<N> (the garbage collector's trade of memory for CPU).
		# hookd-at-<rev>: hookd built from git revision <rev>.
		rm -rf "$data" && mkdir -p "$data"
		local gogc= bin="$TMP/hookd"
		[[ $target == hookd-gc* ]] && gogc=${target#hookd-gc}
		[[ $target == hookd-at-* ]] && bin="$TMP/$target"
		GOGC=$gogc HOOKD_GITHUB_WEBHOOK_SECRET=$SECRET HOOKD_DATA_DIR=$data \
			HOOKD_HTTP_ADDR=127.0.0.1:$BASE_PORT HOOKD_NATS_LISTEN=127.0.0.1:$((BASE_PORT + 10)) \
			HOOKD_NATS_SYNC=$sync HOOKD_LOG_LEVEL=warn \
			"$bin" serve --roles ingest 2>>"$OUT/hookd.log" &
		PID=$! URL=http://127.0.0.1:$BASE_PORT/webhook EXPECT=202
		;;
	bare)
		"$TMP/bare" -addr 127.0.0.1:$((BASE_PORT + 1)) 2>>"$OUT/bare.log" &
		PID=$! URL=http://127.0.0.1:$((BASE_PORT + 1))/webhook EXPECT=202
		;;
	floor | floor-plain | floor-conns*)
		# floor-conns<N>: the floor publishing over N NATS connections in turn.
		rm -rf "$data" && mkdir -p "$data"
		local stream=hookd conns=1
		[[ $target == floor-plain ]] && stream=plain
		[[ $target == floor-conns* ]] && conns=${target#floor-conns}
		"$TMP/floor" -addr 127.0.0.1:$((BASE_PORT + 2)) -nats 127.0.0.1:$((BASE_PORT + 11)) \
			-secret "$SECRET" -data "$data" -sync "$sync" -stream $stream -conns "$conns" 2>>"$OUT/floor.log" &
		PID=$! URL=http://127.0.0.1:$((BASE_PORT + 2))/webhook EXPECT=202
		;;
	probot)
		APP_ID=1 PRIVATE_KEY=$(cat "$TMP/app.pem") WEBHOOK_SECRET=$SECRET LOG_LEVEL=warn \
			NODE_ENV=production HOST=127.0.0.1 PORT=$((BASE_PORT + 3)) \
			node bench/probot/server.js 2>>"$OUT/probot.log" &
		PID=$! URL=http://127.0.0.1:$((BASE_PORT + 3))/api/github/webhooks EXPECT=200
		;;
	*)
		echo "unknown target $target" >&2
		exit 2
		;;
	esac
}

stop() {
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	PID=
	rm -rf "$TMP"/data-*
}

# round TARGET SYNC CONC N LABEL DURATION
round() {
	local target=$1 sync=$2 conc=$3 n=$4 label=$5 dur=$6
	start "$target" "$sync" "$n"
	local file="$OUT/$label-$sync-c$conc-r$n.json"
	if ! "$TMP/load" -url "$URL" -secret "$SECRET" -expect "$EXPECT" -conc "$conc" \
		-warmup "$WARMUP" -duration "$dur" -pid "$PID" \
		-target "$label" -sync "$sync" -round "$n" -out "$file" >/dev/null; then
		log "round failed: $label sync=$sync conc=$conc round=$n (see $OUT/$target.log)"
		stop
		return 1
	fi
	stop
	log "$(printf '%-11s sync=%-8s c=%-3s r%s %s' "$label" "$sync" "$conc" "$n" \
		"$(sed -n 's/.*"throughput_rps": \(.*\),/\1 req\/s/p; s/.*"p99": \(.*\),/p99 \1 ms/p; s/.*"flagged": true.*/FLAGGED/p' "$file" | tr '\n' ' ')")"
}

FAILED=0
for sync in $SYNCS; do
	for conc in $CONCS; do
		for n in $(seq 1 "$ROUNDS"); do
			for target in $TARGETS; do
				round "$target" "$sync" "$conc" "$n" "$target" "$DURATION" || FAILED=$((FAILED + 1))
			done
		done
	done
done

if [[ $SOAK != 0 ]]; then
	for target in $SOAK_TARGETS; do
		log "long round: $target, sync $SOAK_SYNC, concurrency $SOAK_CONC, $SOAK"
		round "$target" "$SOAK_SYNC" "$SOAK_CONC" 1 "$target-soak" "$SOAK" || FAILED=$((FAILED + 1))
	done
fi

"$TMP/report" "$OUT"/*.json | tee "$OUT/report.md"
log "raw results in $OUT"
if ((FAILED > 0)); then
	log "$FAILED round(s) failed to run; see the logs in $OUT"
	exit 1
fi
