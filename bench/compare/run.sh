#!/usr/bin/env bash
# bench/compare/run.sh: Shoal next to Redis and etcd on this machine, in one run.
#
# Installs what is missing (Debian: redis-server, redis-tools, etcd-server, etcd-client,
# protobuf-compiler), builds loadgen (+ etcd) and shoal in release mode, then for each
# system: starts it on 127.0.0.1 (fresh data dirs), runs the same loadgen workloads
# (100-byte values, 10k keys preloaded, scrambled zipfian 0.99; durable puts and
# linearizable gets at 1 and 64 in flight, YCSB A and B at 64), stops it. Then the
# redis-benchmark phase: `redis-benchmark -t set,get -n 200000 -c 50 -d 100` at -P 1 and
# -P 16 against Shoal's RESP port (1 node; 3 nodes through the leader and through a
# follower) and against redis-server (appendfsync always; no persistence), each started
# fresh. Finally writes docs/BENCHMARKS.md (tables, SVG plots under docs/bench/, machine,
# versions, command lines, time per phase). Everything it starts is stopped by pid, also on
# failure or Ctrl-C (trap). Elapsed time is printed per phase and in total.
#
# Usage: bench/compare/run.sh            (from anywhere inside the repository)
# Env:   DURATION (default 5s), WARMUP (1s), KEYS (10000), VALUE_SIZE (100),
#        RUN_LIMIT (120: seconds one loadgen run may take before it is killed and reported),
#        RB_REQUESTS (200000), RB_CLIENTS (50), RB_PIPELINES ("1 16"), RB_VALUE_SIZE (100),
#        RB_LIMIT (180: seconds one redis-benchmark run may take),
#        SHOAL3_SHARDS (1: shards per node of shoal-3, the issue's 3-node figure),
#        ONLY="shoal-local redis-none resp-shoal-1 ..." (a subset of systems; ids in
#        SYSTEMS_ALL below), SKIP_INSTALL=1, SKIP_BUILD=1, KEEP_WORK=1 (keep the scratch
#        dir with logs and raw reports), OUT (default docs/BENCHMARKS.md),
#        CARGO_TARGET_DIR (default target/).
# Budget: with the defaults, measuring took 633 s on a 2-core VM under load average 20-30
# (51 loadgen runs of 1 s + 5 s plus preloads and starts: ~375 s; 10 redis-benchmark runs
# of 200k requests each way: ~255 s, most of it in the slow durable SETs at -P 1). The
# release build comes on top on a fresh checkout (~10 min of CPU; SKIP_BUILD=1 with the
# binaries already built skips it). Shorten with DURATION=3s or RB_REQUESTS=100000.
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
RB_REQUESTS=${RB_REQUESTS:-200000}
RB_CLIENTS=${RB_CLIENTS:-50}
RB_PIPELINES=${RB_PIPELINES:-1 16}
RB_VALUE_SIZE=${RB_VALUE_SIZE:-100}
RB_LIMIT=${RB_LIMIT:-180}
OUT=${OUT:-$ROOT/docs/BENCHMARKS.md}
PLOTS=$(dirname "$OUT")/bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=$TARGET_DIR/release/loadgen
SHOAL=$TARGET_DIR/release/shoal
REPORT=$TARGET_DIR/release/compare-report
SYSTEMS_ALL="floor-channel floor-channel-spin floor-tcp floor-fsync floor-fsync-pinned shoal-local shoal-local-spin shoal-1 shoal-3 redis-always redis-none etcd-1 etcd-3 resp-shoal-1 resp-shoal-3 resp-redis-always resp-redis-none"
ONLY=${ONLY:-$SYSTEMS_ALL}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-compare.XXXXXX")
MANIFEST=$WORK/manifest.tsv
HEADER=$WORK/header.md
PIDS=()
STARTED_AT=$(date +%s)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
# The commit measured, marked when the tree differs from it (the report itself excluded).
REVISION="$(git rev-parse --short HEAD) ($(git log -1 --format=%cd --date=short))"
git diff --quiet HEAD -- . ":(exclude)$OUT" ":(exclude)$PLOTS" 2>/dev/null ||
    REVISION+=" + uncommitted changes"

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Time per phase: phase NAME starts one (ending the previous), phase_end ends the last.
PHASE_NAMES=()
PHASE_SECS=()
PHASE_NAME=""
PHASE_T0=0
phase_end() {
    [[ -n $PHASE_NAME ]] || return 0
    local secs=$(($(date +%s) - PHASE_T0))
    PHASE_NAMES+=("$PHASE_NAME")
    PHASE_SECS+=("$secs")
    log "phase $PHASE_NAME took ${secs} s (elapsed in total: $(($(date +%s) - STARTED_AT)) s)"
    PHASE_NAME=""
}
phase() {
    phase_end
    PHASE_NAME=$1
    PHASE_T0=$(date +%s)
    log "phase $1"
}

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
    command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null ||
        pkgs+=(redis-tools)
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
if [[ -z "${SKIP_INSTALL:-}" ]]; then
    phase install
    install_missing
