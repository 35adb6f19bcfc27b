#!/usr/bin/env bash
# bench/compare/run.sh: Shoal next to Redis and etcd on this machine, in one run.
#
# Installs what is missing (Debian: redis-server, etcd-server, etcd-client,
# protobuf-compiler), builds loadgen (+ etcd) and shoal in release mode, then for each
# system: starts it on 127.0.0.1 (fresh data dirs), runs the same loadgen workloads
# (100-byte values, 10k keys preloaded, scrambled zipfian 0.99; durable puts and
# linearizable gets at 1 and 64 in flight, YCSB A and B at 64), stops it, and finally writes
# docs/BENCHMARKS.md (tables, SVG plots under docs/bench/, machine, versions, command lines).
# Everything it starts is stopped by pid, also on failure or Ctrl-C (trap).
#
# Usage: bench/compare/run.sh            (from anywhere inside the repository)
# Env:   DURATION (default 5s), WARMUP (1s), KEYS (10000), VALUE_SIZE (100),
#        RUN_LIMIT (120: seconds one loadgen run may take before it is killed and reported),
#        ONLY="shoal-local redis-none ..." (a subset of systems), SKIP_INSTALL=1,
#        SKIP_BUILD=1, KEEP_WORK=1 (keep the scratch dir with logs and raw reports),
#        OUT (default docs/BENCHMARKS.md), CARGO_TARGET_DIR (default target/).
# A system that cannot run (not installed, did not start, cluster did not form) is listed
# as "not available" with the reason; nothing is ever estimated.
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$ROOT"
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
KEYS=${KEYS:-10000}
VALUE_SIZE=${VALUE_SIZE:-100}
RUN_LIMIT=${RUN_LIMIT:-120}
OUT=${OUT:-$ROOT/docs/BENCHMARKS.md}
PLOTS=$(dirname "$OUT")/bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=$TARGET_DIR/release/loadgen
SHOAL=$TARGET_DIR/release/shoal
REPORT=$TARGET_DIR/release/compare-report
SYSTEMS_ALL="floor-channel floor-tcp floor-fsync shoal-local shoal-1 shoal-3 redis-always redis-none etcd-1 etcd-3"
ONLY=${ONLY:-$SYSTEMS_ALL}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-compare.XXXXXX")
MANIFEST=$WORK/manifest.tsv
HEADER=$WORK/header.md
PIDS=()
STARTED_AT=$(date +%s)

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Stops every process this script started (TERM, then KILL after 10 s), by pid.
stop_pids() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    local rc=$?
    stop_pids
    if [[ -n "${KEEP_WORK:-}" || $rc -ne 0 ]]; then
        log "scratch dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

want() { [[ " $ONLY " == *" $1 "* ]]; }

# ---------------------------------------------------------------- install and build
install_missing() {
    local pkgs=()
    command -v redis-server >/dev/null || pkgs+=(redis-server)
    command -v etcd >/dev/null || pkgs+=(etcd-server)
    command -v etcdctl >/dev/null || pkgs+=(etcd-client)
    command -v protoc >/dev/null || pkgs+=(protobuf-compiler)
    if ((${#pkgs[@]})); then
        log "installing ${pkgs[*]}"
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}"
    fi
}
[[ -n "${SKIP_INSTALL:-}" ]] || install_missing
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building loadgen (+etcd), compare-report and shoal (release)"
    # One cargo invocation, so shared dependencies are built once with unified features.
    if ! CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p loadgen --features \
        loadgen/etcd -p shoal --bin loadgen --bin compare-report --bin shoal; then
        log "the shoal binary does not build: shoal-1 and shoal-3 will be not available"
        CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p loadgen --features etcd \
            --bin loadgen --bin compare-report
    fi
fi
MEASURE_START=$(date +%s)

# ---------------------------------------------------------------- helpers
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A base port with $2 consecutive free ports at or above $1.
free_base() {
    local p=$1 n=$2 i ok
    while ((p < 60000)); do
        ok=1
        for ((i = 0; i < n; i++)); do port_free $((p + i)) || { ok=0; break; }; done
        ((ok)) && { echo "$p"; return; }
        p=$((p + n + 10))
    done
    return 1
}

# wait_until SECONDS CMD...: runs CMD every 0.2 s until it succeeds or time runs out.
wait_until() {
    local deadline=$(($(date +%s) + $1)); shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || return 1
        sleep 0.2
    done
}

# start NAME LOGFILE CMD...: starts CMD in the background, records its pid.
start() {
    local name=$1 logf=$2; shift 2
    log "starting $name: $*"
    "$@" >"$logf" 2>&1 &
    PIDS+=($!)
}

printf '# bench/compare manifest\n' >"$MANIFEST"
manifest() { local IFS=$'\t'; printf '%s\n' "$*" >>"$MANIFEST"; }
# system ID LABEL: lists a system (only those selected by ONLY).
system() { if want "$1"; then manifest SYSTEM "$1" "$2"; fi; }

WORKLOADS=(get-1 get-64 put-1 put-64 ycsb-a ycsb-b)
manifest WORKLOAD get-1 "Linearizable get, 1 in flight"
manifest WORKLOAD get-64 "Linearizable get, 64 in flight"
manifest WORKLOAD put-1 "Durable put, 1 in flight"
manifest WORKLOAD put-64 "Durable put, 64 in flight"
manifest WORKLOAD ycsb-a "YCSB A (50% get, 50% put), 64 in flight"
manifest WORKLOAD ycsb-b "YCSB B (95% get, 5% put), 64 in flight"

workload_flags() {
    case $1 in
        get-1) echo "--workload c -c 1" ;;
        get-64) echo "--workload c -c 64" ;;
        put-1) echo "--workload write -c 1" ;;
        put-64) echo "--workload write -c 64" ;;
        ycsb-a) echo "--workload a -c 64" ;;
        ycsb-b) echo "--workload b -c 64" ;;
    esac
}

