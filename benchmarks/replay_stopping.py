"""When a finished run would have stopped with ``training.min_improvement`` set.

The stopping and cutting rules read only the validation history, so a run's ``metrics.jsonl``
can be replayed under a different ``min_improvement`` up to the first epoch where the replayed
rules decide differently. Where that first difference is an earlier stop, the replay says how
many epochs and how much training time the setting would have saved and how much validation
score it would have given up; where it is a cut at another epoch, the two runs part ways there
and the replay says so instead of guessing.

    python benchmarks/replay_stopping.py runs/musedata_srnn_*_vseed_seed* --min-improvement 1e-3 \
        --out benchmarks/results/replay_stopping_musedata.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from avf.config import load_config
from avf.training import TrainConfig, cut_due, stop_reason_of


def decisions(history: list[dict[str, Any]], cfg: TrainConfig, min_improvement: float
              ) -> list[tuple[int, bool, bool]]:
    """``(epoch, cut, stop)`` at each validating epoch, as the trainer's own rules decide them
    after appending that epoch's record, taking the recorded cuts of earlier epochs as given."""
    cfg = replace(cfg, min_improvement=min_improvement)
    out = []
    for k, record in enumerate(history):
        if "valid_free_energy" not in record:
            continue
        seen = [*history[:k], {key: v for key, v in record.items() if key != "lr_cut"}]
        seen[-1]["lr_cut"] = cut = cut_due(seen, cfg)
        out.append((record["epoch"], cut, stop_reason_of(seen, cfg) is not None))
    return out


def replay(run_dir: Path, min_improvement: float) -> dict[str, Any]:
    """The replayed stop of one run, next to its recorded end."""
    cfg = load_config(run_dir / "config.toml").training
    history = [json.loads(line) for line in
               (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
    if not history:
        raise SystemExit(f"replay_stopping.py: {run_dir}/metrics.jsonl is empty")
    recorded = decisions(history, cfg, cfg.min_improvement)
    cut_epochs = {r["epoch"] for r in history if r.get("lr_cut")}
    mismatch = [e for e, cut, _ in recorded if cut != (e in cut_epochs)]
    if mismatch:
        raise SystemExit(f"replay_stopping.py: {run_dir}: replaying the run's own settings does "
                         f"not give its recorded cuts (first at epoch {mismatch[0]}); was it "
                         "resumed with other settings?")
    last = history[-1]
    row: dict[str, Any] = {
        "run": run_dir.name, "min_improvement": min_improvement,
        "recorded_end_epoch": last["epoch"], "recorded_wall_min": last["wall_time"] / 60,
        "recorded_end_by_rule": bool(recorded) and recorded[-1][0] == last["epoch"]
        and recorded[-1][2],
        "recorded_best_valid": min(r["valid_free_energy"] for r in history
                                   if "valid_free_energy" in r),
        "replay_stop_epoch": None, "diverges_at_epoch": None}
    for (epoch, cut, stop), (_, old_cut, old_stop) in zip(
            decisions(history, cfg, min_improvement), recorded, strict=True):
        if cut != old_cut:
            row["diverges_at_epoch"] = epoch
            break
        if stop and not old_stop:
            upto = [r for r in history if r["epoch"] <= epoch]
            row.update(replay_stop_epoch=epoch, replay_wall_min=upto[-1]["wall_time"] / 60,
                       replay_best_valid=min(r["valid_free_energy"] for r in upto
                                             if "valid_free_energy" in r))
            row["forfeited_valid"] = row["replay_best_valid"] - row["recorded_best_valid"]
            break
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | ended (by rule) | train wall | best valid | replay stops at | train wall "
             "| best valid then | given up |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: |"]
    for r in rows:
        by_rule = "yes" if r["recorded_end_by_rule"] else "no"
        head = (f"| {r['run']} | {r['recorded_end_epoch']} ({by_rule}) | "
                f"{r['recorded_wall_min']:.1f} min | {r['recorded_best_valid']:.4f} |")
        if r["replay_stop_epoch"] is not None:
            lines.append(f"{head} {r['replay_stop_epoch']} | {r['replay_wall_min']:.1f} min | "
                         f"{r['replay_best_valid']:.4f} | {r['forfeited_valid']:.4f} |")
        elif r["diverges_at_epoch"] is not None:
            lines.append(f"{head} – (a cut moves to epoch {r['diverges_at_epoch']}) | – | – | – |")
        else:
            lines.append(f"{head} no earlier stop | – | – | – |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--min-improvement", type=float, required=True,
                        help="the training.min_improvement to replay (nats/step)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.min_improvement < 0:
        raise SystemExit("replay_stopping.py: --min-improvement must be >= 0")
    rows = [replay(path, args.min_improvement) for path in args.runs]
    print(markdown(rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
