"""The ``avf`` command: train from a config file (or sweep configs over seeds), evaluate, plot
or list runs, run the demo.

A run directory is self-describing: ``config.toml`` (the resolved config) plus checkpoints, so
``avf evaluate RUN_DIR`` and ``avf plot RUN_DIR`` rebuild everything from it. Real data are not
part of a run: they come from ``--data-dir``, else ``$AVF_DATA_DIR``, else the default folder.
Mistakes in configs and paths, and a missing optional dependency, are reported as one line on
stderr with exit status 2; ``--debug`` shows the traceback instead. Ctrl-C ends any command
with status 130 and, for ``avf train``, says which epoch the run directory's checkpoint holds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from avf import __version__
from avf.cli.data import manage_data
from avf.cli.evaluate import evaluate_run
from avf.cli.overview import list_runs
from avf.cli.plot import plot_run
from avf.cli.sweep import DEFAULT_NAME, sweep
from avf.cli.train import train
from avf.data.file_splits import SPLITS
from avf.runs import CHECKPOINTS, WEIGHTS
from avf.validation import NonFiniteError

USER_ERRORS = (OSError, ValueError, TypeError, ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``avf`` console script; returns the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if extra and args.command != "demo":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "train":
            return train(args)
        if args.command == "evaluate":
            return evaluate_run(args)
        if args.command == "plot":
            return plot_run(args)
        if args.command == "data":
            return manage_data(args)
        if args.command == "runs":
            return list_runs(args)
        if args.command == "sweep":
            return sweep(args)
        return demo(args, extra)
    except NonFiniteError as err:
        if args.debug:
            raise
        _error(err)
        return 1
    except USER_ERRORS as err:
        if args.debug:
            raise
        _error(err)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("avf: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avf", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version",
                        version=f"avf {__version__} (torch {torch.__version__})")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", parents=[common], help="train from a TOML config")
    p.add_argument("config", type=Path, help="experiment config (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. training.epochs=3 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="where to write the run (default runs/NAME)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's device)")
    p.add_argument("--epochs", type=int, help="shortcut for --set training.epochs=N")
    p.add_argument("--seed", type=int, metavar="N", help="shortcut for --set seed=N --set "
                   "training.seed=N: another seed of the same experiment (data.seed, which "
                   "draws the data, stays)")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop after the epoch that ends past this many minutes, with a "
                   "checkpoint; the same command resumes")
    p.add_argument("--dry-run", action="store_true",
                   help="build the data and networks, check a resume, try one training "
                   "batch, print the resolved config (defaults filled in), the parameter "
                   "counts and an epoch's estimated time, and write nothing")
    _data_dir_option(p)

    p = sub.add_parser("evaluate", parents=[common], help="score trained runs")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="run_dir",
                   help="directories written by `avf train`, scored one after the other")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    _weights_option(p)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's device)")
    p.add_argument("--samples", type=int, default=1, help="samples per step for the estimate")
    p.add_argument("--batch-size", type=int, metavar="N", help="sequences filtered together "
                   "(default: the run's training batch size; larger is faster on a GPU and "
                   "does not change the score's expectation)")
    p.add_argument("--particles", type=int, default=0, metavar="N",
                   help="also estimate -log p(x) per step with a particle filter of N "
                   "particles that proposes from the run's inference (0: off; cost grows "
                   "as batch size x N)")
    _dataset_option(p, "score", "written to eval_<split>_on_<name>.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")
    _data_dir_option(p)

    p = sub.add_parser("plot", parents=[common], help="learning curves, free energy per "
                       "inference iteration, and one sequence of a run")
    p.add_argument("run_dir", type=Path, help="a directory written by `avf train`")
    p.add_argument("--out", type=Path, help="where to write the PNGs (default RUN_DIR/plots)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--song", type=int, default=0, metavar="N",
                   help="which sequence of the split to draw (default 0)")
    p.add_argument("--sequences", type=int, default=16, metavar="N",
                   help="sequences behind the per-iteration free energy (default 16)")
    p.add_argument("--max-steps", type=int, default=400, metavar="T",
                   help="draw at most the first T steps of the sequence (0: all; default 400)")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    _weights_option(p)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    _dataset_option(p, "draw", "pictures to RUN_DIR/plots_on_<name> unless --out")
    _data_dir_option(p)

    p = sub.add_parser("runs", parents=[common], help="where run directories stand: finished "
                       "or resumable, best validation, test score")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="run directories, or folders of them (default: runs)")
    p.add_argument("--json", action="store_true", help="the rows as JSON instead of a table")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also draw the runs' validation "
                   "and training curves side by side into this file")

    p = sub.add_parser("sweep", parents=[common], help="train configs over seeds, a few runs "
                       "at a time, and score them; the same command resumes")
    p.add_argument("configs", nargs="+", type=Path, metavar="config",
                   help="experiment configs (TOML); every one runs with every seed")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0-4 or 0,2,5 (default 0); each "
                   "sets seed and training.seed, as `avf train --seed` does")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value in every run (repeatable)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs trained at the same time (default 1)")
    p.add_argument("--threads", type=int, metavar="N", help="threads per run (default: the "
                   "machine's cores divided by --jobs)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help="where the run directories go (default runs)")
    p.add_argument("--name", default=DEFAULT_NAME, help="run directory name; placeholders "
                   "{config} (the config file's stem) and {seed} (default %(default)s)")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="each `avf train` stops after the epoch that ends past this; the run "
                   "stays resumable and unscored until the sweep is run again")
    p.add_argument("--eval-batch-size", type=int, metavar="N",
                   help="sequences scored together by `avf evaluate` (default: the run's "
                   "training batch size)")
    p.add_argument("--no-evaluate", action="store_true", help="train only, do not score")
    p.add_argument("--progress-every", type=float, default=10.0, metavar="MINUTES",
                   help="every this many minutes, one line per run in training: its epoch, "
                   "best validation and learning rate (0: never; default %(default)g)")
    p.add_argument("--dry-run", action="store_true", help="list the runs, where each stands "
                   "and what the sweep would do with it; run nothing")
    _data_dir_option(p)

    # no -h of its own: ``avf demo --help`` reaches the demo's parser with the other options
    p = sub.add_parser("demo", parents=[common], add_help=False,
                       help="the demo (options: avf demo --help)")
    p.add_argument("--quick", action="store_true", help="a short version")
    p.add_argument("--out", help="output directory")

    p = sub.add_parser("data", parents=[common], help="list, verify or download data files; "
                       "import MIDI files")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, text in (("list", "known data files and whether they are here"),
                       ("verify", "check the files here against their SHA-256"),
                       ("download", "fetch data files (all, or the NAMEs given)")):
        q = actions.add_parser(name, parents=[common], help=text)
        if name == "download":
            q.add_argument("names", nargs="*", metavar="NAME",
                           help="a data set (jsb, nottingham, musedata, piano) or a file name")
        q.add_argument("--data-dir", help="data directory (default: $AVF_DATA_DIR, else "
                       "~/.cache/avf)")
    q = actions.add_parser("midi", parents=[common], help="turn a folder of your own MIDI files "
                           "into a music data set (JSON) for [data] dataset")
    q.add_argument("folder", help="MIDI files (.mid, .midi), searched recursively; subfolders "
                   "train/, valid/, test/ are used as the split when present")
    q.add_argument("--out", required=True, help="JSON file to write")
    q.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of the songs held out for validation (default 0.1)")
    q.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of the songs held out for testing (default 0.1)")
    q.add_argument("--seed", type=int, default=0, help="draws the random split (default 0)")
    q.add_argument("--steps-per-quarter", type=int, default=1,
                   help="time steps per quarter note (default 1, as in the four sets)")
    q.add_argument("--drums", action="store_true", help="keep channel 10 (drums)")
    q.add_argument("--drop-out-of-range", action="store_true",
                   help="skip notes off the 88 piano keys instead of stopping with an error")
    q.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return parser


def _weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", choices=WEIGHTS, default="average",
                   help="with training.ema_decay, score the weight average (default; the weights "
                   "validation chose by) or the raw trained weights; without it both are raw")


def _dataset_option(p: argparse.ArgumentParser, verb: str, where: str) -> None:
    p.add_argument("--dataset", metavar="NAME_OR_PATH",
                   help=f"{verb} another data set of the run's kind instead of its own (music: "
                   "jsb, nottingham, musedata, piano or a file, such as one from `avf data "
                   f"midi`; video: smmnist or kth); {where}")


def _data_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory for real data sets (default: "
                   "$AVF_DATA_DIR, else ~/.cache/avf)")


def demo(args: argparse.Namespace, extra: list[str]) -> int:
    """``avf demo``: the options after ``demo`` go to :func:`avf.demo.main` as they are."""
    from avf.demo import main as demo_main

    argv = (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
    result = demo_main([*argv, *extra])
    return int(result) if isinstance(result, int) else 0


def _error(err: BaseException) -> None:
    text = " ".join(str(err).split()) or type(err).__name__
    print(f"avf: error: {text}", file=sys.stderr)