fi
if [[ -z "${SKIP_BUILD:-}" ]]; then
    phase build
    log "building loadgen (+etcd), compare-report and shoal (release)"
    # One cargo invocation, so shared dependencies are built once with unified features.
    if ! CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p loadgen --features \
        loadgen/etcd -p shoal --bin loadgen --bin compare-report --bin shoal; then
        log "the shoal binary does not build: shoal-1 and shoal-3 will be not available"
        CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p loadgen --features etcd \
            --bin loadgen --bin compare-report
    fi
fi
phase_end
for bin in "$LOADGEN" "$REPORT"; do
    [[ -x $bin ]] || { log "missing $bin (build it, or drop SKIP_BUILD)"; exit 1; }
done
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
# system ID LABEL: lists a system (only those selected by ONLY); list_system: once, always.
declare -A LISTED=()
list_system() {
    [[ -n ${LISTED[$1]:-} ]] && return 0
    LISTED[$1]=1
    manifest SYSTEM "$1" "$2"
}
system() { if want "$1"; then list_system "$1" "$2"; fi; }

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
    # LOADGEN_PREFIX (words, e.g. "taskset -c 1") runs loadgen under another command.
    local prefix=()
    read -ra prefix <<<"${LOADGEN_PREFIX:-}"
    if timeout --kill-after=10s "$RUN_LIMIT" "${prefix[@]}" "${cmd[@]}" >"$WORK/$sys.$w.out" \
        2>"$WORK/$sys.$w.err"; then
        local shown="${prefix[*]}${prefix[*]:+ }loadgen ${cmd[*]:1}"
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
# shoal-3 (loadgen): 1 shard per node, the closing figure's setting. With one shard each
# and `--first-core` = node id - 1, the three shard threads spread over the cores; with
# $(nproc) shards each, 6 shard threads (and their io_uring workers) share 2 cores.
SHOAL3_SHARDS=${SHOAL3_SHARDS:-1}

