"""A floor for the music tables: each key on with its training-set frequency, independently.

The model has no memory and no latent variable: p(x_t) = Π_k Bernoulli(x_t,k; f_k), where f_k
is key k's share of training steps on (clipped to [1e-4, 1 − 1e-4] so that a key never played
in training does not cost infinity). Its test negative log-likelihood, in nats per time step
summed over the 88 keys, is what a sequence model scores when it learns the key frequencies and
nothing else, so a deep model near this number has not learned the music's structure.

    python benchmarks/music_key_frequencies.py --data-dir ../shared/data \
        --json benchmarks/results/music_key_frequencies.json

The micro average divides the total over all test steps by their number, the macro average
averages each song's per-step mean (as in ``avf evaluate``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from avf.data.music import FILE_NAMES, load_music
from avf.evaluation import ScoreAccumulator

CLIP = 1e-4


def key_frequency_scores(data: dict[str, list[torch.Tensor]], split: str = "test") -> dict:
    """Micro and macro test NLL (nats per step) of independent keys at training frequencies.

    The averages come from avf's own :class:`~avf.evaluation.ScoreAccumulator`, so they are
    defined exactly as in ``avf evaluate``; with no latent variable the KL is 0 and the free
    energy is the negative log-likelihood.
    """
    train = torch.cat(data["train"]).double()
    freq = train.mean(0).clamp(CLIP, 1 - CLIP)
    log_on, log_off = freq.log(), (1 - freq).log()
    scores = ScoreAccumulator()
    for song in data[split]:
        roll = song.double()
        nll = -(roll * log_on + (1 - roll) * log_off).sum(-1)[None]  # [1, T]
        scores.add(nll, nll, torch.zeros_like(nll), nll[..., None], torch.ones_like(nll))
    score = scores.result()
    return {
        "micro": score.free_energy,
        "macro": score.macro_free_energy,
        "songs": score.sequences,
        "steps": score.steps,
        "keys_never_on_in_training": int((train.sum(0) == 0).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder with polyphonic/ (or AVF_DATA_DIR)")
    parser.add_argument("--sets", nargs="+", default=list(FILE_NAMES),
                        help=f"data set names ({', '.join(FILE_NAMES)}) or files (.mat, .json, …)")
    parser.add_argument("--split", default="test", choices=("valid", "test"))
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for name in args.sets:
        scores = key_frequency_scores(load_music(name, args.data_dir), args.split)
        rows.append({"set": name, "split": args.split, **scores})
    print(f"| set | {args.split} songs | steps | micro | macro | keys never on in training |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['set']} | {r['songs']} | {r['steps']} | {r['micro']:.4f} | {r['macro']:.4f} "
              f"| {r['keys_never_on_in_training']} |")
    wall = time.perf_counter() - start
    print(f"({wall:.1f} s on {platform.node()})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "clip": CLIP, "wall_s": wall,
                                         "machine": platform.platform()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
