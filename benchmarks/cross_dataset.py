"""Trained runs scored on other data sets of their kind: does a method's lead carry over?

A direct encoder learns a map from the data it was trained on; AVF's inference model is fed the
free energy's gradient, which it gets for any data, so it may hold up better on data unlike its
training set. This scores each run on its own test split (``eval_test.json``, as written by
``avf evaluate``) and on the test splits of the data sets named, through
``avf evaluate --dataset`` (reports kept as ``eval_test_on_<name>.json``; a report already
there for the same checkpoint epoch is reused), then pairs the methods seed by seed:

    python benchmarks/cross_dataset.py \\
        runs/musedata_srnn_{baseline_tuned,avf_k1_x_tuned_ln}_vseed_drop0.5_seed{0,1,2,3,4} \\
        --datasets jsb,nottingham,piano --data-dir ../shared/data \\
        --out benchmarks/results/cross_dataset_musedata.json

The reference of the pairs is the baseline encoder (``--reference`` names another method).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from seed_summary import method_record, table  # this folder, beside the script

from avf.cli import main as avf_main
from avf.runs import dataset_label, describe_inference, run_config
from avf.training import BEST

AVERAGES = {"micro": "free_energy", "macro": "macro_free_energy"}


def method_name(inference: str) -> str:
    """The method as BENCHMARKS names it: "baseline encoder", "AVF K=1 + x_t, layernorm"."""
    return "baseline encoder" if inference == "baseline" else inference.replace(
        "iterative", "AVF", 1)


def report_for(run: Path, best_epoch: int, dataset: str | None, data_dir: str | None,
               batch_size: int) -> dict[str, Any]:
    """The run's test report on ``dataset`` (its own for ``None``), scored here if missing or
    not of ``best.pt``'s epoch ``best_epoch``."""
    name = "eval_test.json" if dataset is None else f"eval_test_on_{dataset_label(dataset)}.json"
    path = run / name
    report = json.loads(path.read_text()) if path.is_file() else None
    if report is not None and report["epoch"] == best_epoch:
        return report
    if dataset is None:
        raise SystemExit(f"cross_dataset.py: {run} has no current eval_test.json; run "
                         f"`avf evaluate {run} --data-dir ...` first")
    args = ["evaluate", str(run), "--dataset", dataset, "--batch-size", str(batch_size),
            "--no-progress", *(["--data-dir", data_dir] if data_dir else [])]
    started = time.perf_counter()
    if avf_main(args) != 0:
        raise SystemExit(f"cross_dataset.py: `avf {' '.join(args)}` failed")
    print(f"  ({time.perf_counter() - started:.0f} s)")
    return json.loads(path.read_text())


def summarise(rows: list[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Per data set and method: ``seed_summary``'s record (``set`` is the data set), with the
    spread over all of the method's seeds and the paired difference from ``reference`` over
    the seeds both have."""
    records = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        by_method: dict[str, dict[int, dict[str, Any]]] = {}
        for r in rows:
            if r["dataset"] == dataset:
                by_method.setdefault(r["method"], {})[r["seed"]] = r
        if reference not in by_method:
            raise SystemExit(f"cross_dataset.py: no {reference!r} run among those given")
        base = by_method[reference]
        for method, seeds in by_method.items():
            order = sorted(seeds)
            shared = [s for s in order if s in base]
            scores = {a: [seeds[s][key] for s in order] for a, key in AVERAGES.items()}
            pairs = None
            if method != reference and shared:
                pairs = {a: ([seeds[s][key] for s in shared], [base[s][key] for s in shared])
                         for a, key in AVERAGES.items()}
            records.append(method_record(dataset, method, [seeds[s]["run"] for s in order],
                                         scores, pairs))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, scored on test")
    parser.add_argument("--datasets", required=True,
                        help="comma-separated data sets to score on besides each run's own")
    parser.add_argument("--data-dir", help="data directory (default: $AVF_DATA_DIR, ...)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N",
                        help="sequences scored together (does not change the expectation)")
    parser.add_argument("--reference", default="baseline encoder",
                        help="the method the others are paired with (default: baseline encoder)")
    parser.add_argument("--out", type=Path, help="write the rows and the summary as JSON")
    args = parser.parse_args(argv)
    others = [d.strip() for d in args.datasets.split(",") if d.strip()]
    rows = []
    for run in args.runs:
        cfg = run_config(run)
        best_epoch = int(torch.load(run / BEST, map_location="cpu", weights_only=True)["epoch"])
        for dataset in [None, *others]:
            if dataset == cfg.data.dataset:
                continue
            report = report_for(run, best_epoch, dataset, args.data_dir, args.batch_size)
            rows.append({"run": run.name, "seed": cfg.seed,
                         "method": method_name(describe_inference(cfg)),
                         "trained_on": cfg.data.dataset,
                         "dataset": dataset or cfg.data.dataset,
                         "epoch": report["epoch"], "steps": report["steps"],
                         **{key: report[key] for key in AVERAGES.values()}})
    records = summarise(rows, args.reference)
    print(table(records, args.reference, label="test songs of"))
    if args.out is not None:
        payload = {"machine": platform.platform(), "runs": [str(r) for r in args.runs],
                   "reference": args.reference, "rows": rows, "summary": records}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
