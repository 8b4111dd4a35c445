"""Test free energy per step by position in the song: where in long sequences the nats go.

The micro average weights every step the same, so the late steps of long songs dominate it;
the macro average weights every song the same. This splits one run's score by the step index
t into bins, so the two can be told apart, and (``--chunk L``) also scores the songs cut into
independent L-step pieces, each filtered from a fresh state: if whole songs were worse than
the chunks at late positions, the recurrent state would be drifting on sequences far longer
than the training windows.

    python benchmarks/free_energy_by_position.py runs/musedata_srnn_avf_k1_x_fast_plateau_drop0.3 \\
        --data-dir ../shared/data --chunk 100 --json benchmarks/results/position_musedata.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from avf.data import Sequences
from avf.filtering import filter_sequences
from avf.runs import restore, run_config, split_data

EDGES = (0, 5, 25, 50, 100, 200, 400, 800)


def by_position(model: nn.Module, inference: nn.Module, data: Sequences, starts: Tensor,
                edges: tuple[int, ...], batch_size: int) -> list[dict[str, float]]:
    """Free energy per step in each bin [edges[i], edges[i+1]) of song position; ``starts``
    gives each sequence's first step's position in its song."""
    bounds = [*edges, 2**62]
    total = torch.zeros(len(edges), dtype=torch.float64)
    count = torch.zeros(len(edges), dtype=torch.float64)
    model.eval()
    inference.eval()
    first = 0
    for x, mask in data.batches(batch_size):  # in order, each cut to its longest sequence
        with torch.no_grad():
            out = filter_sequences(model, inference, x, mask)
        position = starts[first:first + len(x), None] + torch.arange(x.shape[1])[None]
        first += len(x)
        for i in range(len(edges)):
            inside = (position >= bounds[i]) & (position < bounds[i + 1])
            total[i] += (out.free_energy.double() * inside).sum()
            count[i] += (out.mask.double() * inside).sum()
    return [{"from": bounds[i], "to": bounds[i + 1] if i + 1 < len(edges) else None,
             "steps": int(count[i]), "free_energy": float(total[i] / count[i])}
            for i in range(len(edges)) if count[i] > 0]


def chunked(data: Sequences, length: int) -> tuple[Sequences, Tensor]:
    """Every sequence cut into pieces of ``length`` steps (the last may be shorter)."""
    pieces, starts = [], []
    for i in range(len(data)):
        steps = int(data.mask[i].sum())
        for start in range(0, steps, length):
            pieces.append(data.x[i, start:min(start + length, steps)])
            starts.append(start)
    return Sequences.from_list(pieces), torch.tensor(starts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--chunk", type=int, default=0, metavar="L",
                        help="also score the songs cut into independent L-step pieces")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the table here as JSON")
    args = parser.parse_args(argv)
    cfg = run_config(args.run_dir)
    model, inference, path, ckpt = restore(cfg, args.run_dir, "best")
    data = split_data(cfg, args.split, args.data_dir)
    torch.manual_seed(cfg.seed)
    result = {"run": str(args.run_dir), "checkpoint": path.name, "epoch": int(ckpt["epoch"]),
              "split": args.split,
              "whole": by_position(model, inference, data, torch.zeros(len(data), dtype=torch.long),
                                   EDGES, args.batch_size)}
    if args.chunk > 0:
        pieces, starts = chunked(data, args.chunk)
        torch.manual_seed(cfg.seed)
        result[f"chunks_of_{args.chunk}"] = by_position(model, inference, pieces, starts, EDGES,
                                                        4 * args.batch_size)
    print(f"{args.run_dir} ({path.name}, epoch {result['epoch']}), {args.split} split, "
          "free energy per step by position t in the song")
    header = "| t | steps | whole songs |" + (f" chunks of {args.chunk} |" if args.chunk else "")
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    chunks = result.get(f"chunks_of_{args.chunk}", [])
    for i, row in enumerate(result["whole"]):
        end = "" if row["to"] is None else row["to"]
        line = f"| {row['from']}–{end} | {row['steps']} | {row['free_energy']:.3f} |"
        if chunks:
            line += f" {chunks[i]['free_energy']:.3f} |"
        print(line)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
