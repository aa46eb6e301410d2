#!/usr/bin/env bash
# Before/after comparison of the login flow (issue 19), make-free:
#
#   .ci/benchcmp.sh BASE_COMMIT [--stores sqlite,postgres] [--rounds 2]
#                   [--duration 15s] [--concurrency 32] [--size]
#                   [--port 31100] [--pg postgres://postgres@127.0.0.1:5432]
#                   [--pg-db elevid_benchcmp] [--saml]
#
# It builds BASE_COMMIT and this checkout's HEAD (committed state, via
# git archive) into a temporary directory, then for each store and each
# of --rounds rounds runs base and new alternately, each on a fresh
# database: migrate, `bench prepare --pupils 64` (with --size: --pupils
# 100000 --releases 1000000 [--expired-tokens 1000000] when both binaries
# have those flags), start `serve` on its own port and metrics port, warm
# up 3 s, then `bench login --concurrency C --duration D` (the new
# binary's load generator for both, so the load is the same). Around the
# measured run it reads the server's CPU (/proc/PID/stat utime+stime),
# the CPU of the PostgreSQL backends serving that database (found in
# pg_stat_activity) and the server's RSS (VmRSS idle after start, and
# after the run). It prints one table per store with the mean over the
# rounds for base and new and the ratio new/base.
#
# --saml measures SP-initiated SAML SSO instead (`bench saml`, HEAD's
# load generator for both; default concurrency 8): responses/s, p50, p99,
# server and PostgreSQL CPU per response.
#
# PostgreSQL: trust auth at --pg; the databases --pg-db_base and
# --pg-db_new are dropped and created for every run and dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
base_rev=$1; shift
stores=sqlite,postgres rounds=2 duration=15s conc= size=0 port=31100 flow=login
pg=postgres://postgres@127.0.0.1:5432 pgdb=elevid_benchcmp
while [ $# -gt 0 ]; do
	case $1 in
	--stores) stores=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--concurrency) conc=$2; shift 2 ;;
	--size) size=1; shift ;;
	--saml) flow=saml; shift ;;
	--port) port=$2; shift 2 ;;
	--pg) pg=$2; shift 2 ;;
	--pg-db) pgdb=$2; shift 2 ;;
	*) echo "benchcmp: unknown option $1" >&2; usage ;;
	esac
done
case $rounds in '' | *[!0-9]* | 0) echo "benchcmp: --rounds must be a positive number" >&2; exit 2 ;; esac
if [ -z "$conc" ]; then if [ $flow = saml ]; then conc=8; else conc=32; fi; fi
base_sha=$(git rev-parse --verify "$base_rev^{commit}")
new_sha=$(git rev-parse HEAD)

work=$(mktemp -d)
serve_pid=
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
	if [[ ,$stores, == *,postgres,* ]]; then
		for v in base new; do psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS ${pgdb}_$v" >/dev/null 2>&1 || true; done
	fi
	rm -rf "$work"
}
trap cleanup EXIT

build() { # build NAME SHA
	mkdir -p "$work/src-$1"
	git archive "$2" | tar -x -C "$work/src-$1"
	(cd "$work/src-$1" && go build -o "$work/elevid-$1" ./cmd/elevid)
}
echo "benchcmp: building base ${base_sha:0:12} and new ${new_sha:0:12} in $work"
build base "$base_sha"
build new "$new_sha"

prepare_args="--pupils 64"
if [ $size = 1 ]; then
	if "$work/elevid-base" bench prepare --help 2>&1 | grep -q -- --releases &&
		"$work/elevid-new" bench prepare --help 2>&1 | grep -q -- --releases; then
		prepare_args="--pupils 100000 --releases 1000000"
		if "$work/elevid-base" bench prepare --help 2>&1 | grep -q -- --expired-tokens &&
			"$work/elevid-new" bench prepare --help 2>&1 | grep -q -- --expired-tokens; then
			prepare_args="$prepare_args --expired-tokens 1000000"
		fi
	else
		echo "benchcmp: --size: a binary has no bench prepare --releases; using --pupils 64"
	fi
fi
echo "benchcmp: prepare $prepare_args; $flow --concurrency $conc --duration $duration; $rounds round(s)"

