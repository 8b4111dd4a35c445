"""``training.init_from``: a new run starts from another run's weights (fine-tuning), checked
against the checkpoint it names; a resumed run keeps its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avf.cli import main
from avf.config import load_config
from avf.datasets import build_training_data
from avf.runs import build
from avf.training import BEST, CHECKPOINT, Trainer
from conftest import tiny_music_args

MUSIC = Path(__file__).resolve().parents[1] / "experiments" / "music"


def averaged_weights(checkpoint: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The weights a run's validation chose: the weight average of each part where kept."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    averages = ckpt.get("average") or {}
    return {part: averages[part]["weights"] if part in averages else ckpt[part]
            for part in ("model", "inference")}


def same(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(value, weights[name]) for name, value in module.state_dict().items())


def train_tiny(run_dir: Path, songs_file: Path, *more: str) -> int:
    return main(["train", str(MUSIC / "jsb_srnn_avf_k1.toml"), "--run-dir", str(run_dir),
                 *tiny_music_args(songs_file, "training.ema_decay=0.9", *more)])


def test_a_new_run_starts_from_the_weights_validation_chose(tmp_path, songs_file, capsys):
    source = tmp_path / "pretrained"
    assert train_tiny(source, songs_file) == 0
    capsys.readouterr()
    tuned = tmp_path / "tuned"
    assert train_tiny(tuned, songs_file, f"training.init_from={json.dumps(str(source))}",
                      "training.epochs=0") == 0
    out = capsys.readouterr().out
    assert f"starting from the weights of {source / BEST} (epoch 1, weight average" in out
    assert load_config(tuned / "config.toml").training.init_from == str(source)

    # what the trainer starts from: the source's averaged weights, exactly
    cfg = load_config(tuned / "config.toml")
    model, inference = build(cfg)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, inference, cfg.training, run_dir=tmp_path / "python")
    train, valid = build_training_data(cfg)
    trainer.fit(train, valid)  # 0 epochs: only the start
    expected = averaged_weights(source / BEST)
    assert same(model, expected["model"]) and same(inference, expected["inference"])
    assert not all(torch.equal(fresh[k], v) for k, v in expected["model"].items())
    for name, average in trainer.averages.items():  # the averages restart from them too
        assert same(average.module, expected[name])


def test_resuming_keeps_the_runs_own_weights(tmp_path, songs_file):
    source, other = tmp_path / "source", tmp_path / "other"
    assert train_tiny(source, songs_file) == 0
    assert train_tiny(other, songs_file, "seed=5") == 0
    run = tmp_path / "run"
    assert train_tiny(run, songs_file, f"training.init_from={json.dumps(str(source))}") == 0
    own = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)["model"]
    cfg = load_config(run / "config.toml")
    cfg.training.init_from = str(other)  # a resume must not load this
    model, inference = build(cfg)
    trainer = Trainer(model, inference, cfg.training, run_dir=run)
    train, valid = build_training_data(cfg)
    trainer.fit(train, valid)  # already at its last epoch: loads the checkpoint, trains nothing
    assert same(model, own)
    with pytest.raises(RuntimeError, match="has not trained yet"):
        trainer.start_from(other)


def test_a_missing_source_or_weights_that_do_not_fit_start_no_run(tmp_path, songs_file, capsys):
    run = tmp_path / "run"
    assert train_tiny(run, songs_file, "training.init_from='nowhere/best.pt'") == 2
    assert "no checkpoint or run directory at nowhere/best.pt" in capsys.readouterr().err
    assert not (run / "config.toml").exists()  # nothing but the lock file

    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert train_tiny(run, songs_file, f"training.init_from={json.dumps(str(empty))}") == 2
    assert f"{empty} has no best.pt" in capsys.readouterr().err

    source = tmp_path / "source"
    assert train_tiny(source, songs_file) == 0
    capsys.readouterr()
    assert train_tiny(run, songs_file, f"training.init_from={json.dumps(str(source))}",
                      "model.options.latent_dim=5") == 2
    assert "do not fit" in capsys.readouterr().err
    assert not (run / "config.toml").exists()

    assert main(["train", str(MUSIC / "jsb_srnn_avf_k1.toml"), "--dry-run",
                 "--run-dir", str(run), "--set", "training.init_from=' '"]) == 2
    assert "training.init_from must be the path" in capsys.readouterr().err


def test_a_resume_with_another_init_from_says_it_is_not_applied(tmp_path, songs_file, capsys):
    source, other, run = tmp_path / "source", tmp_path / "other", tmp_path / "run"
    assert train_tiny(source, songs_file) == 0
    assert train_tiny(other, songs_file, "seed=5") == 0
    assert train_tiny(run, songs_file, f"training.init_from={json.dumps(str(source))}") == 0
    capsys.readouterr()
    assert train_tiny(run, songs_file, f"training.init_from={json.dumps(str(other))}",
                      "training.epochs=2") == 0
    captured = capsys.readouterr()
    assert "not applied when resuming" in captured.err and "training.init_from" in captured.err
    assert "starting from the weights" not in captured.out
    assert load_config(run / "config.toml").training.init_from == str(source)
