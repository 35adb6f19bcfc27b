#!/usr/bin/env bash
# bench/compare/resp_set_ab.sh: interleaved A/B runs of issue 9's one failing figure,
# `redis-benchmark -t set -n N -c 50 -d 100 -P 1`, against Shoal nodes (any binaries, any
# flags) and redis-server (`appendonly yes`, `appendfsync always`), each started fresh, in
# the order given, so that slow phases of a shared machine hit every variant alike.
#
# Per run it prints, besides redis-benchmark's own figures (req/s, avg, min, p50, p95, p99,
# max in ms): the server's CPU time per SET (utime + stime of every thread, io_uring
# workers included, from /proc), redis-benchmark's own CPU seconds (it shares the cores),
# SETs per disk flush (flush requests completed on the data directory's block device, from
# /proc/diskstats: the group-commit size as the disk sees it), the server's voluntary /
# involuntary context switches, and TCP segments sent per SET (/proc/net/snmp: 2 means
# one request and one reply, no pure ACK). Machine-wide counters are only meaningful on an
# otherwise idle machine: run it under a wrapper that stops other work if the machine is
# shared.
#
# Usage: bench/compare/resp_set_ab.sh N SPEC...
#   SPEC = redis | LABEL=BINARY[:SHOAL FLAGS...], e.g.
#     bench/compare/resp_set_ab.sh 100000 redis base=target/release/shoal \
#         inline=target/release/shoal:--wal-sync-mode:inline redis base=target/release/shoal
#   Shoal runs with --shards 2 unless the flags say otherwise (later flags win).
# Env: PERF=PREFIX records `perf record -g` of the server during each run into
#   PREFIX.LABEL.data (PERF_FREQ, default 2000 Hz); PORT_BASE (default 17970).
# Everything started is stopped by pid, also on failure (trap).
set -euo pipefail

N=${1:?usage: $0 N SPEC...}
shift
PORT_BASE=${PORT_BASE:-17970}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/resp-set-ab.XXXXXX")
SERVER=""
PERF_PID=""
cleanup() {
    [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

DEVICE=$(basename "$(findmnt -n -o SOURCE -T "$WORK")")
flushes() { awk -v d="$DEVICE" '$3 == d { print $19 }' /proc/diskstats; }
out_segs() { awk '/^Tcp:/ { if (seen) print $12; seen = 1 }' /proc/net/snmp; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^voluntary_ctxt/ { v += $2 } /^nonvoluntary_ctxt/ { n += $2 } END { print v "/" n }'
}
ready() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
TICK_NS=$((1000000000 / $(getconf CLK_TCK)))

for spec in "$@"; do
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    if [[ $spec == redis ]]; then
        label=redis port=$((PORT_BASE + 10))
        redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/data" --save "" \
            --protected-mode yes --appendonly yes --appendfsync always >"$WORK/server.log" 2>&1 &
    else
        label=${spec%%=*}
        rest=${spec#*=}
        bin=${rest%%:*}
        flags=()
        [[ $rest == *:* ]] && IFS=: read -r -a flags <<<"${rest#*:}"
        port=$PORT_BASE
        "$bin" --node-id 1 --data-dir "$WORK/data" --client-addr "127.0.0.1:$((PORT_BASE + 20))" \
            --peer-addr "127.0.0.1:$((PORT_BASE + 30))" --resp-addr "127.0.0.1:$port" \
            --shards 2 --first-core 0 --log-level warn "${flags[@]}" >"$WORK/server.log" 2>&1 &
    fi
    SERVER=$!
    for _ in $(seq 200); do
        { ready "$port" || ! kill -0 "$SERVER" 2>/dev/null; } && break
        sleep 0.1
    done
    if ! ready "$port"; then
        echo "$label: the server did not answer PING (exited, or 20 s passed): $(tail -n 2 "$WORK/server.log" | tr '\n' ' ')"
        kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=""
        continue
    fi
    f0=$(flushes) c0=$(cpu_ticks "$SERVER") s0=$(out_segs)
    if [[ -n ${PERF:-} ]]; then
        perf record -F "${PERF_FREQ:-2000}" -g -p "$SERVER" -o "$PERF.$label.data" >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    res=$( { /usr/bin/time -f "%U %S" redis-benchmark -h 127.0.0.1 -p "$port" -t set -n "$N" \
        -c 50 -d 100 -P 1 --csv; } 2>&1)
    f1=$(flushes) c1=$(cpu_ticks "$SERVER") s1=$(out_segs) sw=$(switches "$SERVER")
    if [[ -n $PERF_PID ]]; then
        kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
    fi
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
    figures=$(grep '^"SET"' <<<"$res" | cut -d, -f2- | tr -d '"' | tr ',' ' ')
    read -r rb_user rb_sys < <(tail -n 1 <<<"$res")
    printf '%-10s SET/s avg min p50 p95 p99 max: %s | server %d ns CPU/SET, csw %s | redis-benchmark CPU %.2f s | %d SETs/disk flush | %s TCP segs/SET\n' \
        "$label" "$figures" $(((c1 - c0) * TICK_NS / N)) "$sw" \
        "$(echo "$rb_user + $rb_sys" | bc)" $((N / (f1 - f0 > 0 ? f1 - f0 : 1))) \
        "$(echo "scale=2; ($s1 - $s0) / $N" | bc)"
done