# failure_reason STDERR_FILE STATUS: one line saying why a run failed.
failure_reason() {
    local err=$1 rc=$2 line
    if ((rc == 124 || rc == 137)); then
        line="no result within ${RUN_LIMIT} s (killed)"
    else
        line="exit status $rc"
    fi
    if grep -q "panicked at" "$err"; then
        line+="; a thread panicked: $(grep -m1 -A1 "panicked at" "$err" | tail -n 1)"
    elif grep -q "^loadgen:" "$err"; then
        line+="; $(grep "^loadgen:" "$err" | tail -n 1)"
    elif [[ -s "$err" ]]; then
        line+="; $(tail -n 2 "$err" | tr '\n' ' ')"
    fi
    printf '%s' "$line" | tr '\t|' '  ' | cut -c1-300
}

# run SYSTEM WORKLOAD [extra loadgen flags...]: one measured run, recorded in the manifest.
run() {
    local sys=$1 w=$2; shift 2
    local json=$WORK/$sys.$w.json hdr=$WORK/$sys.$w.hlog
    # shellcheck disable=SC2046
    local cmd=("$LOADGEN" "$@" $(workload_flags "$w") --keys "$KEYS" --value-size "$VALUE_SIZE"
        --warmup "$WARMUP" --duration "$DURATION" --quiet --json "$json" --hdr "$hdr")
    log "$sys / $w"
    # Bounded: a target that stops answering must not stall the comparison.
    if timeout --kill-after=10s "$RUN_LIMIT" "${cmd[@]}" >"$WORK/$sys.$w.out" \
        2>"$WORK/$sys.$w.err"; then
        local shown="loadgen ${cmd[*]:1}"
        manifest RUN "$w" "$sys" "$json" "$hdr" "${shown//$WORK/\$WORK}"
    else
        local rc=$? why
        why=$(failure_reason "$WORK/$sys.$w.err" "$rc")
        log "$sys / $w failed: $why"
        manifest NA "$w" "$sys" "loadgen failed: $why"
    fi
}

# na_all SYSTEM REASON: the system could not be measured in any workload.
na_all() {
    local w
    log "$1 not available: $2"
    for w in "${WORKLOADS[@]}"; do manifest NA "$w" "$1" "$2"; done
}

# run_all SYSTEM FLAGS...: every workload, preloading the keys in the first (reads) one.
run_all() {
    local sys=$1; shift
    run "$sys" get-1 "$@" --preload --preload-concurrency 64
    local w
    for w in get-64 ycsb-b ycsb-a put-1 put-64; do run "$sys" "$w" "$@"; done
}

# ---------------------------------------------------------------- systems
SHARDS=$(nproc)

