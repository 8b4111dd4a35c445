"""``avf sweep``: several configs over several seeds, a few runs at a time, resumable.

Comparing two methods honestly takes five seeds of each (BENCHMARKS §5.13): ten runs of an
hour, more than one sitting. This trains every config × seed as its own ``avf train``
process, ``--jobs`` at a time with the cores split between them, scores each finished run on
the test split with ``avf evaluate``, and prints where every run stands. It keeps no state of
its own: what is done is read from the run directories (as ``avf runs`` does), so the same
command, run again after an interruption or in a later session, resumes the unfinished runs
from their checkpoints, scores what is not scored yet and skips the rest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avf.cli.overview import FIELDS, aligned, run_summary, summary_or_error, table, training_row
from avf.run_lock import training_process
from avf.runs import CONFIG_NAME
from avf.seeds import paired_difference, spread

DEFAULT_NAME = "{config}_seed{seed}"
LOG_NAME = "sweep.log"


@dataclass(frozen=True)
class Job:
    """One run of the sweep: a config, a seed and the directory the run lives in."""

    config: Path
    seed: int
    run_dir: Path


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,2,5"`` or a mix (``"0-2,7"``) as a list of distinct seeds, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            span = range(int(first), int(last) + 1) if dash else [int(first)]
        except ValueError:
            raise ValueError(f"--seeds: {part.strip()!r} is not a seed or a range like 0-4") \
                from None
        if not span:
            raise ValueError(f"--seeds: the range {part.strip()!r} is empty")
        seeds += [s for s in span if s not in seeds]
    return seeds


def plan_jobs(configs: list[Path], seeds: list[int], runs_dir: Path,
              name: str = DEFAULT_NAME) -> list[Job]:
    """Every config × seed, seed by seed (so the runs of one seed finish together), each with
    the run directory ``runs_dir / name`` (placeholders ``{config}``: the file's stem, and
    ``{seed}``). Two jobs may not share a directory."""
    for config in configs:
        if not config.is_file():
            raise FileNotFoundError(f"config file {config} not found")
    jobs = []
    for seed in seeds:
        for config in configs:
            try:
                run_name = name.format(config=config.stem, seed=seed)
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(f"--name {name!r}: use only the placeholders {{config}} and "
                                 f"{{seed}} ({type(err).__name__}: {err})") from None
            jobs.append(Job(config, seed, runs_dir / run_name))
    dirs = [job.run_dir for job in jobs]
    clash = next((d for d in dirs if dirs.count(d) > 1), None)
    if clash is not None:
        raise ValueError(f"two runs of the sweep would share {clash}: --name must tell them "
                         "apart (put {config} and {seed} in it)")
    return jobs


def sweep(args: argparse.Namespace) -> int:
    """``avf sweep``: train and score every job, ``args.jobs`` at a time; 0 if all went
    through, 1 if any failed (the others still run)."""
    for option, value in (("--jobs", args.jobs), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    if not args.progress_every >= 0:  # also refuses nan
        raise ValueError(f"--progress-every must be 0 or more minutes, got {args.progress_every}")
    jobs = plan_jobs(list(args.configs), parse_seeds(args.seeds), args.runs_dir, args.name)
    if args.dry_run:
        for number, job in enumerate(jobs, 1):
            print(f"[{number}/{len(jobs)}] {job.run_dir}: seed {job.seed} of {job.config}; "
                  f"{_plan(job, args.no_evaluate)}")
        return 0
    cores, at_once = os.cpu_count() or 1, min(args.jobs, len(jobs))
    threads = args.threads or max(1, cores // at_once)
    runner = _Runner(args, threads, len(jobs))
    print(f"sweep: {len(jobs)} run{'s' * (len(jobs) > 1)}, {at_once} at a time, {threads} "
          f"thread{'s' * (threads > 1)} each", file=sys.stderr)
    if at_once * threads > cores:
        print(f"avf sweep: note: {at_once * threads} threads on {cores} "
              f"core{'s' * (cores > 1)}; the runs will slow each other down (fewer --jobs or "
              "--threads avoid it)", file=sys.stderr)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    finished = threading.Event()
    if args.progress_every > 0:
        threading.Thread(target=runner.report_progress, args=(args.progress_every * 60, finished),
                         daemon=True).start()
    try:
        failures = [f for f in pool.map(runner.run, range(1, len(jobs) + 1), jobs) if f]
    except KeyboardInterrupt:
        finished.set()
        runner.stop_all()  # before the pool is shut down, which waits for the running jobs
        pool.shutdown(wait=True, cancel_futures=True)
        print("avf sweep: interrupted; the same command resumes every unfinished run",
              file=sys.stderr)
        return 130
    finished.set()
    pool.shutdown()
    rows = {job.run_dir: summary_or_error(job.run_dir) for job in jobs
            if (job.run_dir / CONFIG_NAME).is_file()}
    if rows:
        sys.stdout.write(table(list(rows.values())) + "\n")
        summary = seed_table(jobs, rows)
        if summary is not None:
            sys.stdout.write(f"\nover seeds (the paired differences are from "
                             f"{_labels(jobs)[jobs[0].config]}, seed by seed):\n{summary}\n")
    for failure in failures:
        print(f"avf sweep: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


class _Runner:
    """Runs the jobs' processes and tracks them, so that Ctrl-C can stop them all."""

    def __init__(self, args: argparse.Namespace, threads: int, total: int) -> None:
        self.args, self.total = args, total
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen] = set()
        self.training: dict[Path, str] = {}  # run directory -> its tag, while `avf train` runs
        self.stopping = False

    def run(self, number: int, job: Job) -> str | None:
        """Train the job unless it is done, then score it unless it is scored; ``None``, or
        what went wrong (one broken run directory does not stop the others)."""
        try:
            return self._run(f"[{number}/{self.total}] {job.run_dir.name}", job)
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"{job.run_dir.name}: {' '.join(str(err).split()) or type(err).__name__}"

    def _run(self, tag: str, job: Job) -> str | None:
        row = _summary(job.run_dir)
        if row["status"] == "training":
            self._say(f"{tag}: {row['state']}, by another process; left alone (run the sweep "
                      "again once it has stopped)")
            return None
        if row["status"] == "done":
            self._say(f"{tag}: {row['state']}, not trained again")
        else:
            self._say(f"{tag}: {'resuming' if row['status'] == 'resumable' else 'training'}")
            with self.lock:
                self.training[job.run_dir] = tag
            try:
                trained = self._call(job, self._train_command(job))
            finally:
                with self.lock:
                    del self.training[job.run_dir]
            if trained != 0:
                return f"{job.run_dir.name}: avf train failed ({_last_line(job)})"
        row = _summary(job.run_dir)
        state = row["state"]
        if row["status"] != "done":
            self._say(f"{tag}: {state} (stopped at --time-limit); not scored yet")
            return None
        if self.args.no_evaluate or _scored(row):
            self._say(f"{tag}: {state}")
            return None
        if self._call(job, self._evaluate_command(job)) != 0:
            return f"{job.run_dir.name}: avf evaluate failed ({_last_line(job)})"
        row = run_summary(job.run_dir)
        self._say(f"{tag}: {state}; test free energy {row['test_free_energy']:.4f}")
        return None

    def _train_command(self, job: Job) -> list[str]:
        command = ["train", str(job.config), "--run-dir", str(job.run_dir),
                   "--seed", str(job.seed), "--set", "training.progress=false"]
        for override in self.args.overrides:
            command += ["--set", override]
        if self.args.time_limit is not None:
            command += ["--time-limit", str(self.args.time_limit)]
        return command + self._data_dir()

    def _evaluate_command(self, job: Job) -> list[str]:
        command = ["evaluate", str(job.run_dir), "--split", "test", "--no-progress"]
        if self.args.eval_batch_size is not None:
            command += ["--batch-size", str(self.args.eval_batch_size)]
        return command + self._data_dir()

    def _data_dir(self) -> list[str]:
        return [] if self.args.data_dir is None else ["--data-dir", str(self.args.data_dir)]

    def _call(self, job: Job, command: list[str]) -> int:
        """Run ``avf COMMAND`` with its output appended to the run's ``sweep.log``."""
        job.run_dir.mkdir(parents=True, exist_ok=True)
        with open(job.run_dir / LOG_NAME, "a", encoding="utf-8") as log:
            log.write(f"$ avf {' '.join(command)}\n")
            log.flush()
            with self.lock:
                if self.stopping:
                    return 130
                process = subprocess.Popen([sys.executable, "-m", "avf.cli", *command],
                                           stdout=log, stderr=subprocess.STDOUT, env=self.env)
                self.running.add(process)
            try:
                return process.wait()
            finally:
                with self.lock:
                    self.running.discard(process)

    def report_progress(self, seconds: float, finished: threading.Event) -> None:
        """Every ``seconds`` until ``finished``, say how far each run in training has got: an
        hour-long run is otherwise silent from its start to its end."""
        while not finished.wait(seconds):
            with self.lock:
                training = sorted(self.training.items(), key=lambda item: item[1])
            for run_dir, tag in training:
                self._say(f"{tag}: {progress(run_dir)}")

    def stop_all(self) -> None:
        """Interrupt every running process (each ``avf train`` keeps its last checkpoint)."""
        with self.lock:
            self.stopping = True
            running = list(self.running)
        for process in running:
            process.terminate()
            process.wait()

    def _say(self, text: str) -> None:
        with self.lock:
            print(text, file=sys.stderr, flush=True)


