#!/usr/bin/env bash
# Tucano's standalone balancer against nginx and HAProxy, as HTTP/1.1 reverse proxies.
#
# What it measures: requests/s and latency (p50, p99) that wrk gets through each proxy in turn,
# each proxy on its own loopback port in front of the same K tucano-demo backends, with the same
# number of workers W (nginx worker_processes, HAProxy nbthread, tucano --threads), round robin
# and keep-alive connections both to clients and to the backends. Plus the CPU each part used
# during the measured run (% of one core), to tell which part is the bottleneck.
#
# Everything runs on this one machine and shares its cores: wrk, the proxy under test and the
# backends compete for CPU, so the numbers compare proxies' cost per request on this machine,
# not their peak throughput on dedicated cores. Compare the ratios, measured in one run, rather
# than absolute numbers across machines. The path requested is /healthz by default: its answer
# is the same whatever headers a proxy adds, so every proxy moves the same bytes.
#
# Usage: bash benches/compare_proxies.sh [SECONDS]      (from any directory)
# Environment (defaults): DURATION=10 seconds per measured run (the argument wins), WARMUP=3
# seconds (once per proxy), ROUNDS=1 (more rounds, each starting with the next proxy, report
# medians: steadier on a busy machine), BACKENDS=4, WORKERS=2, CONNECTIONS=64, WRK_THREADS=2,
# BACKEND_THREADS=1 (Tokio threads per backend), BENCH_PATH=/healthz, BASE_PORT=18100 (backends
# on BASE_PORT+1.., tucano on BASE_PORT+91, nginx +92, HAProxy +93), CARGO_TARGET_DIR.
# Needs root (or the packages present) to install nginx, haproxy, wrk and curl with apt-get.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${1:-${DURATION:-10}}
WARMUP=${WARMUP:-3}
BACKENDS=${BACKENDS:-4}
WORKERS=${WORKERS:-2}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
BACKEND_THREADS=${BACKEND_THREADS:-1}
BENCH_PATH=${BENCH_PATH:-/healthz}
BASE_PORT=${BASE_PORT:-18100}
ROUNDS=${ROUNDS:-1}
SERVICE=hello

die() { echo "compare_proxies: $*" >&2; exit 1; }