system floor-channel "Floor of shoal-local: tokio mpsc + oneshot to $SHARDS glommio shard thread(s) that answer at once (no Raft, no WAL)"
system floor-tcp "Floor of shoal-remote: loopback TCP echo on glommio, one pipelined connection per shard, Shoal's frame sizes"
system floor-fsync "Floor of a durable put: 4 KiB O_DIRECT overwrite + fdatasync, plain syscalls (wal-bench's baseline)"
system shoal-local "Shoal, embedded single node ($SHARDS shards), LocalKvClient: puts fdatasync'd before ack, linearizable gets (ReadIndex)"
system shoal-1 "Shoal, single node ($SHARDS shards), RemoteKvClient over TCP: puts fdatasync'd before ack, linearizable gets"
system shoal-3 "Shoal, 3 nodes ($SHARDS shards each), RemoteKvClient: puts fdatasync'd on a quorum before ack, linearizable gets"
system redis-always "Redis, AOF with appendfsync always (fsync before reply), no RDB snapshots: durable, single server (no replication)"
system redis-none "Redis, no persistence (appendonly no, no RDB): NOT durable, a crash loses every write; reference only"
system etcd-1 "etcd, 1 member: WAL fsync before ack, linearizable gets (default)"
system etcd-3 "etcd, 3 members: WAL fsync on a quorum before ack, linearizable gets (default)"

if want floor-channel; then
    for w in get-1 get-64 put-1 put-64; do run floor-channel "$w" --target floor-channel --shards "$SHARDS"; done
fi
if want floor-tcp; then
    for w in get-1 get-64 put-1 put-64; do run floor-tcp "$w" --target floor-tcp --shards "$SHARDS"; done
fi
if want floor-fsync; then
    mkdir -p "$WORK/fsync"
    run floor-fsync put-1 --target floor-fsync --data-dir "$WORK/fsync"
fi

if want shoal-local; then
    run_all shoal-local --target shoal-local --shards "$SHARDS" --data-dir "$WORK/shoal-local"
fi

# shoal_node ID CLIENT PEER DATA [member flags...]
shoal_node() {
    local id=$1 client=$2 peer=$3 data=$4; shift 4
    start "shoal node $id" "$WORK/shoal-$id-$(basename "$data").log" "$SHOAL" --node-id "$id" \
        --data-dir "$data" --client-addr "$client" --peer-addr "$peer" --shards "$SHARDS" \
        --log-level warn "$@"
}
shoal_ready() { grep -q "shoal: ready" "$1"; }

if want shoal-1; then
    if [[ ! -x $SHOAL ]]; then
        na_all shoal-1 "the shoal binary was not built"
    else
        base=$(free_base 17400 $((2 * SHARDS)))
        shoal_node 1 "127.0.0.1:$base" "127.0.0.1:$((base + SHARDS))" "$WORK/shoal1"
        if wait_until 30 shoal_ready "$WORK/shoal-1-shoal1.log"; then
            run_all shoal-1 --target shoal-remote --endpoint "127.0.0.1:$base"
        else
            na_all shoal-1 "the node did not become ready in 30 s: $(tail -n 2 "$WORK/shoal-1-shoal1.log" | tr '\t\n' '  ' | cut -c1-200)"
        fi
        stop_pids
    fi
fi

if want shoal-3; then
    if [[ ! -x $SHOAL ]]; then
        na_all shoal-3 "the shoal binary was not built"
    else
        base=$(free_base 17500 $((6 * SHARDS + 30)))
        members=()
        for i in 1 2 3; do
            c=$((base + (i - 1) * 2 * SHARDS)); p=$((c + SHARDS))
            members+=(--member "$i=127.0.0.1:$c/127.0.0.1:$p")
        done
        for i in 1 2 3; do
            c=$((base + (i - 1) * 2 * SHARDS)); p=$((c + SHARDS))
            shoal_node "$i" "127.0.0.1:$c" "127.0.0.1:$p" "$WORK/shoal3-$i" "${members[@]}"
        done
        endpoints="127.0.0.1:$base,127.0.0.1:$((base + 2 * SHARDS)),127.0.0.1:$((base + 4 * SHARDS))"
        # Formed = every node ready and a durable put answered through the cluster.
        probe() {
            for i in 1 2 3; do shoal_ready "$WORK/shoal-$i-shoal3-$i.log" || return 1; done
            "$LOADGEN" --target shoal-remote --endpoint "$endpoints" --workload write -c 1 \
                --ops 10 --warmup 0s --quiet --connect-timeout 3s
        }
        if wait_until 45 probe; then
            run_all shoal-3 --target shoal-remote --endpoint "$endpoints"
        else
            why=$(cat "$WORK"/shoal-*-shoal3-*.log 2>/dev/null | grep -v '^$' | tail -n 2 | tr '\t\n' '  ' | cut -c1-200)
            na_all shoal-3 "the 3-node cluster did not form and serve a put within 45 s (${why:-no output})"
        fi
        stop_pids
    fi
fi

