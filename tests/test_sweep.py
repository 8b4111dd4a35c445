"""``avf sweep``: configs × seeds as separate processes, resumed and scored from the run
directories alone, so that the same command can be run again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from avf.cli import main
from avf.cli.sweep import Job, parse_seeds, plan_jobs, progress, seed_table
from avf.config import load_config
from avf.plots import read_metrics
from avf.seeds import paired_difference, spread

TINY = """
[model]
name = "lgssm"

[model.options]
latent_dim = 2
obs_dim = 2

[inference]
name = "{inference}"

[data]
train_sequences = 6
valid_sequences = 3
test_sequences = 3
steps = 5

[training]
epochs = 2
batch_size = 3
train_model = false
inference_lr = 1e-2
"""


@pytest.fixture
def configs(tmp_path: Path) -> list[Path]:
    paths = []
    for inference in ("direct", "iterative"):
        path = tmp_path / f"tiny_{inference}.toml"
        path.write_text(TINY.format(inference=inference))
        paths.append(path)
    return paths


def test_seeds_and_names_are_planned_seed_by_seed(configs: list[Path], tmp_path: Path) -> None:
    assert parse_seeds("0-2,5,1") == [0, 1, 2, 5]
    jobs = plan_jobs(configs, [3, 4], tmp_path / "runs")
    assert [(job.run_dir.name, job.seed) for job in jobs] == [
        ("tiny_direct_seed3", 3), ("tiny_iterative_seed3", 3),
        ("tiny_direct_seed4", 4), ("tiny_iterative_seed4", 4)]
    for bad, match in (("x", "not a seed"), ("3-1", "empty")):
        with pytest.raises(ValueError, match=match):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="would share"):
        plan_jobs(configs, [0, 1], tmp_path, name="{config}")
    with pytest.raises(ValueError, match="placeholders"):
        plan_jobs(configs, [0], tmp_path, name="{model}_{seed}")
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        plan_jobs([tmp_path / "missing.toml"], [0], tmp_path)


def test_sweep_trains_scores_and_resumes_only_what_is_unfinished(
        configs: list[Path], tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    common = ["sweep", str(configs[1]), "--seeds", "0-1", "--jobs", "2", "--threads", "1",
              "--runs-dir", str(runs)]
    assert main([*common, "--dry-run"]) == 0
    planned = capsys.readouterr().out.splitlines()
    assert planned == [f"[{i}/2] {runs / f'tiny_iterative_seed{i - 1}'}: seed {i - 1} of "
                       f"{configs[1]}; not started: would train and score" for i in (1, 2)]
    assert not runs.exists()
    # a time limit stops each run after its first epoch: resumable and not scored
    assert main([*common, "--time-limit", "1e-9"]) == 0
    names = ["tiny_iterative_seed0", "tiny_iterative_seed1"]
    assert sorted(p.name for p in runs.iterdir()) == sorted(names)
    for name in names:
        assert [r["epoch"] for r in read_metrics(runs / name / "metrics.jsonl")] == [1]
        assert not (runs / name / "eval_test.json").exists()
    assert "stopped at --time-limit" in capsys.readouterr().err

    assert main([*common, "--dry-run"]) == 0
    assert capsys.readouterr().out.count("resumable: would resume and score") == 2
    assert main(common) == 0  # the same command finishes and scores every run
    out, err = capsys.readouterr()
    assert err.count("resuming") == 2
    for name in names:
        assert [r["epoch"] for r in read_metrics(runs / name / "metrics.jsonl")] == [1, 2]
        report = json.loads((runs / name / "eval_test.json").read_text())
        assert f"test free energy {report['free_energy']:.4f}" in err
        assert name in out and "done: all epochs" in out
    assert "over seeds (the paired differences are from tiny_iterative, seed by seed)" in out
    seeds = {name: load_config(runs / name / "config.toml").seed for name in names}
    assert seeds == {"tiny_iterative_seed0": 0, "tiny_iterative_seed1": 1}

    scored = {name: (runs / name / "eval_test.json").stat().st_mtime_ns for name in names}
    assert main([*common, "--dry-run"]) == 0
    assert capsys.readouterr().out.count("done: all epochs: nothing to do") == 2
    assert main(common) == 0  # nothing left to do: nothing trained or scored again
    assert capsys.readouterr().err.count("not trained again") == 2
    assert scored == {name: (runs / name / "eval_test.json").stat().st_mtime_ns
                      for name in names}


def test_a_failing_run_is_named_and_the_others_still_run(configs: list[Path], tmp_path: Path,
                                                         capsys) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(TINY.format(inference="no_such_procedure"))
    runs = tmp_path / "runs"
    status = main(["sweep", str(broken), str(configs[0]), "--runs-dir", str(runs),
                   "--no-evaluate", "--progress-every", "0.001"])
    assert status == 1
    err = capsys.readouterr().err
    # reports every 0.06 s: a run in training (which takes longer to start) is reported
    assert re.search(r"tiny_direct_seed0: (first epoch under way|epoch [12]/2)", err)
    assert "failed: broken_seed0: avf train failed (avf: error:" in err
    assert "no_such_procedure" in err
    assert (runs / "tiny_direct_seed0" / "metrics.jsonl").is_file()
    assert not (runs / "tiny_direct_seed0" / "eval_test.json").exists()

    unreadable = runs / "broken_seed0"  # a half-written config.toml: one failure, not an abort
    (unreadable / "config.toml").write_text("name = [")
    assert main(["sweep", str(broken), str(configs[0]), "--runs-dir", str(runs)]) == 1
    out, err = capsys.readouterr()
    assert "failed: broken_seed0: " in err and "tiny_direct_seed0" in out
    assert (runs / "tiny_direct_seed0" / "eval_test.json").is_file()


def test_the_seed_table_averages_scored_seeds_and_pairs_them_by_seed(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "base.toml", tmp_path / "b" / "avf.toml"
    jobs = [Job(config, seed, tmp_path / f"{config.stem}{seed}")
            for seed in (0, 1, 2) for config in (first, second)]

    def row(micro: float, macro: float, stale: bool = False) -> dict:
        return {"test_free_energy": micro, "test_macro_free_energy": macro, "test_stale": stale}

    rows = {tmp_path / "base0": row(6.0, 5.0), tmp_path / "base1": row(6.2, 5.2),
            tmp_path / "base2": row(6.1, 5.1),
            tmp_path / "avf0": row(5.9, 5.1), tmp_path / "avf1": row(6.0, 5.0),
            tmp_path / "avf2": row(1.0, 1.0, stale=True)}  # a stale score is not counted
    lines = seed_table(jobs, rows).splitlines()
    cells = [line.split("  ") for line in lines]
    cells = [[c.strip() for c in line if c.strip()] for line in cells]
    assert cells[1] == ["base", "3", "6.1000 ± 0.1000", "5.1000 ± 0.1000", "–", "–", "–"]
    # seeds 0 and 1 pair up: micro −0.1 and −0.2, macro +0.1 and −0.2
    assert cells[2] == ["avf", "2", "5.9500 ± 0.0707", "5.0500 ± 0.0707", "-0.1500 ± 0.0500",
                        "-0.0500 ± 0.1500", "2 / 1 of 2"]
    one_each = {d: r for d, r in rows.items() if d.name.endswith("0")}
    assert seed_table(jobs, one_each) is None  # nothing to average yet
    with pytest.raises(ValueError, match="pairs need one of each"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no values"):
        spread([])


def test_progress_says_how_far_a_run_has_got(configs: list[Path], tmp_path: Path,
                                             capsys, monkeypatch) -> None:
    run_dir = tmp_path / "runs" / "tiny_iterative_seed0"
    assert progress(run_dir) == "first epoch under way"
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert main(["sweep", str(configs[1]), "--runs-dir", str(tmp_path / "runs"),
                 "--no-evaluate", "--progress-every", "0", "--threads", "2"]) == 0
    assert "note: 2 threads on 1 core; the runs will slow each other down" in \
        capsys.readouterr().err
    assert main(["runs", str(run_dir), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert progress(run_dir) == (
        f"epoch 2/2, best validation {row['best_valid']:.4f} (epoch {row['best_epoch']}), "
        f"lr 1.0e-02, {row['train_minutes']:.1f} min")
    (run_dir / "config.toml").write_text("name = [")
    assert progress(run_dir) == "not readable at the moment"
    assert main(["sweep", str(configs[1]), "--progress-every", "-1"]) == 2
    assert "--progress-every must be 0 or more minutes" in capsys.readouterr().err
