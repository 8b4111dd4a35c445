"""Means over seeds and paired leads, from the run rows that ``runs_table.py`` wrote.

One run per cell says little where seeds differ by 0.2 nats (BENCHMARKS §5.13). This reads the
test scores of named runs from the JSON files in ``benchmarks/results/`` (committed, so the
table can be rebuilt without the run directories) and, for each data set, prints the mean and
standard deviation over seeds of each method and the paired difference (method − reference,
seed by seed) with its standard error: a negative difference means the method is better.

    python benchmarks/seed_summary.py benchmarks/seed_sets/music_tuned.toml \
        --out benchmarks/results/music_seed_summary.json

The spec is TOML: ``reference = "<method>"`` and one ``[[set]]`` table per data set with
``name`` and, per method, the run names in seed order (pairs are formed by position). A set of
runs still in progress says so with ``partial = "<what is missing>"``, which the table and the
JSON carry.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from avf.config import tomllib  # tomli before Python 3.11
from avf.seeds import paired_difference, spread

RESULTS = Path(__file__).resolve().parent / "results"
AVERAGES = {"micro": "test_free_energy", "macro": "test_macro_free_energy"}


def load_rows(folder: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every run row in ``folder``'s JSON files, by run name, with the file it came from (the
    same name can appear in several files: a run scored again, or two runs of one name)."""
    rows: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            continue
        for row in data["rows"]:
            name = row.get("run") if isinstance(row, dict) else None
            if name and row.get("test_free_energy") is not None:
                rows.setdefault(name, []).append((path.name, row))
    return rows


def pick(rows: dict[str, list[tuple[str, dict[str, Any]]]], run: str) -> dict[str, Any]:
    """The row of ``run``; an error where it is missing, or where files disagree on its
    scores, since the summary could not say which one it used."""
    found = rows.get(run)
    if not found:
        raise ValueError(f"no row for run {run!r} in the results JSON")
    first = found[0][1]
    for file, row in found[1:]:
        if any(row.get(k) != first.get(k) for k in AVERAGES.values()):
            raise ValueError(f"run {run!r} has different test scores in {found[0][0]} and "
                             f"{file}; rename one of them")
    return first


def summarise(spec: dict[str, Any], rows: dict[str, list[tuple[str, dict[str, Any]]]]
              ) -> list[dict[str, Any]]:
    """One record per (set, method): per-seed scores, mean, sd and the paired difference."""
    reference = spec.get("reference")
    sets = spec.get("set")
    if not isinstance(reference, str) or not isinstance(sets, list) or not sets:
        raise ValueError("the spec needs reference = \"<method>\" and at least one [[set]]")
    out = []
    for entry in sets:
        name = entry.get("name")
        methods = {k: v for k, v in entry.items() if k != "name"}
        if reference not in methods:
            raise ValueError(f"set {name!r} has no runs for the reference {reference!r}")
        chosen = {run: pick(rows, run) for runs in methods.values() for run in runs}
        for method, runs in methods.items():
            scores = {average: [float(chosen[r][key]) for r in runs]
                      for average, key in AVERAGES.items()}
            pairs = None
            if method != reference:
                ref = {average: [float(chosen[r][key]) for r in methods[reference]]
                       for average, key in AVERAGES.items()}
                n = min(len(runs), len(methods[reference]))  # pairs by position
                pairs = {a: (scores[a][:n], ref[a][:n]) for a in AVERAGES}
            out.append(method_record(name, method, runs, scores, pairs))
    return out


def method_record(name: str, method: str, runs: list[str], scores: dict[str, list[float]],
                  pairs: dict[str, tuple[list[float], list[float]]] | None) -> dict[str, Any]:
    """One method's record in a set: per average, its scores with their spread and, given
    ``pairs`` (the method's and the reference's scores, pair by pair), the paired difference,
    how many pairs the method wins and how many pairs there are."""
    record: dict[str, Any] = {"set": name, "method": method, "runs": runs}
    for average, values in scores.items():
        record[average] = {"scores": values, **spread(values)}
        if pairs is not None:
            mine, ref = pairs[average]
            paired = paired_difference(mine, ref)
            better = paired.pop("better")
            del paired["pairs"]
            record[average].update(paired_difference=paired, pairs_better=better,
                                   pairs=len(mine))
    return record


def table(records: list[dict[str, Any]], reference: str, label: str = "set") -> str:
    """The markdown table of :func:`method_record` records; ``label`` heads the first column."""
    def num(x: float | None, digits: int = 3) -> str:
        return "–" if x is None else f"{x:.{digits}f}"

    lines = [f"| {label} | method | seeds | micro mean ± sd | macro mean ± sd | "
             f"micro − {reference} ± se | better in (micro / macro) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in records:
        micro, macro = r["micro"], r["macro"]
        diff = micro.get("paired_difference")
        lead = "–" if diff is None else f"{num(diff['mean'])} ± {num(diff['se'])}"
        better = ("–" if diff is None else
                  f"{micro['pairs_better']} / {macro['pairs_better']} of {micro['pairs']}")
        lines.append(f"| {r['set']} | {r['method']} | {micro['n']} | {num(micro['mean'])} ± "
                     f"{num(micro['sd'])} | {num(macro['mean'])} ± {num(macro['sd'])} | {lead} "
                     f"| {better} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="TOML: the reference method and the runs per set")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of runs_table.py JSON files (default benchmarks/results)")
    parser.add_argument("--out", type=Path, help="write the records as JSON here")
    args = parser.parse_args(argv)
    spec = tomllib.loads(args.spec.read_text(encoding="utf-8"))
    try:
        records = summarise(spec, load_rows(args.results))
    except ValueError as err:
        raise SystemExit(f"seed_summary.py: {err}") from err
    partial = spec.get("partial")
    print(table(records, spec["reference"]))
    if partial:
        print(f"partial: {partial}")
    if args.out is not None:
        payload = {"spec": str(args.spec), "reference": spec["reference"], "records": records,
                   **({"partial": partial} if partial else {})}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