system floor-channel "Floor of shoal-local: tokio mpsc + oneshot to $SHARDS glommio shard thread(s) that answer at once (no Raft, no WAL)"
system floor-tcp "Floor of shoal-remote: loopback TCP echo on glommio, one pipelined connection per shard, Shoal's frame sizes"
system floor-fsync "Floor of a durable put: 4 KiB O_DIRECT overwrite + fdatasync, plain syscalls (wal-bench's baseline)"
system shoal-local "Shoal, embedded single node ($SHARDS shards), LocalKvClient: puts fdatasync'd before ack, linearizable gets (ReadIndex)"
# The latency profile of an embedded deployment that gives its shard a core of its own:
# one shard, on the core that takes the data disk's interrupts (scripts/irq-core: a
# completion then wakes the shard without a cross-core interrupt), whose executor spins
# SPIN_US before it parks, and a client that spins on a lone call's reply for up to
# REPLY_SPIN_US (covering a put). Same guarantees.
SPIN_US=200
REPLY_SPIN_US=400
IRQ_CORE=$("$ROOT/scripts/irq-core" "$WORK" || echo 0)
SPIN_FLAGS=(--shards 1 --first-core "$IRQ_CORE" --spin-before-park-us "$SPIN_US" --reply-spin-us "$REPLY_SPIN_US" --threads 1)
system floor-fsync-pinned "Floor of a durable put on the latency profile's core: floor-fsync with loadgen pinned to core $IRQ_CORE (taskset), the core that takes the data disk's interrupts"
system floor-channel-spin "Floor of shoal-local-spin: tokio mpsc + oneshot to 1 glommio shard thread on core $IRQ_CORE spinning ${SPIN_US} us before parking, client spinning ${REPLY_SPIN_US} us on replies, 1 loadgen thread"
system shoal-local-spin "Shoal, embedded single node, latency profile (1 shard on core $IRQ_CORE, the one that takes the data disk's interrupts, spinning ${SPIN_US} us before parking, LocalKvClient spinning up to ${REPLY_SPIN_US} us on a lone reply, 1 loadgen thread): puts fdatasync'd before ack, linearizable gets"
SHOAL1_LABEL="Shoal, single node ($SHARDS shards), RemoteKvClient over TCP (loadgen) or RESP (redis-benchmark): puts fdatasync'd before ack, linearizable gets"
system shoal-1 "$SHOAL1_LABEL"
system shoal-3 "Shoal, 3 nodes ($SHOAL3_SHARDS shard(s) each, node n's shard 0 pinned to core n-1 mod $(nproc)), RemoteKvClient: puts fdatasync'd on a quorum before ack, linearizable gets"
REDIS_ALWAYS_LABEL="Redis, AOF with appendfsync always (fsync before reply), no RDB snapshots: durable, single server (no replication)"
REDIS_NONE_LABEL="Redis, no persistence (appendonly no, no RDB): NOT durable, a crash loses every write; reference only"
system redis-always "$REDIS_ALWAYS_LABEL"
system redis-none "$REDIS_NONE_LABEL"
system etcd-1 "etcd, 1 member: WAL fsync before ack, linearizable gets (default)"
system etcd-3 "etcd, 3 members: WAL fsync on a quorum before ack, linearizable gets (default)"

if want floor-channel; then
    phase floor-channel
    for w in get-1 get-64 put-1 put-64; do run floor-channel "$w" --target floor-channel --shards "$SHARDS"; done
fi
if want floor-channel-spin; then
    phase floor-channel-spin
    for w in get-1 get-64 put-1 put-64; do run floor-channel-spin "$w" --target floor-channel "${SPIN_FLAGS[@]}"; done
fi
if want floor-tcp; then
    phase floor-tcp
    for w in get-1 get-64 put-1 put-64; do run floor-tcp "$w" --target floor-tcp --shards "$SHARDS"; done
fi
if want floor-fsync; then
    phase floor-fsync
    mkdir -p "$WORK/fsync"
    run floor-fsync put-1 --target floor-fsync --data-dir "$WORK/fsync"
fi
if want floor-fsync-pinned; then
    phase floor-fsync-pinned
    mkdir -p "$WORK/fsync-pinned"
    LOADGEN_PREFIX="taskset -c $IRQ_CORE" run floor-fsync-pinned put-1 --target floor-fsync \
        --threads 1 --data-dir "$WORK/fsync-pinned"
fi

if want shoal-local; then
    phase shoal-local
    run_all shoal-local --target shoal-local --shards "$SHARDS" --data-dir "$WORK/shoal-local"
fi
if want shoal-local-spin; then
    phase shoal-local-spin
    run_all shoal-local-spin --target shoal-local "${SPIN_FLAGS[@]}" --data-dir "$WORK/shoal-local-spin"
fi

# shoal_node ID CLIENT PEER DATA [member flags...] (NODE_SHARDS shards, default SHARDS)
shoal_node() {
    local id=$1 client=$2 peer=$3 data=$4; shift 4
    start "shoal node $id" "$WORK/shoal-$id-$(basename "$data").log" "$SHOAL" --node-id "$id" \
        --data-dir "$data" --client-addr "$client" --peer-addr "$peer" --shards "${NODE_SHARDS:-$SHARDS}" \
        --first-core "$((id - 1))" --log-level warn "$@"
}
shoal_ready() { grep -q "shoal: ready" "$1"; }

