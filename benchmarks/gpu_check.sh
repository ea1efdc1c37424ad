#!/usr/bin/env bash
# GPU check on a lent GPU machine: install what the image lacks from carried wheels, check the imports, then run
# benchmarks/gpu_check.py (ours vs bare TRL, + vLLM colocate where vllm is installed) within 6 minutes.
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]      e.g. --steps 4 --completions 64 --completion-len 256
#
# Wheels: the device image (../shared/gpu/README.md, the device KINDS.md) has torch, transformers, accelerate, peft,
# pyarrow, pyyaml, rich, typer but not trl, datasets or pydantic. Download them here (python 3.12 wheels) into
# .whl/ (git-ignored, `echo /.whl/ >> .git/info/exclude`), and name .whl in the run's carry:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     trl==1.16.0 datasets==4.7.0 dill==0.4.0 multiprocess==0.70.18 pydantic pydantic-core annotated-types \
#     typing-inspection httpx2 httpcore2
# (vllm's wheel is far over the 64 MiB a call may carry: the vLLM arm runs only where vllm is already installed.)
# Results: $OUT/gpu_check.json and a table on stdout. Exit 2: something to install; 1: an arm failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"
SITE="${GPU_CHECK_SITE:-/tmp/site}"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl || { echo "gpu_check: installing the wheels in $WHEELS failed" >&2; exit 2; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
export OUT="${OUT:-$(mktemp -d)}"
# preflight: the whole import path of the check, on a tiny plan (seconds); a missing package is named here
if ! preflight=$("$PYTHON" benchmarks/gpu_check.py --tiny --dry-run 2>&1); then
  echo "gpu_check: preflight failed: $(printf '%s\n' "$preflight" | grep -E 'Error|error' | tail -1)" >&2
  echo "gpu_check: carry the missing wheel in $WHEELS (see the header of this script)" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout "${GPU_CHECK_TIMEOUT:-360}" "$PYTHON" benchmarks/gpu_check.py --out "$OUT" "$@"
status=$?
[ "$status" -eq 124 ] && echo "gpu_check: stopped at the ${GPU_CHECK_TIMEOUT:-360} s limit" >&2
exit "$status"
