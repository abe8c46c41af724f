#!/usr/bin/env bash
# Set up the project (once) and run the main job on the bundled sample: ZIP and every baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/entropy-assets ]; then
    echo "setting up .venv (pip's output: .venv/install.log)"
    python3 -m venv .venv
    if ! { .venv/bin/pip install --upgrade pip && .venv/bin/pip install -e .; } > .venv/install.log 2>&1; then
        tail -n 30 .venv/install.log >&2
        exit 1
    fi
fi
out=${OUT:-out}
sample=dagster_project/data/sample
mkdir -p "$out"
.venv/bin/entropy-assets ratio "$sample" > "$out/pool_ratio.json"
.venv/bin/entropy-assets score "$sample" --output "$out/scores.parquet" > "$out/scores_summary.json"
for method in zip random ratio longest dedup; do
    mkdir -p "$out/$method"
    .venv/bin/entropy-assets select --data_path "$sample" --save_path "$out/$method/selected.jsonl" \
        --provenance "$out/$method/provenance.parquet" --budget 150 --k1 400 --k2 60 --k3 30 \
        --method "$method" > "$out/$method/summary.json"
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
pool = json.loads((out / "pool_ratio.json").read_text())
print(f"pool: {pool['samples']} samples, {pool['compressor']['compressor']} ratio {pool['ratio']}")
print(f"{'method':<10}{'selected':>10}{'bytes':>10}{'zlib-9 ratio':>14}")
for method in ("zip", "random", "ratio", "longest", "dedup"):
    s = json.loads((out / method / "summary.json").read_text())
    print(f"{method:<10}{s['selected']:>10}{s['selected_bytes']:>10}{s['set_ratio_zlib9']:>14}")
print(f"outputs: {out.resolve()}/<method>/selected.jsonl, provenance.parquet, summary.json; scores: {out.resolve()}/scores.parquet")
PY
