#!/usr/bin/env bash
# Real vLLM targets on loopback: the tiny BF16 model and its AWQ twin (built by `make vllm-setup`).
#   scripts/vllm_targets.sh start [bf16|awq ...]   default both; waits for /health, fails with the log tail
#   scripts/vllm_targets.sh stop                   stops what this run dir's PID files name
# Ports and folders come from the environment so tests can run a private pair on free ports.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${VLLM_VENV:-.venv-vllm}
MODELS=${VLLM_MODELS:-.cache/tinymodels}
RUN_DIR=${VLLM_RUN_DIR:-.cache/vllm-targets}
BF16_PORT=${VLLM_BF16_PORT:-8000}
AWQ_PORT=${VLLM_AWQ_PORT:-8001}
START_TIMEOUT_S=${VLLM_START_TIMEOUT_S:-420}

port_of() { case $1 in bf16) echo "$BF16_PORT" ;; awq) echo "$AWQ_PORT" ;; esac; }
model_of() { echo "tiny-llama-$1"; }

alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

launch() {
  local name=$1 port model
  port=$(port_of "$name")
  model=$(model_of "$name")
  if alive "$name"; then
    echo "$model already running (pid $(cat "$RUN_DIR/$name.pid"), port $port)" >&2
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port is already in use (the simulator from 'make sim'?); stop it or set VLLM_${name^^}_PORT" >&2
    return 1
  fi
  # setsid: the server and its engine-core children share one process group, so stop can end them all.
  # VLLM_CPU_KVCACHE_SPACE=2 GiB holds 128 full-length sequences of this model; the default (a share of
  # RAM) would take most of the machine. HF_HUB_OFFLINE: everything is local, never ask a hub.
  # vLLM's default automatic prefix caching stays on, as users run it: the load generator makes every
  # prompt unique from its first token, and the grid records the cache's hit rate per cell.
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 VLLM_CPU_KVCACHE_SPACE=2 \
    setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$MODELS/$model" --served-model-name "$model" --host 127.0.0.1 --port "$port" \
    --dtype bfloat16 --max-model-len 4096 --max-num-seqs 64 \
    >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  echo "starting $model on http://127.0.0.1:$port (log $RUN_DIR/$name.log)" >&2
}

# vLLM binds its model worker to one core and leaves the others to the API server, but the engine-core
# process between them busy-polls the worker (about one core's worth) wherever the scheduler puts it.
# On a small machine that steals the load generator's CPU and the client, not the server, sets the pace;
# sharing the worker's core keeps the remaining core(s) for the HTTP front end and the load generator.
pin_engine_core() {
  local pid worker cores child
  pid=$(cat "$RUN_DIR/$1.pid")
  command -v taskset >/dev/null || return 0
  for child in $(pgrep -s "$pid"); do
    [ "$(cat "/proc/$child/comm" 2>/dev/null)" = "VLLM::Worker" ] && worker=$child
  done
  [ -n "${worker:-}" ] || return 0
  cores=$(taskset -pc "$worker" | awk -F': ' '{print $2}')
  for child in $(pgrep -s "$pid"); do
    if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = "VLLM::EngineCor" ]; then
      taskset -a -pc "$cores" "$child" >/dev/null && echo "engine core of $(model_of "$1") pinned to CPU $cores" >&2
    fi
  done
}

wait_healthy() {
  local name=$1 port deadline
  port=$(port_of "$name")
  deadline=$((SECONDS + START_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    if ! alive "$name"; then
      echo "error: $(model_of "$name") exited during start-up; last lines of $RUN_DIR/$name.log:" >&2
      tail -n 40 "$RUN_DIR/$name.log" >&2
      return 1
    fi
    if curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then
      pin_engine_core "$name"
      echo "$(model_of "$name") ready on http://127.0.0.1:$port" >&2
      return 0
    fi
    sleep 1
  done
  echo "error: $(model_of "$name") not healthy after ${START_TIMEOUT_S}s; last lines of $RUN_DIR/$name.log:" >&2
  tail -n 40 "$RUN_DIR/$name.log" >&2
  return 1
}

stop_one() {
  local name=$1 pid
  [ -f "$RUN_DIR/$name.pid" ] || return 0
  pid=$(cat "$RUN_DIR/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "stopped $(model_of "$name") (pid $pid)" >&2
  fi
  rm -f "$RUN_DIR/$name.pid"
}

cmd=${1:-}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(bf16 awq)
for n in "${names[@]}"; do
  case $n in bf16 | awq) ;; *) echo "error: unknown target '$n' (known: bf16, awq)" >&2; exit 2 ;; esac
done

case $cmd in
  start)
    if [ ! -x "$VENV/bin/python" ] || [ ! -f "$MODELS/manifest.json" ]; then
      echo "error: $VENV or $MODELS is missing; run 'make vllm-setup' first" >&2
      exit 1
    fi
    mkdir -p "$RUN_DIR"
    for n in "${names[@]}"; do launch "$n" || { for m in "${names[@]}"; do stop_one "$m"; done; exit 1; }; done
    for n in "${names[@]}"; do
      wait_healthy "$n" || { for m in "${names[@]}"; do stop_one "$m"; done; exit 1; }
    done
    ;;
  stop)
    for n in "${names[@]}"; do stop_one "$n"; done
    ;;
  *)
    echo "usage: $0 start|stop [bf16|awq ...]" >&2
    exit 2
    ;;
esac
