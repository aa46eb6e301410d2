#!/bin/bash
# benchsize.sh: the size test of the login flow. The same flow on a small
# database (64 pupils) and on big ones (100,000 pupils and 1,000,000
# release-log rows; and the same with 1,000,000 expired access tokens,
# which the retention job purges while the flow runs), alternated, with
# the server and the load generator as separate processes.
#
#   .ci/benchsize.sh prepare DIR [--stores sqlite,postgres] [--pg URL] [--pg-db NAME]
#   .ci/benchsize.sh run DIR [--stores ...] [--rounds 2] [--duration 15s]
#                    [--concurrency 32] [--port 31300] [--pg URL] [--pg-db NAME]
#
# prepare builds the committed HEAD into DIR and makes the pristine
# databases (SQLite files in DIR; PostgreSQL template databases NAME_small,
# NAME_size, NAME_sizetok), about 4 min each big one. run rebuilds HEAD,
# migrates the pristine databases once (so a newer schema's migration is not
# measured), then per store and round runs small, size and sizetok on a
# fresh copy each: serve, 3 s warm-up, bench login; and prints flows/s,
# p50, p99, server (and PostgreSQL) CPU per flow, and size/small ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: benchsize.sh prepare|run DIR [options]}; dir=${2:?DIR}; shift 2
stores=sqlite,postgres rounds=2 duration=15s conc=32 port=31300
pg=postgres://postgres@127.0.0.1:5432 pgdb=elevid_benchsize
while [ $# -gt 0 ]; do
	case $1 in
	--stores) stores=$2; shift 2 ;; --rounds) rounds=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;; --concurrency) conc=$2; shift 2 ;;
	--port) port=$2; shift 2 ;; --pg) pg=$2; shift 2 ;; --pg-db) pgdb=$2; shift 2 ;;
	*) echo "benchsize: unknown option $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
bin=$dir/elevid
git archive HEAD | (rm -rf "$dir/src" && mkdir -p "$dir/src" && tar -x -C "$dir/src")
(cd "$dir/src" && go build -o "$bin" ./cmd/elevid)
echo "benchsize: built $(git rev-parse --short=12 HEAD)"
IFS=, read -r -a store_list <<<"$stores"
kinds="small size sizetok"
args_small="--pupils 64"
args_size="--pupils 100000 --releases 1000000"
args_sizetok="--pupils 100000 --releases 1000000 --expired-tokens 1000000"

env_for() { # env_for STORE KIND COPY: exports the database of that copy
	if [ "$1" = postgres ]; then
		export ELEVID_DATABASE="$pg/${pgdb}_$2$3?sslmode=disable"
	else
		export ELEVID_DATABASE="$dir/$2$3.db"
	fi
	export ELEVID_LISTEN=127.0.0.1:$port ELEVID_ISSUER=http://localhost:$port
	export ELEVID_METRICS_LISTEN=127.0.0.1:$((port + 1)) ELEVID_LOG_LEVEL=info
}
fresh() { # fresh STORE KIND: a run copy of the pristine database
	if [ "$1" = postgres ]; then
		psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS ${pgdb}_$2_run" >/dev/null
		psql "$pg/postgres" -qc "CREATE DATABASE ${pgdb}_$2_run TEMPLATE ${pgdb}_$2" >/dev/null
		psql "$pg/postgres" -qc "CHECKPOINT" >/dev/null
	else
		rm -f "$dir/$2_run.db"*; cp "$dir/$2.db" "$dir/$2_run.db"
	fi
	# The copy's dirty pages (1.3 GB for sizetok) are written out now, not
	# by the kernel during the measured run: unsynced, one binary's sizetok
	# runs spread from 429 to 609 flows/s, synced from 552 to 579
	# (2026-12-06).
	sync
}