if want shoal-1; then
    phase shoal-1
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
    phase shoal-3
    if [[ ! -x $SHOAL ]]; then
        na_all shoal-3 "the shoal binary was not built"
    else
        NODE_SHARDS=$SHOAL3_SHARDS
        base=$(free_base 17500 $((6 * NODE_SHARDS + 30)))
        members=()
        for i in 1 2 3; do
            c=$((base + (i - 1) * 2 * NODE_SHARDS)); p=$((c + NODE_SHARDS))
            members+=(--member "$i=127.0.0.1:$c/127.0.0.1:$p")
        done
        for i in 1 2 3; do
            c=$((base + (i - 1) * 2 * NODE_SHARDS)); p=$((c + NODE_SHARDS))
            shoal_node "$i" "127.0.0.1:$c" "127.0.0.1:$p" "$WORK/shoal3-$i" "${members[@]}"
        done
        endpoints="127.0.0.1:$base,127.0.0.1:$((base + 2 * NODE_SHARDS)),127.0.0.1:$((base + 4 * NODE_SHARDS))"
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
        unset NODE_SHARDS
    fi
fi

redis_system() {
    local sys=$1 label=$2; shift 2
    local port dir
    phase "$sys"
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
    phase "$sys"
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

# ---------------------------------------------------------------- redis-benchmark (issue 9)
# The same redis-benchmark command against Shoal's RESP port and redis-server; each system
# started fresh for it. redis-benchmark 7 exits at the first error reply, so a run with
# errors fails and is listed as not available with the server's message.

# rb_failure OUT ERR STATUS: one line saying why a redis-benchmark run failed.
rb_failure() {
    local out=$1 err=$2 rc=$3 line
    if ((rc == 124 || rc == 137)); then
        line="no result within ${RB_LIMIT} s (killed)"
    else
        line="exit status $rc"
    fi
    local msg
    msg=$(cat "$err" "$out" 2>/dev/null | grep -v '^"' | grep -v '^\s*$' | tail -n 2 | tr '\n' ' ')
    [[ -n $msg ]] && line+="; $msg"
    printf '%s' "$line" | tr '\t|\r' '   ' | sed 's/ *$//' | cut -c1-300
}

# rb SYSTEM PORT: redis-benchmark at every -P of RB_PIPELINES against 127.0.0.1:PORT.
rb() {
    local sys=$1 port=$2 p out err rc
    for p in $RB_PIPELINES; do
        out=$WORK/rb.$sys.P$p.csv
        err=$WORK/rb.$sys.P$p.err
        local cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$RB_REQUESTS"
            -c "$RB_CLIENTS" -d "$RB_VALUE_SIZE" -P "$p" --csv)
        log "$sys / redis-benchmark -P $p"
        if timeout --kill-after=10s "$RB_LIMIT" "${cmd[@]}" >"$out" 2>"$err"; then
            manifest RB "$sys" "$p" "$out" "${cmd[*]}"
        else
            rc=$?
            local why
            why=$(rb_failure "$out" "$err" "$rc")
            log "$sys / redis-benchmark -P $p failed: $why"
            manifest RBNA "$sys" "$p" "redis-benchmark failed: $why"
        fi
    done
}

# rb_na SYSTEM REASON: no redis-benchmark run of SYSTEM could be made.
rb_na() {
    local p
    log "$1 (redis-benchmark) not available: $2"
    for p in $RB_PIPELINES; do manifest RBNA "$1" "$p" "$2"; done
}

resp_ready() { redis-cli -h 127.0.0.1 -p "$1" ping | grep -q PONG; }

if want resp-shoal-1; then
    phase resp-shoal-1
    list_system shoal-1 "$SHOAL1_LABEL"
    if [[ ! -x $SHOAL ]]; then
        rb_na shoal-1 "the shoal binary was not built"
    elif ! command -v redis-benchmark >/dev/null; then
        rb_na shoal-1 "redis-benchmark is not installed (Debian: redis-tools)"
    else
        base=$(free_base 17700 $((3 * SHARDS)))
        resp_port=$((base + 2 * SHARDS))
        shoal_node 1 "127.0.0.1:$base" "127.0.0.1:$((base + SHARDS))" "$WORK/rb-shoal1" \
            --resp-addr "127.0.0.1:$resp_port"
        if wait_until 30 shoal_ready "$WORK/shoal-1-rb-shoal1.log" &&
            wait_until 10 resp_ready "$resp_port"; then
            rb shoal-1 "$resp_port"
        else
            rb_na shoal-1 "the node did not serve RESP PING within 40 s: $(tail -n 2 "$WORK/shoal-1-rb-shoal1.log" | tr '\t\n|' '   ' | cut -c1-200)"
        fi
        stop_pids
    fi