redis_system() {
    local sys=$1 label=$2; shift 2
    local port dir
    port=$(free_base 16379 1)
    dir=$WORK/$sys && mkdir -p "$dir"
    start "redis ($sys)" "$dir/redis.log" redis-server --port "$port" --bind 127.0.0.1 \
        --dir "$dir" --save "" --protected-mode yes "$@"
    if wait_until 20 redis-cli -p "$port" ping; then
        run_all "$sys" --target redis --endpoint "redis://127.0.0.1:$port" --label "$label"
    else
        na_all "$sys" "redis-server did not answer PING within 20 s"
    fi
    stop_pids
}
if want redis-always || want redis-none; then
    if ! command -v redis-server >/dev/null; then
        want redis-always && na_all redis-always "redis-server is not installed"
        want redis-none && na_all redis-none "redis-server is not installed"
    else
        want redis-always && redis_system redis-always "appendfsync always" \
            --appendonly yes --appendfsync always
        want redis-none && redis_system redis-none "no persistence: not durable" --appendonly no
    fi
fi

etcd_system() {
    local sys=$1 n=$2 base cluster="" endpoints="" i
    base=$(free_base 12379 $((2 * n)))
    for ((i = 0; i < n; i++)); do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + n + i))"
        endpoints+="${endpoints:+,}http://127.0.0.1:$((base + i))"
    done
    for ((i = 0; i < n; i++)); do
        start "etcd m$i" "$WORK/$sys-m$i.log" etcd --name "m$i" --data-dir "$WORK/$sys-m$i" \
            --listen-client-urls "http://127.0.0.1:$((base + i))" \
            --advertise-client-urls "http://127.0.0.1:$((base + i))" \
            --listen-peer-urls "http://127.0.0.1:$((base + n + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((base + n + i))" \
            --initial-cluster "$cluster" --initial-cluster-token "compare-$sys" \
            --initial-cluster-state new --log-level error
    done
    if wait_until 30 env ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health; then
        run_all "$sys" --target etcd --endpoint "$endpoints"
    else
        na_all "$sys" "etcd did not report healthy within 30 s"
    fi
    stop_pids
}
if want etcd-1 || want etcd-3; then
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
        want etcd-1 && na_all etcd-1 "etcd or etcdctl is not installed"
        want etcd-3 && na_all etcd-3 "etcd or etcdctl is not installed"
    else
        want etcd-1 && etcd_system etcd-1 1
        want etcd-3 && etcd_system etcd-3 3
    fi
fi

# ---------------------------------------------------------------- the report
MEASURE_SECS=$(($(date +%s) - MEASURE_START))
disk=$(findmnt -n -o SOURCE,FSTYPE -T "$WORK" 2>/dev/null | tr -s ' ' || echo unknown)
{
    echo "# Benchmarks: Shoal next to Redis and etcd"
    echo
    echo "Written by \`bench/compare/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (measuring took ${MEASURE_SECS} s)."
    echo "Every system ran on this machine, on 127.0.0.1, one after the other, with fresh data"
    echo "directories, under the same loadgen workloads: ${KEYS} keys preloaded (16-byte keys,"
    echo "${VALUE_SIZE}-byte values), scrambled zipfian 0.99, closed loop, ${WARMUP} warm-up then ${DURATION} measured."
    echo "This machine is a shared, noisy VM (other builds ran meanwhile): compare figures as"
    echo "ratios within this run. Scratch data and raw reports lived in \$WORK (a fresh temp dir)."
    echo
    echo "## Machine and versions"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores |"
    echo "| memory | $(free -g | awk '/^Mem:/ {print $2}') GiB |"
    echo "| kernel | $(uname -r) |"
    echo "| disk of the data dirs | ${disk} |"
    echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| shoal | $(git rev-parse --short HEAD) ($(git log -1 --format=%cd --date=short)) |"
    echo "| loadgen | $("$LOADGEN" --version 2>/dev/null || echo '?') |"
    echo "| redis-server | $(redis-server --version 2>/dev/null | awk '{print $3}' | sed 's/v=//' || echo 'not installed') |"
    echo "| etcd | $(etcd --version 2>/dev/null | head -1 | awk '{print $3}' || echo 'not installed') |"
    echo "| rustc | $(rustc --version) |"
} >"$HEADER"
mkdir -p "$(dirname "$OUT")"
"$REPORT" "$MANIFEST" "$HEADER" "$OUT" "$PLOTS"
log "wrote $OUT (measuring took ${MEASURE_SECS} s, total $(($(date +%s) - STARTED_AT)) s)"
