#!/usr/bin/env bash
# Time from the README's install to the first real answer, in a fresh virtual environment.
#   bench/install_to_answer.sh [venv dir]        (pip's cache is used as it is: say whether it held the
#                                                 llama-cpp-python wheel, which otherwise builds for ~8-10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-$(mktemp -d)/venv}"
port=18123
start=$(date +%s.%N)
python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q -c requirements.lock pip
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
pip install -q -c requirements.lock --build-constraint requirements.lock -e '.[device,models,router,plot,gpu,dev]'
installed=$(date +%s.%N)
tierwise serve --port "$port" --log-level warning --no-access-log &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" > /dev/null; do sleep 0.2; done
serving=$(date +%s.%N)
answer=$(curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 3?"}], "temperature": 0, "max_tokens": 16}')
answered=$(date +%s.%N)
echo "$answer" | python -c 'import json, sys; r = json.load(sys.stdin); print(r["tierwise"]["tier"], repr(r["choices"][0]["message"]["content"]))'
python - "$start" "$installed" "$serving" "$answered" <<'PY'
import sys
start, installed, serving, answered = map(float, sys.argv[1:])
print(f"install {installed - start:.0f} s, serve ready {serving - installed:.1f} s, first answer {answered - serving:.2f} s; "
      f"total {answered - start:.0f} s")
PY