fi

if want resp-shoal-3; then
    phase resp-shoal-3
    if [[ ! -x $SHOAL ]]; then
        rb_na shoal-3-leader "the shoal binary was not built"
    elif ! command -v redis-benchmark >/dev/null; then
        rb_na shoal-3-leader "redis-benchmark is not installed (Debian: redis-tools)"
    else
        # Node i: client ports at c, peer ports at c + SHARDS, RESP ports at c + 2 SHARDS.
        base=$(free_base 17800 $((9 * SHARDS + 30)))
        members=()
        for i in 1 2 3; do
            c=$((base + (i - 1) * 3 * SHARDS))
            members+=(--member "$i=127.0.0.1:$c/127.0.0.1:$((c + SHARDS))")
        done
        for i in 1 2 3; do
            c=$((base + (i - 1) * 3 * SHARDS))
            shoal_node "$i" "127.0.0.1:$c" "127.0.0.1:$((c + SHARDS))" "$WORK/rb-shoal3-$i" \
                "${members[@]}" --resp-addr "127.0.0.1:$((c + 2 * SHARDS))"
        done
        rb_endpoints="127.0.0.1:$base,127.0.0.1:$((base + 3 * SHARDS)),127.0.0.1:$((base + 6 * SHARDS))"
        rb_formed() {
            for i in 1 2 3; do shoal_ready "$WORK/shoal-$i-rb-shoal3-$i.log" || return 1; done
            for i in 1 2 3; do resp_ready $((base + (i - 1) * 3 * SHARDS + 2 * SHARDS)) || return 1; done
            "$LOADGEN" --target shoal-remote --endpoint "$rb_endpoints" --workload write -c 1 \
                --ops 10 --warmup 0s --quiet --connect-timeout 3s &&
                "$SHOAL" cluster status --addr "127.0.0.1:$base" --timeout-ms 3000
        }
        if wait_until 45 rb_formed; then
            # Which node leads which group, from `shoal cluster status` ("group G: leader
            # node L, term T"). redis-benchmark goes to the node leading the most groups
            # (after a first start: node 1, leader of all); the follower run goes to a node
            # leading none (or the fewest).
            status=$("$SHOAL" cluster status --addr "127.0.0.1:$base" --timeout-ms 3000 || true)
            declare -A leads=([1]="" [2]="" [3]="")
            while read -r g l; do
                leads[$l]+="${leads[$l]:+,}$g"
            done < <(printf '%s\n' "$status" | sed -n 's/^group \([0-9]*\): leader node \([0-9]*\),.*/\1 \2/p')
            count() { if [[ -z $1 ]]; then echo 0; else echo $(($(tr -cd ',' <<<"$1" | wc -c) + 1)); fi; }
            leader=1 follower=""
            for i in 1 2 3; do
                if (($(count "${leads[$i]}") > $(count "${leads[$leader]}"))); then leader=$i; fi
            done
            for i in 1 2 3; do
                if [[ $i != "$leader" ]] && { [[ -z $follower ]] ||
                    (($(count "${leads[$i]}") < $(count "${leads[$follower]}"))); }; then
                    follower=$i
                fi
            done
            describe() {
                if [[ -z ${leads[$1]} ]]; then echo "leads no group"; else echo "leads group(s) ${leads[$1]} of $SHARDS"; fi
            }
            list_system shoal-3-leader "Shoal, 3 nodes ($SHARDS shards each), redis-benchmark connected to node $leader, which $(describe "$leader"): puts fdatasync'd on a quorum before ack, linearizable gets"
            list_system shoal-3-follower "Shoal, 3 nodes, redis-benchmark connected to node $follower, which $(describe "$follower"): every request goes through that node to the leader (errors if the node does not forward)"
            rb shoal-3-leader $((base + (leader - 1) * 3 * SHARDS + 2 * SHARDS))
            rb shoal-3-follower $((base + (follower - 1) * 3 * SHARDS + 2 * SHARDS))
        else
            why=$(cat "$WORK"/shoal-*-rb-shoal3-*.log 2>/dev/null | grep -v '^$' | tail -n 2 | tr '\t\n|' '   ' | cut -c1-200)
            rb_na shoal-3-leader "the 3-node cluster did not form and serve RESP and a put within 45 s (${why:-no output})"
        fi
        stop_pids
    fi
