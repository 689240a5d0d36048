#!/usr/bin/env bash
# End-to-end numbers of a local cluster (release build, process runtime, loopback):
#  1. requests/s and latency through the balancer (balancer → worker proxy → tucano-demo),
#     against the same load sent straight to one demo instance;
#  2. time from POST /v1/services (10 replicas) to all running, and DELETE to all stopped.
# Usage: bash benches/local_cluster.sh [seconds per wrk run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
API=127.0.0.1:7190
LB=127.0.0.1:8190

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
fi
cargo build --release --quiet --example local_cluster --bin tucano-demo

RUST_LOG=warn ./target/release/examples/local_cluster --api "$API" --balancer "$LB" >/tmp/tucano-bench-cluster.log 2>&1 &
CLUSTER=$!
trap 'kill -INT $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "cluster is up" /tmp/tucano-bench-cluster.log 2>/dev/null && break
  sleep 0.2
done
grep -q "cluster is up" /tmp/tucano-bench-cluster.log || { cat /tmp/tucano-bench-cluster.log; exit 1; }

echo "== through the balancer (3 replicas on 2 workers), wrk -t2 -c32 -d${SECONDS_PER_RUN}s"
wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" --latency -H 'Host: hello' "http://$LB/" | grep -E "Requests/sec|^     (50|99)%|Non-2xx"
INSTANCE=$(curl -s "http://$API/v1/services/hello" | python3 -c 'import json,sys; print(json.load(sys.stdin)["instances"][0]["address"])')
echo "== straight to one instance ($INSTANCE), same load"
wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" --latency "http://$INSTANCE/" | grep -E "Requests/sec|^     (50|99)%|Non-2xx"

echo "== deploy latency: POST 10 replicas → all running; DELETE → all stopped (5 runs)"
python3 - "$PWD/target/release/tucano-demo" "http://$API" <<'PY'
import json, sys, time, urllib.request, urllib.error
demo, api = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api + path, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
ups, downs = [], []
for run in range(5):
    name = f"bench{run}"
    start = time.monotonic()
    status, body = call("POST", "/v1/services", {"name": name, "command": [demo], "replicas": 10, "env": {"RUST_LOG": "warn"}})
    if status != 201:
        sys.exit(f"create failed: {status} {body}")
    deadline = start + 30
    while call("GET", f"/v1/services/{name}")[1]["replicas"]["running"] < 10:
        if time.monotonic() > deadline:
            sys.exit("replicas did not all run within 30 s")
        time.sleep(0.002)
    running = time.monotonic()
    call("DELETE", f"/v1/services/{name}")
    ups.append((running - start) * 1000)
    downs.append((time.monotonic() - running) * 1000)
print("deploy ms: " + " ".join(f"{x:.0f}" for x in ups) + f"  (median {sorted(ups)[2]:.0f})")
print("delete ms: " + " ".join(f"{x:.0f}" for x in downs) + f"  (median {sorted(downs)[2]:.0f})")
PY
