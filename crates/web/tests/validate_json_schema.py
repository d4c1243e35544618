"""Validates JSON instances against a JSON Schema (draft 2020-12) with the
independent `jsonschema` package. Usage: validate_json_schema.py SCHEMA FILE...
Prints one line per invalid instance and exits 1 if any is invalid."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1], encoding="utf-8"))
validator = jsonschema.Draft202012Validator(
    schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
bad = 0
for path in sys.argv[2:]:
    instance = json.load(open(path, encoding="utf-8"))
    for err in validator.iter_errors(instance):
        bad += 1
        print(f"{path}: {'/'.join(map(str, err.absolute_path))}: {err.message}")
print(f"checked {len(sys.argv) - 2} instances, {bad} errors")
sys.exit(1 if bad else 0)