for var in DURATION WARMUP ROUNDS BACKENDS WORKERS CONNECTIONS WRK_THREADS BACKEND_THREADS BASE_PORT; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive whole number, not '${!var}'"
done
((BACKENDS <= 64)) || die "BACKENDS must be at most 64"
((BASE_PORT + 93 <= 65535)) || die "BASE_PORT is too high"
((CONNECTIONS >= WRK_THREADS)) || die "CONNECTIONS must be at least WRK_THREADS"
[[ $BENCH_PATH == /* ]] || die "BENCH_PATH must start with /"

TUCANO_PORT=$((BASE_PORT + 91))
NGINX_PORT=$((BASE_PORT + 92))
HAPROXY_PORT=$((BASE_PORT + 93))

WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/tucano-compare.XXXXXX")
PIDS=()
POLICY_RC_CREATED=0

# Stops every process this script started (SIGTERM, then SIGKILL after 5 s), removes the
# temporary directory, and undoes the service-start block of a package install.
cleanup() {
  local status=$? pid waited
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    waited=0
    while kill -0 "$pid" 2>/dev/null && ((waited < 50)); do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  ((POLICY_RC_CREATED)) && rm -f /usr/sbin/policy-rc.d
  rm -rf "$WORKDIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -------------------------------------------------------------------------------
install_missing() {
  local missing=() command package
  for command in nginx:nginx haproxy:haproxy wrk:wrk curl:curl; do
    package=${command#*:}
    command -v "${command%%:*}" >/dev/null || [[ -x /usr/sbin/${command%%:*} ]] || missing+=("$package")
  done
  ((${#missing[@]} == 0)) && return
  ((EUID == 0)) || die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  echo "installing ${missing[*]} (Debian packages)" >&2
  # Keep the packages from starting their system services (they would hold port 80 and CPU).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  if ! { timeout 300 apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >"$WORKDIR/apt.log" 2>&1; then
    tail -n 20 "$WORKDIR/apt.log" >&2
    die "could not install ${missing[*]}"
  fi
}
install_missing
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

echo "building the balancer example and tucano-demo (release)" >&2
cargo build --release --quiet --example balancer --bin tucano-demo
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BALANCER=$(realpath "$TARGET_DIR/release/examples/balancer")
DEMO=$(realpath "$TARGET_DIR/release/tucano-demo")

# --- helpers -----------------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME COMMAND...: runs COMMAND in the background, logging to $WORKDIR/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$WORKDIR/$name.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

# wait_ready NAME PID PORT [HOST]: waits up to 10 s until GET $BENCH_PATH on PORT answers 2xx.
wait_ready() {
  local name=$1 pid=$2 port=$3 host=${4:-localhost} _
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null -m 1 -H "Host: $host" "http://127.0.0.1:$port$BENCH_PATH" 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "--- $name log:" >&2
  tail -n 20 "$WORKDIR/$name.log" >&2 || true
  die "$name did not answer on 127.0.0.1:$port within 10 s"
}

# cpu_ticks PID...: user + system clock ticks used so far by the processes (all threads).
cpu_ticks() {
  local pid total=0 stat
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) } # fields after the command name, which may hold spaces
    read -r -a fields <<<"$stat"
    total=$((total + fields[11] + fields[12])) # utime, stime (fields 14 and 15)
  done
  echo "$total"
}

# with_children PID: PID and its direct children (nginx's workers).
with_children() {
  local children
  children=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
  echo "$1" ${children:+$children}
}

to_ms() { # wrk latency (e.g. 812.00us, 1.23ms, 2.01s) → milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

CLK_TCK=$(getconf CLK_TCK)
CORES=$(nproc)
BACKEND_PIDS=()

# --- backends ----------------------------------------------------------------------------
for port in $(seq $((BASE_PORT + 1)) $((BASE_PORT + BACKENDS))) $TUCANO_PORT $NGINX_PORT $HAPROXY_PORT; do
  port_in_use "$port" && die "port $port is in use; set BASE_PORT to another range"
done
UPSTREAMS=()
for i in $(seq "$BACKENDS"); do
  port=$((BASE_PORT + i))
  start "backend$i" env PORT="$port" TUCANO_DEMO_BIND=127.0.0.1 TUCANO_SERVICE="$SERVICE" \
    TUCANO_INSTANCE_ID="backend$i" TOKIO_WORKER_THREADS="$BACKEND_THREADS" RUST_LOG=warn "$DEMO"
  BACKEND_PIDS+=("$LAST_PID")
  UPSTREAMS+=("127.0.0.1:$port")
done
for i in $(seq "$BACKENDS"); do
  wait_ready "backend$i" "${BACKEND_PIDS[$((i - 1))]}" $((BASE_PORT + i))
done

# --- the three proxies -------------------------------------------------------------------
start tucano env RUST_LOG=warn "$BALANCER" --listen "127.0.0.1:$TUCANO_PORT" \
  --service "$SERVICE=$(IFS=,; echo "${UPSTREAMS[*]}")" --policy round_robin --threads "$WORKERS"
TUCANO_PID=$LAST_PID

mkdir -p "$WORKDIR/nginx"
{
  echo "worker_processes $WORKERS;"
  echo "daemon off;"
  echo "pid $WORKDIR/nginx/nginx.pid;"
  echo "error_log $WORKDIR/nginx/error.log crit;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log off;"
  # Clients keep their connections as long as with the other two (nginx closes one after
  # 1000 requests by default, which would make wrk reconnect).
  echo "  keepalive_requests 1000000;"
  for dir in client_body proxy fastcgi uwsgi scgi; do echo "  ${dir}_temp_path $WORKDIR/nginx/$dir;"; done
  echo "  upstream $SERVICE {"
  for upstream in "${UPSTREAMS[@]}"; do echo "    server $upstream;"; done
  echo "    keepalive $CONNECTIONS;"
  echo "    keepalive_requests 1000000;"
  echo "  }"
  echo "  server {"
  echo "    listen 127.0.0.1:$NGINX_PORT;"
  echo "    location / {"
  echo "      proxy_pass http://$SERVICE;"
  echo "      proxy_http_version 1.1;"
  echo "      proxy_set_header Connection \"\";"
  echo "      proxy_set_header Host \$host;"
  echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
  echo "    }"
  echo "  }"
  echo "}"
} >"$WORKDIR/nginx/nginx.conf"
start nginx "$NGINX" -p "$WORKDIR/nginx" -e "$WORKDIR/nginx/error.log" -c "$WORKDIR/nginx/nginx.conf"
NGINX_PID=$LAST_PID

{
  echo "global"
  echo "  nbthread $WORKERS"
  echo "  maxconn 4096" # 2 descriptors each: fits the usual 20000+ descriptor limit
  echo "defaults"
  echo "  mode http"
  echo "  option http-keep-alive"
  echo "  option forwardfor"
  echo "  timeout connect 5s"
  echo "  timeout client 30s"
  echo "  timeout server 60s"
  echo "  timeout http-keep-alive 30s"
  echo "frontend fe"
  echo "  bind 127.0.0.1:$HAPROXY_PORT"
  echo "  default_backend $SERVICE"
  echo "backend $SERVICE"
  echo "  balance roundrobin"
  echo "  http-reuse always"
  for i in "${!UPSTREAMS[@]}"; do echo "  server b$((i + 1)) ${UPSTREAMS[$i]}"; done
} >"$WORKDIR/haproxy.cfg"
start haproxy "$HAPROXY" -db -f "$WORKDIR/haproxy.cfg"
HAPROXY_PID=$LAST_PID

wait_ready tucano "$TUCANO_PID" "$TUCANO_PORT" "$SERVICE"
wait_ready nginx "$NGINX_PID" "$NGINX_PORT" "$SERVICE"
wait_ready haproxy "$HAPROXY_PID" "$HAPROXY_PORT" "$SERVICE"

# --- measurements ------------------------------------------------------------------------
# run_wrk SECONDS PORT OUTPUT: one bounded wrk run; its own CPU (user sys seconds) goes to OUTPUT.cpu.
run_wrk() {
  local seconds=$1 port=$2 output=$3
  local TIMEFORMAT='%U %S'
  { time timeout -k 5 $((seconds + 30)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${seconds}s" \
      --latency -H "Host: $SERVICE" "http://127.0.0.1:$port$BENCH_PATH" >"$output"; } 2>"$output.cpu" ||
    die "wrk against port $port failed: $(cat "$output" "$output.cpu")"
}

# machine_ticks: "USER_SYSTEM IRQ IDLE" clock ticks of all cores so far (from /proc/stat).
machine_ticks() {
  local _cpu user nice system idle iowait irq softirq _rest
  read -r _cpu user nice system idle iowait irq softirq _rest </proc/stat
  echo "$((user + nice + system)) $((irq + softirq)) $((idle + iowait))"
}

# percent TICKS SECONDS: TICKS as % of one core over SECONDS.
percent() { awk -v t="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN {printf "%.0f", 100 * t / hz / s}'; }

# How busy the machine is before any load: other processes (builds, ...) skew every number.
read -r busy0 _ _ <<<"$(machine_ticks)"
sleep 2
read -r busy1 _ _ <<<"$(machine_ticks)"
BACKGROUND=$(percent $((busy1 - busy0)) 2)
if ((BACKGROUND > 20)); then
  echo "warning: other processes use ${BACKGROUND}% of a core before any load; the numbers will be noisy" >&2
fi

# Results per "NAME ROUND".
declare -A RPS P50 P99 ERRORS PROXY_CPU PROXY_US WRK_CPU BACKEND_CPU IRQ_CPU OTHER_CPU IDLE_CPU
declare -A PROXY_PIDS_OF=([tucano]=$TUCANO_PID [nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID)
declare -A PORT_OF=([tucano]=$TUCANO_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)

# shellcheck disable=SC2034 # the result arrays are read through the nameref in median()
# measure NAME ROUND: one measured run against proxy NAME (warmed up first in round 1).
measure() {
  local name=$1 round=$2 key="$1 $2" port=${PORT_OF[$1]} out=$WORKDIR/wrk-$1-$2.txt
  local proxy_pids before_proxy before_backends busy0 irq0 idle0 busy1 irq1 idle1 t0 t1 seconds
  if ((round == 1)); then
    echo "$name: warm-up ${WARMUP}s" >&2
    run_wrk "$WARMUP" "$port" "$WORKDIR/warmup-$name.txt"
  fi
  echo "$name: round $round, ${DURATION}s measured" >&2
  read -r -a proxy_pids <<<"$(with_children "${PROXY_PIDS_OF[$name]}")"
  before_proxy=$(cpu_ticks "${proxy_pids[@]}")
  before_backends=$(cpu_ticks "${BACKEND_PIDS[@]}")
  read -r busy0 irq0 idle0 <<<"$(machine_ticks)"
  t0=$(date +%s.%N)
  run_wrk "$DURATION" "$port" "$out"
  t1=$(date +%s.%N)
  read -r busy1 irq1 idle1 <<<"$(machine_ticks)"
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  local proxy_ticks=$(($(cpu_ticks "${proxy_pids[@]}") - before_proxy))
  local backend_ticks=$(($(cpu_ticks "${BACKEND_PIDS[@]}") - before_backends))
  local wrk_ticks
  wrk_ticks=$(awk -v hz="$CLK_TCK" '{printf "%.0f", ($1 + $2) * hz}' "$out.cpu")
  RPS[$key]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  [[ -n ${RPS[$key]} ]] || die "no Requests/sec in wrk's output for $name: $(cat "$out")"
  P50[$key]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  P99[$key]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  ERRORS[$key]=$(awk '/Non-2xx or 3xx responses:/ {n += $NF}
    /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
  PROXY_CPU[$key]=$(percent "$proxy_ticks" "$seconds")
  PROXY_US[$key]=$(awk -v t="$proxy_ticks" -v hz="$CLK_TCK" '/ requests in / {
    printf "%.1f", ($1 > 0 ? 1e6 * t / hz / $1 : 0)}' "$out")
  WRK_CPU[$key]=$(percent "$wrk_ticks" "$seconds")
  BACKEND_CPU[$key]=$(percent "$backend_ticks" "$seconds")
  IRQ_CPU[$key]=$(percent $((irq1 - irq0)) "$seconds")
  IDLE_CPU[$key]=$(percent $((idle1 - idle0)) "$seconds")
  local other=$((busy1 - busy0 - proxy_ticks - backend_ticks - wrk_ticks))
  OTHER_CPU[$key]=$(percent $((other > 0 ? other : 0)) "$seconds")
}

NAMES=(tucano nginx haproxy)
for round in $(seq "$ROUNDS"); do
  # Each round starts with the next proxy, so none is always measured first or last.
  for i in 0 1 2; do
    measure "${NAMES[$(((i + round - 1) % 3))]}" "$round"
  done
done

# --- report ------------------------------------------------------------------------------
# median NAME ARRAY: the median over the rounds of ARRAY["NAME r"].
median() {
  local name=$1 round
  local -n values=$2
  for round in $(seq "$ROUNDS"); do echo "${values["$name $round"]}"; done |
    sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}

declare -A M_RPS M_P99
echo
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s --latency -H 'Host: $SERVICE' http://127.0.0.1:PORT$BENCH_PATH"
echo "$BACKENDS tucano-demo backends ($BACKEND_THREADS Tokio thread(s) each), $WORKERS workers per proxy," \
  "round robin, upstream keep-alive; all on $CORES shared cores"
if ((ROUNDS > 1)); then echo "medians over $ROUNDS rounds (each round's requests/s at the end of the line)"; fi
echo
printf '%-8s %12s %9s %9s %7s\n' proxy "requests/s" "p50 ms" "p99 ms" errors
for name in "${NAMES[@]}"; do
  M_RPS[$name]=$(median "$name" RPS)
  M_P99[$name]=$(median "$name" P99)
  errors=0 rounds=""
  for round in $(seq "$ROUNDS"); do
    errors=$((errors + ERRORS["$name $round"]))
    rounds+="  $(printf '%.0f' "${RPS["$name $round"]}")"
  done
  ((ROUNDS > 1)) || rounds=""
  printf '%-8s %12.0f %9.2f %9.2f %7d%s\n' "$name" "${M_RPS[$name]}" "$(median "$name" P50)" \
    "${M_P99[$name]}" "$errors" "$rounds"
done
echo
awk -v t="${M_RPS[tucano]}" -v n="${M_RPS[nginx]}" -v h="${M_RPS[haproxy]}" \
  -v tp="${M_P99[tucano]}" -v np="${M_P99[nginx]}" 'BEGIN {
  printf "tucano/nginx   requests/s: %.2fx  (goal >= 1.00)\n", t / n
  printf "tucano/haproxy requests/s: %.2fx  (goal >= 1.00)\n", t / h
  printf "tucano p99 / nginx p99:    %.2fx  (goal <= 1.00)\n", (np > 0 ? tp / np : 0)
}'
echo
echo "CPU during the measured runs, % of one core ($((CORES * 100))% in all; medians over the rounds):"
printf '%-8s %7s %12s %7s %9s %11s %7s %6s\n' proxy proxy "proxy us/req" wrk backends "kernel irq" \
  others idle
for name in "${NAMES[@]}"; do
  printf '%-8s %6s%% %12s %6s%% %8s%% %10s%% %6s%% %5s%%\n' "$name" "$(median "$name" PROXY_CPU)" \
    "$(median "$name" PROXY_US)" "$(median "$name" WRK_CPU)" "$(median "$name" BACKEND_CPU)" \
    "$(median "$name" IRQ_CPU)" "$(median "$name" OTHER_CPU)" "$(median "$name" IDLE_CPU)"
done
echo "(proxy us/req: the proxy's CPU time per request, steadier than requests/s on a busy machine;"
echo " kernel irq: loopback packet processing, mostly; others: every other process on the machine)"
for name in "${NAMES[@]}"; do
  for round in $(seq "$ROUNDS"); do
    ((ERRORS["$name $round"] == 0)) ||
      echo "warning: $name had ${ERRORS["$name $round"]} failed requests in round $round; its numbers are not comparable" >&2
  done
done