tck=$(getconf CLK_TCK)
# cpu_of PID...: utime+stime of the processes in clock ticks (0 for gone ones).
proc_cpu() { # PID -> ticks
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	set -- $s
	echo $(( ${12} + ${13} ))
}
pg_pids() { # DB -> backend pids of that database
	psql "$pg/postgres" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$1' AND pid <> pg_backend_pid()" 2>/dev/null || true
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

results=$work/results.tsv
: >"$results"

run_one() { # run_one STORE WHICH ROUND
	local store=$1 which=$2 round=$3 bin=$work/elevid-$2 dir=$work/run-$1-$2-$3 db
	mkdir -p "$dir"
	if [ "$store" = postgres ]; then
		psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS ${pgdb}_$which" >/dev/null 2>&1
		psql "$pg/postgres" -qc "CREATE DATABASE ${pgdb}_$which" >/dev/null
		db="$pg/${pgdb}_$which?sslmode=disable"
	else
		db=$dir/elevid.db
	fi
	export ELEVID_DATABASE=$db ELEVID_LISTEN=127.0.0.1:$port ELEVID_ISSUER=http://localhost:$port
	export ELEVID_METRICS_LISTEN=127.0.0.1:$((port + 1)) ELEVID_LOG_LEVEL=warn
	"$bin" migrate >"$dir/migrate.log" 2>&1
	# shellcheck disable=SC2086
	"$bin" bench prepare $prepare_args --fixture "$dir/bench.json" >"$dir/prepare.log" 2>&1 ||
		{ cat "$dir/prepare.log"; return 1; }
	"$bin" serve >"$dir/serve.log" 2>&1 &
	serve_pid=$!
	for _ in $(seq 1 100); do curl -fs "http://localhost:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	curl -fs "http://localhost:$port/readyz" >/dev/null || { cat "$dir/serve.log"; return 1; }
	local rss_idle rss_after cpu0 cpu1 pg0=0 pg1=0 p
	rss_idle=$(rss_kb "$serve_pid")
	# load DURATION OUT: the flow under test, HEAD's load generator.
	load() {
		if [ $flow = saml ]; then
			"$work/elevid-new" bench saml --url "http://localhost:$port" --fixture "$dir/bench.json" --concurrency "$conc" \
				--duration "$1" --server-pid "$serve_pid" >"$2" 2>&1
		else
			"$work/elevid-new" bench login --url "http://localhost:$port" --fixture "$dir/bench.json" --concurrency "$conc" \
				--duration "$1" --metrics-url "http://127.0.0.1:$((port + 1))/metrics" >"$2" 2>&1
		fi
	}
	load 3s "$dir/warmup.out"
	declare -A before=()
	if [ "$store" = postgres ]; then
		for p in $(pg_pids "${pgdb}_$which"); do before[$p]=$(proc_cpu "$p"); done
	fi
	cpu0=$(proc_cpu "$serve_pid")
	load "$duration" "$dir/login.out" || { cat "$dir/login.out"; return 1; }
	cpu1=$(proc_cpu "$serve_pid")
	if [ "$store" = postgres ]; then
		for p in $(pg_pids "${pgdb}_$which"); do pg1=$(( pg1 + $(proc_cpu "$p") - ${before[$p]:-0} )); done
	fi
	rss_after=$(rss_kb "$serve_pid")
	kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
	serve_pid=
	echo "  $store $which round $round: $(head -1 "$dir/login.out")"
	grep -i "error" "$dir/login.out" | grep -v "errors 0" | sed 's/^/    /' || true
	awk -v store="$store" -v which="$which" -v cpu=$(( cpu1 - cpu0 )) -v pgcpu="$pg1" -v tck="$tck" \
		-v rssi="$rss_idle" -v rssa="$rss_after" -v pgon="$([ "$store" = postgres ] && echo 1 || echo 0)" '
		/^flows / { flows = $2; rate = $5; errs = $NF }
		/^responses / { flows = $2; rate = $5; errs = $NF }
		/^latency / { sub(/ms$/, "", $3); p50 = $3; sub(/ms$/, "", $7); p99 = $7 }
		/^database: [0-9]/ { tx = $2; sub(/^\(/, "", $4); intx = $4; single = $9 }
		END {
			if (flows == 0) { print "benchcmp: no flows" > "/dev/stderr"; exit 1 }
			stm = (tx == "") ? "NA" : intx + single
			txs = (tx == "") ? "NA" : tx
			pgf = pgon ? pgcpu / tck * 1000 / flows : "NA"
			printf "%s\t%s\t%.2f\t%s\t%s\t%.3f\t%s\t%s\t%s\t%.1f\t%.1f\t%d\n", store, which, rate, p50, p99,
				cpu / tck * 1000 / flows, pgf, stm, txs, rssi / 1024, rssa / 1024, errs
		}' "$dir/login.out" >>"$results"
	if [ "$store" = postgres ]; then psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS ${pgdb}_$which" >/dev/null 2>&1; fi
	rm -rf "$dir"
}

IFS=, read -r -a store_list <<<"$stores"
for store in "${store_list[@]}"; do
	case $store in sqlite | postgres) ;; *) echo "benchcmp: unknown store $store" >&2; exit 2 ;; esac
	for round in $(seq 1 "$rounds"); do
		if [ $((round % 2)) = 1 ]; then order="base new"; else order="new base"; fi
		for which in $order; do run_one "$store" "$which" "$round"; done
	done
done

echo
echo "base ${base_sha:0:12} vs new ${new_sha:0:12}: $flow, $prepare_args; $conc concurrent, $duration, mean of $rounds round(s) each"
for store in "${store_list[@]}"; do
	echo
	awk -F'\t' -v store="$store" -v flow="$flow" '
		$1 == store {
			n[$2]++
			for (i = 3; i <= 12; i++) { if ($i == "NA") na[$2, i] = 1; else sum[$2, i] += $i }
		}
		function mean(w, i) { return na[w, i] ? "NA" : sum[w, i] / n[w] }
		function show(v, f) { return v == "NA" ? "-" : sprintf(f, v) }
		END {
			split("flows/s|p50 ms|p99 ms|server CPU ms/flow|PostgreSQL CPU ms/flow|statements/flow|transactions/flow|idle RSS MB|RSS after MB|errors", name, "|")
			if (flow == "saml") for (i in name) { sub(/flows/, "responses", name[i]); sub(/flow$/, "response", name[i]) }
			fmt[3] = "%.1f"; fmt[4] = "%.1f"; fmt[5] = "%.1f"; fmt[6] = "%.2f"; fmt[7] = "%.2f"; fmt[8] = "%.2f"; fmt[9] = "%.2f"; fmt[10] = "%.1f"; fmt[11] = "%.1f"; fmt[12] = "%d"
			printf "%-24s %12s %12s %10s   (%s)\n", "", "base", "new", "new/base", store
			for (i = 3; i <= 12; i++) {
				b = mean("base", i); w = mean("new", i)
				r = (b == "NA" || w == "NA" || b == 0) ? "-" : sprintf("%.2f", w / b)
				printf "%-24s %12s %12s %10s\n", name[i - 2], show(b, fmt[i]), show(w, fmt[i]), r
			}
		}' "$results"
done
