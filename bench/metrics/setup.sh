#!/usr/bin/env bash
# Creates (once) the Python venv with DuckDB used by `yigong bench-metrics`.
# The last line on stdout is the venv's python.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${YIGONG_DUCKDB_VENV:-$HOME/.cache/yigong-duckdb-venv}"
if ! "$venv/bin/python" -c "import duckdb" >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
fi
echo "$venv/bin/python"