fi

# resp_redis SYSTEM LABEL REDIS-FLAGS...: a fresh redis-server, redis-benchmark against it.
resp_redis() {
    local sys=$1 label=$2; shift 2
    local port dir
    phase "resp-$sys"
    list_system "$sys" "$label"
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
        rb_na "$sys" "redis-server or redis-benchmark is not installed"
        return 0
    fi
    port=$(free_base 16479 1)
    dir=$WORK/rb-$sys && mkdir -p "$dir"
    start "redis ($sys, redis-benchmark)" "$dir/redis.log" redis-server --port "$port" \
        --bind 127.0.0.1 --dir "$dir" --save "" --protected-mode yes "$@"
    if wait_until 20 resp_ready "$port"; then
        rb "$sys" "$port"
    else
        rb_na "$sys" "redis-server did not answer PING within 20 s"
    fi
    stop_pids
}
if want resp-redis-always; then
    resp_redis redis-always "$REDIS_ALWAYS_LABEL" --appendonly yes --appendfsync always
fi
if want resp-redis-none; then
    resp_redis redis-none "$REDIS_NONE_LABEL" --appendonly no
fi
phase_end

# ---------------------------------------------------------------- the report
phase report
MEASURE_SECS=$(($(date +%s) - MEASURE_START))
disk=$(findmnt -n -o SOURCE,FSTYPE -T "$WORK" 2>/dev/null | tr -s ' ' || echo unknown)
version_of() { "$@" 2>/dev/null | head -1 || true; }
{
    echo "# Benchmarks: Shoal next to Redis and etcd"
    echo
    echo "Written by \`bench/compare/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (measuring took ${MEASURE_SECS} s)."
    echo "Every system ran on this machine, on 127.0.0.1, one after the other, with fresh data"
    echo "directories, under the same loadgen workloads: ${KEYS} keys preloaded (16-byte keys,"
    echo "${VALUE_SIZE}-byte values), scrambled zipfian 0.99, closed loop, ${WARMUP} warm-up then ${DURATION} measured."
    echo "Load average (1, 5, 15 min) at the start: ${LOAD_AT_START}; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(a load near or above the core count means other work competed with the benchmark:"
    echo "then compare figures only as ratios within this run). Scratch data and raw reports"
    echo "lived in \$WORK (a fresh temp dir)."
    echo
    echo "## Machine and versions"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores |"
    echo "| memory | $(free -g | awk '/^Mem:/ {print $2}') GiB |"
    echo "| kernel | $(uname -r) |"
    echo "| disk of the data dirs | ${disk} |"
    echo "| shoal | ${REVISION} |"
    echo "| loadgen | $(version_of "$LOADGEN" --version) |"
    echo "| redis-server | $(version_of redis-server --version | awk '{print $3}' | sed 's/v=//') |"
    echo "| redis-benchmark | $(version_of redis-benchmark --version | awk '{print $2}') |"
    echo "| etcd | $(version_of etcd --version | awk '{print $3}') |"
    echo "| rustc | $(rustc --version) |"
    echo
    echo "## Time per phase"
    echo
    echo "| phase | seconds |"
    echo "|---|---:|"
    for i in "${!PHASE_NAMES[@]}"; do echo "| ${PHASE_NAMES[$i]} | ${PHASE_SECS[$i]} |"; done
    echo "| total before writing this report | $(($(date +%s) - STARTED_AT)) |"
} >"$HEADER"
mkdir -p "$(dirname "$OUT")"
"$REPORT" "$MANIFEST" "$HEADER" "$OUT" "$PLOTS"
phase_end
TOTAL=$(($(date +%s) - STARTED_AT))
log "wrote $OUT"
log "time per phase:"
for i in "${!PHASE_NAMES[@]}"; do log "  ${PHASE_NAMES[$i]}: ${PHASE_SECS[$i]} s"; done
log "measuring took ${MEASURE_SECS} s; total ${TOTAL} s"
((TOTAL <= 1200)) || log "WARNING: the whole run took more than 20 minutes (${TOTAL} s)"