def _plan(job: Job, no_evaluate: bool) -> str:
    """What the sweep would do with ``job`` now, for ``--dry-run``."""
    row = _summary(job.run_dir)
    state = row["state"]
    if row["status"] == "training":
        return f"{state}: left alone"
    if row["status"] != "done":
        todo = "resume" if row["status"] == "resumable" else "train"
        return f"{state}: would {todo}" + ("" if no_evaluate else " and score")
    if no_evaluate or _scored(row):
        return f"{state}: nothing to do"
    return f"{state}: would score"


def progress(run_dir: Path) -> str:
    """How far a run in training has got, from its run directory: epoch, best validation
    and learning rate."""
    try:
        row = _summary(run_dir)
    except (OSError, ValueError, KeyError, TypeError):  # a config or log half written
        return "not readable at the moment"
    if not row.get("epochs"):
        return "first epoch under way"
    text = f"epoch {row['epochs']}/{row['max_epochs']}"
    if row["best_valid"] is not None:
        text += f", best validation {row['best_valid']:.4f} (epoch {row['best_epoch']})"
    if row["learning_rate"] is not None:
        text += f", lr {row['learning_rate']:.1e}"
    return f"{text}, {row['train_minutes']:.1f} min"


def seed_table(jobs: list[Job], rows: dict[Path, dict[str, Any]]) -> str | None:
    """Per config, the mean ± sd over its scored seeds of the test free energy (micro and macro
    average), and for every config after the first the difference from the first seed by seed
    (on the seeds both have scored) with its standard error and how many seeds it wins;
    ``None`` until some config has two seeds scored, before which there is nothing to average."""
    labels = _labels(jobs)
    scores: dict[Path, dict[int, dict[str, Any]]] = {config: {} for config in labels}
    for job in jobs:
        row = rows.get(job.run_dir)
        if row is not None and _scored(row):
            scores[job.config][job.seed] = row
    if max(len(by_seed) for by_seed in scores.values()) < 2:
        return None
    reference = scores[jobs[0].config]
    head = ["config", "seeds scored", "test F micro", "macro",
            "micro − first (± se)", "macro − first (± se)", "seeds better (micro / macro)"]
    body = []
    for config, by_seed in scores.items():
        line = [labels[config], str(len(by_seed))]
        for key in ("test_free_energy", "test_macro_free_energy"):
            values = [row[key] for row in by_seed.values()]
            summary = spread(values) if values else None
            line.append("–" if summary is None else _plus_minus(summary["mean"], summary["sd"]))
        shared = [seed for seed in by_seed if seed in reference]
        if config == jobs[0].config or not shared:
            line += ["–", "–", "–"]
        else:
            wins = []
            for key in ("test_free_energy", "test_macro_free_energy"):
                paired = paired_difference([by_seed[s][key] for s in shared],
                                           [reference[s][key] for s in shared])
                line.append(_plus_minus(paired["mean"], paired["se"], signed=True))
                wins.append(paired["better"])
            line.append(f"{wins[0]} / {wins[1]} of {len(shared)}")
        body.append(line)
    return aligned(head, body)


