#!/usr/bin/env bash
# Create (or complete) the Python venv used by `yigong bench empi --febrl`.
# Idempotent: when the venv already holds exactly requirements.txt it returns at once.
# The last line on stdout is the venv's python; everything else goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${YIGONG_BENCH_VENV:-$HOME/.cache/yigong-bench-venv}"
py="$venv/bin/python"
stamp="$venv/.yigong-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

# Fast path: venv exists, was installed from this very requirements.txt, and every
# pinned distribution is still present at its pinned version (cheap: no imports).
check='
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, _, want = line.partition("==")
        try:
            ok = version(name) == want
        except PackageNotFoundError:
            ok = False
        if not ok:
            sys.exit(1)
'
if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && "$py" -c "$check" "$req" 2>/dev/null; then
    echo "$py"
    exit 0
fi

# Pick an interpreter: $YIGONG_BENCH_PYTHON, else python3.11, else python3 (>= 3.10).
base="${YIGONG_BENCH_PYTHON:-}"
if [[ -z "$base" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then base=python3.11; else base=python3; fi
fi
"$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || { echo "setup.sh: $base is older than Python 3.10" >&2; exit 1; }

if [[ ! -x "$py" ]] || ! "$py" -c '' 2>/dev/null; then
    echo "setup.sh: creating venv $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$base" -m venv "$venv" >&2
fi

echo "setup.sh: installing $req" >&2
rm -f "$stamp"
"$py" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
"$py" -c 'import splink, recordlinkage, duckdb, pandas' >&2
echo "$want" > "$stamp"
echo "$py"