if [ "$cmd" = prepare ]; then
	for store in "${store_list[@]}"; do
		for kind in $kinds; do
			a=args_$kind
			if [ "$store" = postgres ]; then
				psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS ${pgdb}_$kind" >/dev/null
				psql "$pg/postgres" -qc "CREATE DATABASE ${pgdb}_$kind" >/dev/null
			else
				rm -f "$dir/$kind.db"*
			fi
			env_for "$store" "$kind" ""
			"$bin" migrate >/dev/null
			start=$(date +%s)
			# shellcheck disable=SC2086
			"$bin" bench prepare ${!a} --fixture "$dir/$store-$kind.json" >"$dir/$store-$kind.prepare.log" 2>&1
			echo "benchsize: $store $kind prepared (${!a}) in $(( $(date +%s) - start )) s"
		done
	done
	exit 0
fi

tck=$(getconf CLK_TCK)
proc_cpu() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }; s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
pg_pids() { psql "$pg/postgres" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$1' AND pid <> pg_backend_pid()" 2>/dev/null || true; }
results=$dir/results.tsv; : >"$results"
for store in "${store_list[@]}"; do
	for kind in $kinds; do env_for "$store" "$kind" ""; "$bin" migrate >/dev/null; done
done
for store in "${store_list[@]}"; do
	for round in $(seq 1 "$rounds"); do
		order=$kinds; [ $((round % 2)) = 0 ] && order="sizetok size small"
		for kind in $order; do
			fresh "$store" "$kind"; env_for "$store" "$kind" _run
			log=$dir/$store-$kind-$round.serve.log
			"$bin" serve >"$log" 2>&1 & spid=$!
			for _ in $(seq 1 200); do curl -fs "http://localhost:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
			"$bin" bench login --url "http://localhost:$port" --fixture "$dir/$store-$kind.json" --concurrency "$conc" --duration 3s --metrics-url "" >/dev/null 2>&1
			declare -A before=(); pg1=0
			if [ "$store" = postgres ]; then for p in $(pg_pids "${pgdb}_${kind}_run"); do before[$p]=$(proc_cpu "$p"); done; fi
			c0=$(proc_cpu $spid)
			out=$dir/$store-$kind-$round.login.out
			"$bin" bench login --url "http://localhost:$port" --fixture "$dir/$store-$kind.json" --concurrency "$conc" --duration "$duration" \
				--metrics-url "http://127.0.0.1:$((port + 1))/metrics" >"$out" 2>&1
			c1=$(proc_cpu $spid)
			if [ "$store" = postgres ]; then for p in $(pg_pids "${pgdb}_${kind}_run"); do pg1=$(( pg1 + $(proc_cpu "$p") - ${before[$p]:-0} )); done; fi
			kill $spid; wait $spid 2>/dev/null || true
			purge=$(grep -c "retention done" "$log" || true)
			echo "  $store $kind round $round: $(head -1 "$out") (retention finished during the run: $purge)"
			awk -v s="$store" -v k="$kind" -v cpu=$((c1 - c0)) -v pgc="$pg1" -v tck="$tck" -v pgon="$([ "$store" = postgres ] && echo 1 || echo 0)" '
				/^flows / { flows = $2; rate = $5 } /^latency / { sub(/ms$/, "", $3); p50 = $3; sub(/ms$/, "", $7); p99 = $7 }
				END { printf "%s\t%s\t%.2f\t%s\t%s\t%.3f\t%s\n", s, k, rate, p50, p99, cpu / tck * 1000 / flows, pgon ? sprintf("%.3f", pgc / tck * 1000 / flows) : "NA" }' "$out" >>"$results"
		done
	done
done
echo
for store in "${store_list[@]}"; do
	awk -F'\t' -v store="$store" '
		$1 == store { n[$2]++; for (i = 3; i <= 7; i++) if ($i != "NA") s[$2, i] += $i; else na[i] = 1 }
		END {
			split("flows/s|p50 ms|p99 ms|server CPU ms/flow|PostgreSQL CPU ms/flow", name, "|")
			printf "%-24s %10s %10s %10s %12s %12s   (%s)\n", "", "64 pupils", "size", "sizetok", "size/small", "sizetok/small", store
			for (i = 3; i <= 7; i++) {
				if (na[i]) continue
				a = s["small", i] / n["small"]; b = s["size", i] / n["size"]; c = s["sizetok", i] / n["sizetok"]
				printf "%-24s %10.2f %10.2f %10.2f %12.2f %12.2f\n", name[i - 2], a, b, c, b / a, c / a
			}
		}' "$results"
done
