#!/usr/bin/env bash
# The container path end to end, for CI where a Docker engine runs: build the image, bring up
# docker-compose.yml (NATS, PostgreSQL, nodes node-a and node-b) as a project of its own on free
# loopback ports, wait for both nodes' /readyz, send commands as the NATS client user, check on
# both /metrics that the command counters moved by exactly what was sent, check the image's
# HEALTHCHECK and `ppos verify`, and tear everything down (volumes too), pass or fail.
#
#   scripts/docker-smoke.sh            # exit 0: passed, or "skipped: no Docker engine"; 1: failed
#
# Needs docker with the compose plugin (or docker-compose) and curl. Passwords are generated
# unless set (PPOS_NODE_PASSWORD, PPOS_OPERATOR_PASSWORD, PPOS_CLIENT_PASSWORD, POSTGRES_PASSWORD).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  echo "docker-smoke: skipped: no Docker engine (docker info failed)"
  exit 0
fi

fail() {
  echo "docker-smoke: FAILED: $*" >&2
  exit 1
}

if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  fail "a Docker engine runs, but neither 'docker compose' nor 'docker-compose' is installed"
fi
command -v curl >/dev/null 2>&1 || fail "curl is needed to read /readyz and /metrics"

project="ppos-smoke-$$"
compose() { "${compose_cmd[@]}" --project-name "$project" --file docker-compose.yml "$@"; }

# Each begins with a letter: nats-server takes a configuration variable that begins with a digit for a number.
secret() { printf 'p'; head -c 24 /dev/urandom | base64 | tr -d '\n+/='; }
export PPOS_NODE_PASSWORD="${PPOS_NODE_PASSWORD:-$(secret)}"
export PPOS_OPERATOR_PASSWORD="${PPOS_OPERATOR_PASSWORD:-$(secret)}"
export PPOS_CLIENT_PASSWORD="${PPOS_CLIENT_PASSWORD:-$(secret)}"
export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-$(secret)}"

# Free loopback ports, so a PostgreSQL or NATS already on this machine is never in the way.
taken=" "
# Sets the variable named $1 to the first port from $2 on that nothing listens on and that was not
# handed out before.
free_port() {
  local port
  for port in $(seq "$2" $(($2 + 500))); do
    case "$taken" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken="$taken$port "
      printf -v "$1" '%s' "$port"
      export "${1?}"
      return 0
    fi
  done
  fail "no free port from $2"
}
free_port PPOS_NATS_PORT 14222
free_port PPOS_NATS_MONITOR_PORT 18222
free_port PPOS_PG_PORT 15432
free_port PPOS_A_METRICS_PORT 19464
free_port PPOS_B_METRICS_PORT 19465
free_port PPOS_PROMETHEUS_PORT 19090
node_a="http://127.0.0.1:$PPOS_A_METRICS_PORT"
node_b="http://127.0.0.1:$PPOS_B_METRICS_PORT"

passed=0
cleanup() {
  if [ "$passed" != 1 ]; then
    echo "docker-smoke: logs of the failed run:" >&2
    compose logs --no-color --tail 80 >&2 || true
  fi
  compose --profile tools down --volumes --remove-orphans >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "docker-smoke: building the image"
compose build ppos-a
echo "docker-smoke: starting NATS, PostgreSQL, node-a and node-b (project $project)"
compose up -d nats postgres ppos-a ppos-b

wait_ready() {
  local url=$1 deadline=$((SECONDS + 180))
  until curl -fsS "$url/readyz" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$url/readyz not 200 after 180 s: $(curl -sS "$url/readyz" 2>&1 || true)"
    sleep 2
  done
  echo "docker-smoke: $url/readyz: $(curl -fsS "$url/readyz")"
}
wait_ready "$node_a"
wait_ready "$node_b"

# The sum over every series of ppos_commands_total with this type and outcome (inventory only).
counted() {
  curl -fsS "$1/metrics" | awk -v type="$2" -v outcome="$3" '
    index($0, "ppos_commands_total{") == 1 && index($0, "kind=\"inventory\"") && index($0, "type=\"" type "\"") && index($0, "outcome=\"" outcome "\"") { sum += $NF }
    END { printf "%d\n", sum }'
}
a_ok_before=$(counted "$node_a" Receive ok)
b_ok_before=$(counted "$node_b" Receive ok)
a_dup_before=$(counted "$node_a" Receive duplicate)
b_dup_before=$(counted "$node_b" Receive duplicate)

# 40 SKUs spread over both nodes' shards (all on one node: odds of 2^-39), one command repeated
# with its message id; sent as the least-privileged NATS user, ppos-client.
skus=40
echo "docker-smoke: sending $((skus + 2)) commands as ppos-client"
# shellcheck disable=SC2016 # expanded by the container's shell
compose run --rm --no-deps --entrypoint sh ppos-client -c '
  set -e
  for i in $(seq 1 '"$skus"'); do node dist/src/cli.js send inventory "smoke-$i" Receive "{\"qty\": 1}" >/dev/null; done
  node dist/src/cli.js send inventory smoke-dup Receive "{\"qty\": 5}" --id smoke-dup-1 >/dev/null
  node dist/src/cli.js send inventory smoke-dup Receive "{\"qty\": 5}" --id smoke-dup-1
' >/tmp/ppos-smoke-reply.$$ || fail "ppos send failed: $(cat /tmp/ppos-smoke-reply.$$)"
repeat_reply=$(cat /tmp/ppos-smoke-reply.$$)
rm -f /tmp/ppos-smoke-reply.$$
case "$repeat_reply" in *'"duplicate":true'*) ;; *) fail "the repeat was not answered as a duplicate: $repeat_reply" ;; esac
get_reply=$(compose run --rm --no-deps ppos-client send inventory smoke-dup Get)
case "$get_reply" in *'"onHand":5'*) ;; *) fail "smoke-dup should hold 5 (the repeat applied once): $get_reply" ;; esac

a_ok=$(($(counted "$node_a" Receive ok) - a_ok_before))
b_ok=$(($(counted "$node_b" Receive ok) - b_ok_before))
dups=$(($(counted "$node_a" Receive duplicate) - a_dup_before + $(counted "$node_b" Receive duplicate) - b_dup_before))
echo "docker-smoke: /metrics: Receive ok +$a_ok on node-a, +$b_ok on node-b; duplicate +$dups"
[ $((a_ok + b_ok)) -eq $((skus + 1)) ] || fail "Receive ok moved by $((a_ok + b_ok)) across the nodes, expected $((skus + 1))"
[ "$a_ok" -gt 0 ] || fail "node-a's command counter did not move"
[ "$b_ok" -gt 0 ] || fail "node-b's command counter did not move"
[ "$dups" -eq 1 ] || fail "the duplicate counter moved by $dups, expected 1"

# The image's HEALTHCHECK (node running deploy/docker/healthcheck.mjs): healthy within a minute.
for service in ppos-a ppos-b; do
  container=$(compose ps -q "$service")
  deadline=$((SECONDS + 90))
  until [ "$(docker inspect --format '{{.State.Health.Status}}' "$container")" = healthy ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$service's HEALTHCHECK is $(docker inspect --format '{{.State.Health.Status}}' "$container")"
    sleep 3
  done
done
echo "docker-smoke: both containers healthy"

echo "docker-smoke: ppos verify --all (as ppos-operator)"
compose run --rm --no-deps ppos-operator verify --all >/dev/null || fail "ppos verify --all did not pass"

passed=1
echo "docker-smoke: ok: image built, two nodes ready, commands answered and counted on both, healthy, verified"
