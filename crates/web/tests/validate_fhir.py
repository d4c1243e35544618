"""Validates every *.json file in a directory as a FHIR R4 resource with the
independent `fhir.resources` package (R4 models, version 6.5.x).

Usage: python3 validate_fhir.py DIR   -> exit 0 when all are valid.
"""
import json
import pathlib
import sys

from fhir.resources import construct_fhir_element


def main() -> int:
    files = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
    bad = 0
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        try:
            construct_fhir_element(data["resourceType"], data)
        except Exception as e:  # noqa: BLE001 - report every failure
            bad += 1
            print(f"INVALID {f.name}: {e}")
    print(f"validated {len(files)} resources, {bad} invalid")
    return 1 if bad or not files else 0


if __name__ == "__main__":
    sys.exit(main())
