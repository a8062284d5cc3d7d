#!/usr/bin/env bash
# The GPU check in one command (benchmarks/gpu_suite.py says what it measures; at most 8 minutes).
# Where deepspeed does not import (the device machine's image), the wheels carried in .whl/ (deepspeed and
# the packages it needs) are installed into /tmp/site first. Results go to $OUT when set (the device tool), else output/gpu_suite/.
#   bash benchmarks/gpu_suite.sh            # the GPU run
#   bash benchmarks/gpu_suite.sh --smoke    # toy sizes on CPU
set -uo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if ! "$python" -c "import deepspeed" > /dev/null 2>&1 && compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_suite: installing the carried wheels in .whl/ failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
out="${OUT:-output/gpu_suite}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec "$python" benchmarks/gpu_suite.py --out "$out/gpu_suite.json" --log "$out/gpu_suite.log" "$@"
