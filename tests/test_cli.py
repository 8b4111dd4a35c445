"""The ``avf`` command end to end on a tiny config, and its one-line errors (exit status 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from avf.cli import main
from avf.cli.dry_run import try_one_batch
from avf.config import load_config
from avf.datasets import build_training_data
from avf.runs import build
from avf.validation import NonFiniteError

TINY = """
name = "tiny"
seed = 0

[model]
name = "lgssm"

[model.options]
latent_dim = 2
obs_dim = 2

[inference]
name = "iterative"

[inference.options]
iterations = 1
hidden = 16
layers = 1

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
progress = false
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_train_then_evaluate(tiny: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run), "--set", "training.lr_decay=0.9"]) == 0
    out = capsys.readouterr().out
    assert "validation after epoch 2" in out and "nats/step" in out
    assert {"config.toml", "checkpoint.pt", "best.pt", "metrics.jsonl"} <= {
        p.name for p in run.iterdir()}
    assert "lr_decay = 0.9" in (run / "config.toml").read_text()

    assert main(["evaluate", str(run), "--split", "valid"]) == 0
    out = capsys.readouterr().out
    assert "filtering optimum F*" in out and "exact -log p(x)/T" in out
    report = json.loads((run / "eval_valid.json").read_text())
    assert report["split"] == "valid" and report["steps"] == 15 and report["epoch"] >= 1
    assert report["free_energy"] > report["optimal_free_energy"] - 1.0
    assert {"macro_free_energy", "recon", "kl", "exact_nll"} <= report.keys()

    assert main(["evaluate", str(run), "--checkpoint", "last"]) == 0
    shown = json.loads((run / "eval_test.json").read_text())
    assert shown["epoch"] == 2
    assert "scoring test (3 sequences)" in capsys.readouterr().err  # the progress bar
    assert main(["evaluate", str(run), "--checkpoint", "last", "--no-progress"]) == 0
    assert "scoring" not in capsys.readouterr().err
    assert json.loads((run / "eval_test.json").read_text()) == shown  # the bar changes nothing

    # training again with more epochs continues the same run
    assert main(["train", str(tiny), "--run-dir", str(run), "--epochs", "3"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_time_limit_stops_early_and_evaluate_takes_a_batch_size(tiny: Path, tmp_path: Path,
                                                                 capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run), "--epochs", "3",
                 "--time-limit", "1e-9"]) == 0
    assert "stopped at the time limit after epoch 1 of 3" in capsys.readouterr().out
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]

    assert main(["evaluate", str(run), "--checkpoint", "last", "--batch-size", "1"]) == 0
    one_at_a_time = json.loads((run / "eval_test.json").read_text())
    assert one_at_a_time["steps"] == 15 and one_at_a_time["epoch"] == 1
    assert main(["evaluate", str(run), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1" in error_line(capsys)


def test_runs_says_which_runs_are_done_resumable_or_scored(tiny, tmp_path, capsys) -> None:
    done, cut_short = tmp_path / "runs" / "done", tmp_path / "runs" / "cut_short"
    assert main(["train", str(tiny), "--run-dir", str(done)]) == 0
    assert main(["train", str(tiny), "--run-dir", str(cut_short), "--epochs", "3",
                 "--time-limit", "1e-9"]) == 0
    assert main(["evaluate", str(done)]) == 0
    report = json.loads((done / "eval_test.json").read_text())
    (tmp_path / "runs" / "fresh").mkdir()  # killed in its first epoch: a config, no metrics
    (tmp_path / "runs" / "fresh" / "config.toml").write_bytes((done / "config.toml").read_bytes())
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    rows = {Path(r["run"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert {name: row["status"] for name, row in rows.items()} == {
        "done": "done", "cut_short": "resumable", "fresh": "not started"}
    assert rows["done"]["state"] == "done: all epochs" and rows["done"]["epochs"] == 2
    assert rows["done"]["test_free_energy"] == report["free_energy"]
    assert rows["done"]["test_stale"] is False
    assert rows["done"]["learning_rate"] == 1e-2  # φ's: θ is fixed in the tiny config
    assert rows["cut_short"]["state"] == "resumable" and rows["cut_short"]["epochs"] == 1
    assert rows["cut_short"]["test_free_energy"] is None
    assert rows["fresh"]["state"] == "not started" and rows["fresh"]["best_valid"] is None
    broken = tmp_path / "runs" / "broken"  # a bad directory is one row, not an abort
    broken.mkdir()
    (broken / "config.toml").write_text("name = [")
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert any(line.startswith("broken ") and "unreadable: " in line
               for line in capsys.readouterr().out.splitlines())
    assert main(["runs", str(broken), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "unreadable"

    report["epoch"] = 1 if rows["done"]["best_epoch"] == 2 else 2  # scored before a new best
    (done / "eval_test.json").write_text(json.dumps(report))
    assert main(["runs", str(done)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("done ") and "stale, evaluate again" in lines[1]


def test_runs_draws_the_curves_side_by_side(tiny, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    for seed in ("0", "1"):
        assert main(["train", str(tiny), "--run-dir", str(tmp_path / "runs" / seed),
                     "--seed", seed]) == 0
    picture = tmp_path / "curves.png"
    assert main(["runs", str(tmp_path / "runs"), "--plot", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {picture}" in capsys.readouterr().err


def test_runs_without_runs_is_one_clear_line(tmp_path, capsys, monkeypatch) -> None:
    assert main(["runs", str(tmp_path)]) == 2
    assert "no run directories" in error_line(capsys)
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in error_line(capsys)
    monkeypatch.chdir(tmp_path)  # no runs/ here, and none named
    assert main(["runs"]) == 2
    assert "no runs/ folder here" in error_line(capsys)


def test_evaluate_scores_several_runs_in_one_call(tiny, tmp_path, capsys) -> None:
    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, run in enumerate(runs):
        assert main(["train", str(tiny), "--run-dir", str(run), "--seed", str(seed)]) == 0
    capsys.readouterr()
    assert main(["evaluate", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    reports = [json.loads((run / "eval_test.json").read_text()) for run in runs]
    assert [r["run_dir"] for r in reports] == [str(run) for run in runs]
    assert all(f"wrote {run / 'eval_test.json'}" in out for run in runs)
    assert reports[0]["free_energy"] != reports[1]["free_energy"]  # two seeds, two scores
    assert main(["evaluate", str(runs[0]), str(tmp_path / "missing")]) == 2


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--set", "training.epochz=3"], "unknown key 'training.epochz'"),
        (["--set", "inference.options.hiden=3"], "unknown option 'hiden'"),
        (["--set", "model.name=rnn"], "unknown model 'rnn'"),
        (["--set", "training.batch_size=0"], "training.batch_size must be >= 1"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_configs_exit_with_status_2(tiny: Path, tmp_path: Path, capsys, args, match) -> None:
    assert main(["train", str(tiny), "--run-dir", str(tmp_path / "r"), *args]) == 2
    assert match in error_line(capsys)


def test_missing_files_exit_with_status_2(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in error_line(capsys)
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no config.toml" in error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tiny: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", str(tiny), "--run-dir", str(tmp_path / "r"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in error_line(capsys)


def test_debug_shows_the_exception(tiny: Path) -> None:
    with pytest.raises(ValueError, match=r"training\.epochz"):
        main(["train", str(tiny), "--set", "training.epochz=3", "--debug"])


def test_demo_quick_runs_and_writes_results(tmp_path):
    import json

    from avf.cli import main

    assert main(["demo", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["model"].split()[0] for r in results] == ["linear-Gaussian", "nonlinear"]
    for result in results:
        methods = [r["method"] for r in result["rows"]]
        assert methods[0].startswith("prior only") and len(methods) == 6
    # on the linear-Gaussian model a few Adam steps from the prior already beat the prior
    lgssm = results[0]["rows"]
    assert lgssm[-1]["free_energy"] < lgssm[0]["free_energy"]
    assert (tmp_path / "iterations.png").exists()


def test_train_says_it_stopped_at_a_plateau_after_the_last_cut(tiny: Path, tmp_path: Path,
                                                                capsys, monkeypatch) -> None:
    from avf.evaluation import Score
    from avf.training import Trainer

    def worse_every_epoch(_trainer, _valid, epoch):
        value = float(epoch)
        return Score(free_energy=value, macro_free_energy=value, recon=value, kl=0.0,
                     steps=1, sequences=1, trace=[value])

    monkeypatch.setattr(Trainer, "_validate", worse_every_epoch)
    assert main(["train", str(tiny), "--run-dir", str(tmp_path / "r"), "--epochs", "10",
                 "--set", "training.plateau_patience=1", "--set",
                 "training.plateau_max_cuts=1"]) == 0
    out = capsys.readouterr().out
    assert "stopped early after epoch 3: a plateau after 1 learning-rate cut(s)" in out
    assert "cut by 0.1 after epoch(s) 2" in out
    assert main(["train", str(tiny), "--run-dir", str(tmp_path / "r2"), "--epochs", "10",
                 "--set", "training.plateau_patience=1", "--set",
                 "training.plateau_max_cuts=3", "--set",
                 "training.plateau_stop_without_gain=true"]) == 0
    assert ("stopped early after epoch 3: a plateau after a learning-rate cut that brought no "
            "new best" in capsys.readouterr().out)


def test_train_reports_a_divergence_cut(tiny: Path, tmp_path: Path, capsys,
                                        monkeypatch) -> None:
    from avf.training import Trainer
    from avf.validation import NonFiniteError

    original = Trainer._train_step

    def diverge_in_epoch_2(trainer, x, mask, beta, where):
        if where == "epoch 2, batch 1":
            raise NonFiniteError(f"{where}: non-finite gradient in model parameter 'A'")
        return original(trainer, x, mask, beta, where)

    monkeypatch.setattr(Trainer, "_train_step", diverge_in_epoch_2)
    with pytest.warns(UserWarning, match="went back to the best"):
        assert main(["train", str(tiny), "--run-dir", str(tmp_path / "r"), "--epochs", "3",
                     "--set", "training.divergence_cuts=1"]) == 0
    out = capsys.readouterr().out
    assert ("learning rates cut by 0.1 from the best weights in epoch 2 after a divergence "
            "(training.divergence_cuts): epoch 2, batch 1: non-finite gradient" in out)
    assert "after epoch(s)" not in out  # no plateau cut is claimed
    assert main(["runs", str(tmp_path / "r"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["lr_cuts"] == [2] and row["divergences"] == [2]
    assert main(["runs", str(tmp_path / "r")]) == 0
    assert "lr cuts after" in (table := capsys.readouterr().out) and "2 (diverged)" in table
    # without the setting the error ends the run, as before
    assert main(["train", str(tiny), "--run-dir", str(tmp_path / "r0"), "--epochs", "3"]) != 0
    assert "epoch 2, batch 1: non-finite gradient in model parameter 'A'" in (
        capsys.readouterr().err)


def test_evaluate_scores_the_weight_average_unless_asked_for_the_trained_weights(
        tiny: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run), "--set", "training.ema_decay=0.5"]) == 0
    assert main(["evaluate", str(run)]) == 0
    assert "weight average" in capsys.readouterr().out
    average = json.loads((run / "eval_test.json").read_text())
    assert main(["evaluate", str(run), "--weights", "trained"]) == 0
    assert "weight average" not in capsys.readouterr().out
    trained = json.loads((run / "eval_test.json").read_text())
    assert (average["weights"], trained["weights"]) == ("average", "trained")
    assert average["free_energy"] != trained["free_energy"]

    plain = tmp_path / "plain"
    assert main(["train", str(tiny), "--run-dir", str(plain)]) == 0
    assert main(["evaluate", str(plain)]) == 0
    assert json.loads((plain / "eval_test.json").read_text())["weights"] == "trained"


def _interrupt_in_epoch(monkeypatch, epoch: int) -> None:
    """Make the trainer's first batch of ``epoch`` raise KeyboardInterrupt, as Ctrl-C would."""
    from avf.training import Trainer

    original = Trainer._train_step

    def train_step(self, *args, **kwargs):
        if self.epoch + 1 == epoch:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_step", train_step)


@pytest.mark.parametrize(("every", "epoch", "says"), [
    (1, 3, "holds epoch 2: run the same command to continue from there"),
    (2, 4, "holds epoch 2: run the same command to continue from there; the 1 epoch(s) after"),
    (4, 3, "no checkpoint was written yet (every 4 epoch(s)), so the same command starts over"),
])
def test_ctrl_c_in_training_says_where_the_run_resumes(tiny, tmp_path, capsys, monkeypatch,
                                                       every, epoch, says) -> None:
    run = tmp_path / "run"
    _interrupt_in_epoch(monkeypatch, epoch)
    args = ["train", str(tiny), "--run-dir", str(run), "--set", "training.epochs=4",
            "--set", f"training.checkpoint_every={every}"]
    assert main(args) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"avf: interrupted in epoch {epoch};") and says in err
    assert "Traceback" not in err
    monkeypatch.undo()
    assert main(args) == 0  # the same command finishes the run
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_ctrl_c_with_debug_raises(tiny, tmp_path, monkeypatch) -> None:
    _interrupt_in_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        main(["train", str(tiny), "--run-dir", str(tmp_path / "run"), "--debug"])


def test_ctrl_c_after_a_resume_counts_from_the_loaded_checkpoint(tiny, tmp_path, capsys,
                                                                  monkeypatch) -> None:
    run = tmp_path / "run"
    args = ["train", str(tiny), "--run-dir", str(run)]
    assert main(args) == 0  # two epochs, checkpointed
    _interrupt_in_epoch(monkeypatch, 3)
    assert main([*args, "--set", "training.epochs=4"]) == 130
    assert "holds epoch 2: run the same command" in capsys.readouterr().err


def test_ctrl_c_in_any_command_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    import avf.cli

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(avf.cli, "evaluate_run", interrupted)
    assert main(["evaluate", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "avf: interrupted"


def test_resuming_with_networks_that_do_not_fit_keeps_the_run_intact(tiny, tmp_path,
                                                                     capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run)]) == 0
    saved = (run / "config.toml").read_bytes()
    capsys.readouterr()
    assert main(["train", str(tiny), "--run-dir", str(run), "--epochs", "3",
                 "--set", "inference.options.hidden=8"]) == 2
    err = error_line(capsys)
    assert "do not fit" in err and "keeps its config.toml as it was" in err
    assert (run / "config.toml").read_bytes() == saved  # the run is still usable
    assert main(["evaluate", str(run)]) == 0


def test_resuming_with_changed_settings_lists_them_and_keeps_the_learning_rate(
        tiny, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", str(tiny), "--run-dir", str(run), "--epochs", "3",
                 "--set", "training.inference_lr=0.5", "--set", "training.patience=4"]) == 0
    out, err = capsys.readouterr()
    assert f"resuming {run} from its checkpoint of epoch 2 (" in out
    assert "with changed settings: training.epochs: 2 → 3; training.patience: 0 → 4" in out
    assert "not applied" in err and "training.inference_lr: 0.01 → 0.5" in err
    saved = (run / "config.toml").read_text()
    assert "inference_lr = 0.01" in saved and "epochs = 3" in saved and "patience = 4" in saved
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["inference_lr"] for line in lines] == [0.01, 0.01, 0.01]


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tiny, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run), "--dry-run",
                 "--set", "training.patience=4"]) == 0
    out, err = capsys.readouterr()
    assert not run.exists()
    printed = load_config_text(out, tmp_path)
    assert printed.training.patience == 4 and printed.training.plateau_factor == 0.1  # a default
    assert "parameters θ" in err and "would start" in err and "nothing written" in err
    assert "6 training sequences, 3 validation" in err
    assert "one training batch (3 sequences, 15 steps) on cpu: free energy" in err


def test_dry_run_checks_a_resume_without_touching_the_run(tiny, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run)]) == 0
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    capsys.readouterr()
    assert main(["train", str(tiny), "--run-dir", str(run), "--dry-run", "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert f"would resume {run} from its checkpoint of epoch 2" in err
    assert "training.epochs: 2 → 3" in err
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before
    assert main(["train", str(tiny), "--run-dir", str(run), "--dry-run",
                 "--set", "inference.options.hidden=8"]) == 2  # networks that do not fit
    assert "do not fit" in error_line(capsys)


def test_dry_run_still_refuses_a_bad_config(tiny, capsys) -> None:
    assert main(["train", str(tiny), "--dry-run", "--set", "training.bogus=1"]) == 2
    assert "bogus" in error_line(capsys)


def test_seed_sets_both_seeds_and_leaves_the_datas(tiny, tmp_path, capsys) -> None:
    assert main(["train", str(tiny), "--dry-run", "--seed", "7"]) == 0
    printed = load_config_text(capsys.readouterr().out, tmp_path)
    assert printed.seed == 7 and printed.training.seed == 7
    assert printed.data.seed == load_config(tiny).data.seed


def test_the_dry_runs_batch_leaves_the_weights_as_they_were(tiny) -> None:
    cfg = load_config(tiny, ["training.train_model=true"])
    model, inference = build(cfg)
    before = [p.detach().clone() for p in [*model.parameters(), *inference.parameters()]]
    train, _ = build_training_data(cfg)
    trial = try_one_batch(cfg, model, inference, train, torch.device("cpu"))
    after = [*model.parameters(), *inference.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(p.grad is None for p in after)
    assert trial.sequences == 3 and trial.steps == 15 and math.isfinite(trial.free_energy)
    with torch.no_grad():  # a model that has diverged: the dry run fails as training would
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="time step"):
        try_one_batch(cfg, model, inference, train, torch.device("cpu"))


def load_config_text(text: str, folder: Path):
    """The config that a dry run printed, read back as ``avf train`` would read it."""
    path = folder / "printed.toml"
    path.write_text(text)
    return load_config(path)


USER_MODEL = '''
import torch
from torch import nn
from torch.distributions import Independent, Normal


class Walk(nn.Module):
    """z_t = a z_{t-1} + noise, x_t = z_t + noise."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.a = nn.Parameter(torch.rand(dim))

    def initial_state(self, batch_size):
        return torch.zeros(batch_size, self.dim)

    def prior(self, state):
        return Independent(Normal(self.a * state, 1.0), 1)

    def likelihood(self, z, state):
        return Independent(Normal(z, 0.5), 1)

    def transition(self, state, z, x):
        return z


class NotAModel(nn.Module):
    def prior(self, state):
        return None
'''


def user_model_config(tmp_path: Path, name: str, options: str = "dim = 2") -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "walk.py").write_text(USER_MODEL)
    config = TINY.replace('name = "lgssm"', f'name = "{name}"').replace(
        "latent_dim = 2\nobs_dim = 2", options)
    path = folder / "walk.toml"
    path.write_text(config)
    return path


def test_a_users_model_file_trains_and_evaluates_from_anywhere(tmp_path, monkeypatch,
                                                              capsys) -> None:
    config = user_model_config(tmp_path, "walk.py:Walk")  # relative to the config's folder
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    saved = (run / "config.toml").read_text()
    assert f'name = "{config.parent / "walk.py"}:Walk"' in saved  # stored absolute
    monkeypatch.chdir(tmp_path)  # elsewhere: the run still finds its model
    capsys.readouterr()
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    report = json.loads((run / "eval_test.json").read_text())
    assert report["steps"] == 15 and math.isfinite(report["free_energy"])


def test_a_users_model_on_the_python_path(tmp_path, monkeypatch) -> None:
    config = user_model_config(tmp_path, "walk:Walk")
    monkeypatch.syspath_prepend(str(config.parent))
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0


@pytest.mark.parametrize(("name", "options", "match"), [
    ("nowhere.py:Walk", "dim = 2", "no such model file"),
    ("walk.py:Wlak", "dim = 2", "has no 'Wlak'; it defines: NotAModel, Walk"),
    ("no_such_module_here:Walk", "dim = 2", "cannot import module 'no_such_module_here'"),
    ("walk.py:NotAModel", "", "NotAModel is not a step model: missing initial_state, "
                             "likelihood, transition"),
    ("walk.py:Walk", "dimm = 2", "walk.py:Walk'; valid options: dim"),
    ("walk.py:torch", "", "is a module, not a class or function"),
])
def test_a_users_model_that_cannot_be_built_is_one_clear_line(tmp_path, capsys, name, options,
                                                              match) -> None:
    config = user_model_config(tmp_path, name, options)
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert match in error_line(capsys)


USER_INFERENCE = '''
from torch import nn

from avf.inference import InferenceProcedure, InferenceResult


class Prior(InferenceProcedure):
    def __init__(self, latent_dim: int, scale: float = 1.0) -> None:
        super().__init__()
        self.latent_dim, self.scale = latent_dim, scale

    def forward(self, problem, carry=None):
        return InferenceResult(params=problem.prior_params() * self.scale, carry=carry)


class NotAProcedure(nn.Module):
    pass
'''


@pytest.mark.parametrize(("name", "options", "match"), [
    ("mine.py:Prior", "scale = 1.0", None),
    ("mine.py:Prior", "scal = 1.0", "mine.py:Prior'; valid options: scale"),
    ("mine.py:NotAProcedure", "", "built a NotAProcedure, not an avf.inference.InferenceProcedure"),
    ("mine.py:Nope", "", "has no 'Nope'; it defines: NotAProcedure, Prior"),
])
@pytest.mark.filterwarnings("ignore:nothing to train")
def test_a_users_inference_procedure(tmp_path, capsys, name, options, match) -> None:
    (tmp_path / "mine.py").write_text(USER_INFERENCE)
    config = TINY.replace('name = "iterative"', f'name = "{name}"').replace(
        "iterations = 1\nhidden = 16\nlayers = 1", options)
    path = tmp_path / "mine.toml"
    path.write_text(config)
    code = main(["train", str(path), "--run-dir", str(tmp_path / "run")])
    if match is None:  # latent_dim came from the model; a run with no φ still trains and scores
        assert code == 0
        assert main(["evaluate", str(tmp_path / "run"), "--no-progress"]) == 0
    else:
        assert code == 2 and match in error_line(capsys)


def test_load_run_gives_what_avf_evaluate_scored(tiny, tmp_path) -> None:
    import avf
    from avf.evaluation import evaluate

    run_dir = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run_dir)]) == 0
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    report = json.loads((run_dir / "eval_test.json").read_text())

    run = avf.load_run(run_dir)
    assert run.epoch == report["epoch"] and run.checkpoint.name == "best.pt"
    assert run.weights == "trained"  # the tiny run keeps no weight average
    assert not run.model.training and not run.inference.training
    test = run.data("test")
    torch.manual_seed(run.config.seed)  # as avf evaluate seeds its one sample per step
    score = evaluate(run.model, run.inference, test.batches(run.config.training.batch_size))
    assert score.free_energy == pytest.approx(report["free_energy"], rel=1e-6)

    with pytest.raises(ValueError, match="checkpoint must be one of"):
        avf.load_run(run_dir, checkpoint="newest")
    with pytest.raises(ValueError, match="split must be"):
        run.data("tset")
    with pytest.raises(FileNotFoundError, match=r"no config\.toml"):
        avf.load_run(tmp_path)


def test_version(capsys) -> None:
    import avf

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip().startswith(f"avf {avf.__version__} (torch ")


def test_the_package_version_is_one_number() -> None:
    import avf
    from avf.config import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["version"] == avf.__version__


def test_evaluate_with_particles_lies_between_the_exact_answer_and_the_free_energy(
        tiny, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--run-dir", str(run), "--set", "data.test_sequences=32",
                 "--set", "data.steps=20"]) == 0
    assert main(["evaluate", str(run), "--particles", "256", "--no-progress"]) == 0
    assert "particle filter (256 particles" in capsys.readouterr().out
    report = json.loads((run / "eval_test.json").read_text())
    smc = report["smc"]
    assert smc["particles"] == 256 and smc["steps"] == 640 and not smc["discretized"]
    # the free energy bounds -log p(x) from above and SMC with the same q tightens it; the exact
    # Kalman answer is the floor (the estimate's noise here is far below these margins)
    assert report["exact_nll"] - 0.02 < smc["nll"] < report["free_energy"] - 0.1
    assert main(["evaluate", str(run), "--particles", "256", "--no-progress"]) == 0
    assert json.loads((run / "eval_test.json").read_text())["smc"] == smc  # seeded
    assert main(["evaluate", str(run), "--particles", "-1"]) == 2
    assert "--particles must be >= 0" in error_line(capsys)


def test_a_users_model_file_can_import_its_neighbours(tmp_path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "walk_parts.py").write_text(USER_MODEL)
    (folder / "walk_model.py").write_text("from walk_parts import Walk as Walk\n")
    config = folder / "walk.toml"
    config.write_text(TINY.replace('name = "lgssm"', 'name = "walk_model.py:Walk"').replace(
        "latent_dim = 2\nobs_dim = 2", "dim = 2"))
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
