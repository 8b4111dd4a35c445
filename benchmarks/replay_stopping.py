"""When a finished run would have stopped with another ``training.min_improvement`` or
``training.final_min_improvement``.

The stopping and cutting rules (``avf.stopping``) read only the validation history, so a
run's ``metrics.jsonl`` can be replayed under other thresholds up to the first epoch where the
replayed rules decide differently. Where that first difference is an earlier stop, the replay
says how many epochs and how much training time the setting would have saved and how much
validation score it would have given up; where it is a cut at another epoch, the two runs part
ways there and the replay says so instead of guessing.

    python benchmarks/replay_stopping.py runs/musedata_srnn_*_vseed_seed* --min-improvement 1e-3 \
        --out benchmarks/results/replay_stopping_musedata.json
    python benchmarks/replay_stopping.py runs/*_vseed_seed* --final-min-improvement 1e-4
    python benchmarks/replay_stopping.py runs/*_vseed_seed* --plateau-stop-without-gain

``final_min_improvement`` changes only the last learning-rate stage and
``plateau_stop_without_gain`` only turns a cut into a stop, so under them no cut can move and
every replay runs to its end: its earlier stop is exactly what the setting would do.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from avf.config import load_config
from avf.stopping import cut_due, stop_reason_of
from avf.training import TrainConfig


def decisions(history: list[dict[str, Any]], cfg: TrainConfig) -> list[tuple[int, bool, bool]]:
    """``(epoch, cut, stop)`` at each validating epoch, as the trainer's own rules decide them
    after appending that epoch's record, taking the recorded cuts of earlier epochs as given."""
    out = []
    for k, record in enumerate(history):
        if "valid_free_energy" not in record:
            continue
        seen = [*history[:k], {key: v for key, v in record.items() if key != "lr_cut"}]
        seen[-1]["lr_cut"] = cut = cut_due(seen, cfg)
        out.append((record["epoch"], cut, stop_reason_of(seen, cfg) is not None))
    return out