def _plus_minus(value: float, error: float | None, signed: bool = False) -> str:
    """``value ± error``, just the value where there is no error (one seed)."""
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    return text if error is None else f"{text} ± {error:.4f}"


def _labels(jobs: list[Job]) -> dict[Path, str]:
    """Each config's name in the tables: its file's stem, or its path where stems clash."""
    configs = list(dict.fromkeys(job.config for job in jobs))
    stems = [config.stem for config in configs]
    return {config: config.stem if stems.count(config.stem) == 1 else str(config)
            for config in configs}


def _summary(run_dir: Path) -> dict[str, Any]:
    """The run's ``avf runs`` row, read once per decision; for a directory without a config,
    a row that says whether a trainer has just locked it (and is about to write one) or nobody
    has started it."""
    if (run_dir / CONFIG_NAME).is_file():
        return run_summary(run_dir)
    pid = training_process(run_dir)
    if pid is not None:
        return {**dict.fromkeys(FIELDS), **training_row(pid)}
    return {**dict.fromkeys(FIELDS), "status": "not started", "state": "not started"}


def _scored(row: dict[str, Any]) -> bool:
    """Whether the run's row has a test score of its current best epoch."""
    return row["test_free_energy"] is not None and not row["test_stale"]


def _last_line(job: Job) -> str:
    """The last line a failed command wrote, which is where ``avf`` puts its error."""
    lines = (job.run_dir / LOG_NAME).read_text(encoding="utf-8").strip().splitlines()
    return f"{lines[-1].strip()}; see {job.run_dir / LOG_NAME}" if lines else "no output"