def replay(run_dir: Path, min_improvement: float | None = None,
           final_min_improvement: float | None = None,
           stop_without_gain: bool | None = None) -> dict[str, Any]:
    """The replayed stop of one run, next to its recorded end; a setting left ``None`` is the
    run's own."""
    for name in ("config.toml", "metrics.jsonl"):
        if not (run_dir / name).is_file():
            raise SystemExit(f"replay_stopping.py: {run_dir / name} not found; is {run_dir} a "
                             "run directory written by avf train?")
    cfg = load_config(run_dir / "config.toml").training
    overrides = {"min_improvement": min_improvement,
                 "final_min_improvement": final_min_improvement,
                 "plateau_stop_without_gain": stop_without_gain}
    other = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    try:
        other.check()  # the trainer's own rules for these settings, with its messages
    except ValueError as err:
        raise SystemExit(f"replay_stopping.py: {run_dir}: {err}") from None
    history = [json.loads(line) for line in
               (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
    if not history:
        raise SystemExit(f"replay_stopping.py: {run_dir}/metrics.jsonl is empty")
    recorded = decisions(history, cfg)
    cut_epochs = {r["epoch"] for r in history if r.get("lr_cut")}
    mismatch = [e for e, cut, _ in recorded if cut != (e in cut_epochs)]
    if mismatch:
        raise SystemExit(f"replay_stopping.py: {run_dir}: replaying the run's own settings does "
                         f"not give its recorded cuts (first at epoch {mismatch[0]}); was it "
                         "resumed with other settings?")
    last = history[-1]
    row: dict[str, Any] = {
        "run": run_dir.name, "min_improvement": other.min_improvement,
        "final_min_improvement": other.final_min_improvement,
        "plateau_stop_without_gain": other.plateau_stop_without_gain,
        "recorded_end_epoch": last["epoch"], "recorded_wall_min": last["wall_time"] / 60,
        "recorded_end_by_rule": bool(recorded) and recorded[-1][0] == last["epoch"]
        and recorded[-1][2],
        "recorded_best_valid": min(r["valid_free_energy"] for r in history
                                   if "valid_free_energy" in r),
        "replay_stop_epoch": None, "diverges_at_epoch": None, "stages": stages(history)}
    for (epoch, cut, stop), (_, old_cut, old_stop) in zip(
            decisions(history, other), recorded, strict=True):
        if stop and not old_stop:  # the run ends here, whatever else the rules decide
            upto = [r for r in history if r["epoch"] <= epoch]
            row.update(replay_stop_epoch=epoch, replay_wall_min=upto[-1]["wall_time"] / 60,
                       replay_best_valid=min(r["valid_free_energy"] for r in upto
                                             if "valid_free_energy" in r))
            row["forfeited_valid"] = row["replay_best_valid"] - row["recorded_best_valid"]
            break
        if cut != old_cut:
            row["diverges_at_epoch"] = epoch
            break
    return row


def stages(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's learning-rate stages as recorded (the first up to and including its first cut
    epoch, and so on): epochs, training minutes, and how much each lowered the best
    validation score so far (``None`` for the first)."""
    ends = [i + 1 for i, r in enumerate(history) if r.get("lr_cut")] + [len(history)]
    out, start = [], 0
    for end in ends:
        if end <= start:
            continue
        before = [r["valid_free_energy"] for r in history[:start] if "valid_free_energy" in r]
        upto = [r["valid_free_energy"] for r in history[:end] if "valid_free_energy" in r]
        out.append({"epochs": end - start,
                    "wall_min": (history[end - 1]["wall_time"]
                                 - (history[start - 1]["wall_time"] if start else 0.0)) / 60,
                    "gain": min(before) - min(upto) if before and upto else None})
        start = end
    return out


def stage_table(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["stages"]) for r in rows)
    head = " | ".join(f"stage {k + 1}" for k in range(width))
    lines = [f"| run | {head} |", "| --- |" + " ---: |" * width]
    for r in rows:
        cells = [f"{st['epochs']} ep, {st['wall_min']:.1f} min"
                 + ("" if st["gain"] is None else f", −{st['gain']:.4f}" if st["gain"] > 0
                    else ", no new best") for st in r["stages"]]
        cells += ["–"] * (width - len(cells))
        lines.append(f"| {r['run']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the replayed runs: how many stop earlier or part ways at a cut, the
    training time saved by the earlier stops, and the validation score they give up."""
    early = [r for r in rows if r["replay_stop_epoch"] is not None]
    given_up = [r["forfeited_valid"] for r in early]
    saved = sum(r["recorded_wall_min"] - r["replay_wall_min"] for r in early)
    return {"runs": len(rows), "stop_earlier": len(early),
            "cut_moves": sum(r["diverges_at_epoch"] is not None for r in rows),
            "recorded_wall_min": sum(r["recorded_wall_min"] for r in rows),
            "saved_wall_min": saved,
            "saved_epochs": sum(r["recorded_end_epoch"] - r["replay_stop_epoch"] for r in early),
            "max_forfeited_valid": max(given_up, default=0.0),
            "mean_forfeited_valid": sum(given_up) / len(rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--min-improvement", type=float,
                        help="the training.min_improvement to replay (nats/step; default: "
                             "each run's own)")
    parser.add_argument("--final-min-improvement", type=float,
                        help="the training.final_min_improvement to replay: the threshold of "
                             "the last learning-rate stage only (default: each run's own)")
    parser.add_argument("--plateau-stop-without-gain", action="store_true", default=None,
                        help="replay training.plateau_stop_without_gain = true: a plateau after "
                             "a cut that found no new best ends the run")
    parser.add_argument("--stages", action="store_true",
                        help="also print each run's learning-rate stages: epochs, minutes and "
                             "how much each lowered the best validation score")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if (args.min_improvement is None and args.final_min_improvement is None
            and args.plateau_stop_without_gain is None):
        raise SystemExit("replay_stopping.py: give at least one of --min-improvement, "
                         "--final-min-improvement and --plateau-stop-without-gain")
    rows = [replay(path, args.min_improvement, args.final_min_improvement,
                   args.plateau_stop_without_gain) for path in args.runs]
    print(markdown(rows))
    if args.stages:
        print("\n" + stage_table(rows))
    total = summary(rows)
    print(f"\n{total['stop_earlier']} of {total['runs']} runs stop earlier, "
          f"{total['cut_moves']} part ways at a cut; the earlier stops save "
          f"{total['saved_epochs']} epochs, {total['saved_wall_min']:.1f} of "
          f"{total['recorded_wall_min']:.1f} min of training, and give up at most "
          f"{total['max_forfeited_valid']:.4f} of validation score "
          f"({total['mean_forfeited_valid']:.5f} a run on average)")
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows, "summary": total}, indent=2) + "\n",
                            encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
