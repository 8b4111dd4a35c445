"""Weight averages (training.ema_decay): the EMA itself, what validation scores, what the
checkpoints keep, and that averaging never changes the training trajectory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from avf import training
from avf.averaging import WeightAverage
from avf.evaluation import evaluate
from avf.training import BEST, CHECKPOINT, Trainer, load_weights
from test_training import config, data, make, same, scripted_validation, snapshot  # noqa: F401


class WithCounter(nn.Module):
    """A parameter and an integer buffer, which must be copied, not averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.register_buffer("count", torch.tensor(0))


def test_the_average_is_an_exponential_moving_average_from_the_first_update() -> None:
    module = WithCounter()
    average = WeightAverage(module, decay=0.9)
    expected = None
    for step, value in enumerate([2.0, -1.0, 4.0, 0.5], start=1):
        with torch.no_grad():
            module.w.fill_(value)
            module.count.fill_(step)
        average.update(module)
        expected = value if expected is None else 0.9 * expected + 0.1 * value
        assert average.module.w.detach() == pytest.approx(torch.full((3,), expected))
        assert int(average.module.count) == step
    assert average.updates == 4
    copy = WeightAverage(WithCounter(), decay=0.9)
    copy.load_state_dict(average.state_dict())
    assert same(snapshot(copy.module), snapshot(average.module)) and copy.updates == 4
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(module, decay=1.0)


def test_averaging_leaves_the_trained_weights_alone_and_validation_scores_the_average(
        data, monkeypatch) -> None:  # noqa: F811
    train, valid = data
    plain = Trainer(*make(), config(epochs=3))
    plain.fit(train, valid)
    averaged = Trainer(*make(), config(epochs=3, ema_decay=0.8))
    scored = []

    def spy(model, inference, batches, **kw):
        scored.append((model, inference))
        return evaluate(model, inference, batches, **kw)

    monkeypatch.setattr(training, "evaluate", spy)
    averaged.fit(train, valid)
    assert same(snapshot(averaged.model), snapshot(plain.model))
    assert same(snapshot(averaged.inference), snapshot(plain.inference))

    model, inference = averaged.scored_modules()
    assert scored and all(m is model and i is inference for m, i in scored)
    assert model is not averaged.model and inference is not averaged.inference
    assert not same(snapshot(model), snapshot(averaged.model))
    assert averaged.averages["model"].updates == averaged.step
    with pytest.raises(ValueError, match=r"training\.ema_decay"):
        config(ema_decay=1.0).check()


def test_averages_resume_exactly_and_reach_best_pt(data, tmp_path: Path) -> None:  # noqa: F811
    train, valid = data
    straight = Trainer(*make(), config(epochs=4, ema_decay=0.7), tmp_path / "a")
    straight.fit(train, valid)
    Trainer(*make(), config(epochs=2, ema_decay=0.7), tmp_path / "b").fit(train, valid)
    resumed = Trainer(*make(seed=5), config(epochs=4, ema_decay=0.7), tmp_path / "b")
    resumed.fit(train, valid)
    for part in ("model", "inference"):
        assert same(snapshot(resumed.averages[part].module),
                    snapshot(straight.averages[part].module))

    best_epoch = min(straight.history, key=lambda r: r["valid_free_energy"])["epoch"]
    model, inference = make(seed=3)
    ckpt = load_weights(tmp_path / "a" / BEST, model, inference, averaged=True)
    assert ckpt["epoch"] == best_epoch
    assert same(snapshot(model), ckpt["average"]["model"]["weights"])
    raw_model, raw_inference = make(seed=3)
    load_weights(tmp_path / "a" / BEST, raw_model, raw_inference)
    assert same(snapshot(raw_model), ckpt["model"])
    assert not same(snapshot(raw_model), snapshot(model))


def test_a_run_without_averages_resumed_with_them_starts_from_its_weights(
        data, tmp_path: Path) -> None:  # noqa: F811
    train, valid = data
    Trainer(*make(), config(epochs=2), tmp_path / "r").fit(train, valid)
    assert torch.load(tmp_path / "r" / CHECKPOINT, weights_only=True)["average"] == {}
    resumed = Trainer(*make(), config(epochs=3, ema_decay=0.5), tmp_path / "r")
    steps_before = 0
    original = resumed._train_step

    def train_step(*args):
        nonlocal steps_before
        if steps_before == 0:  # the first update copies the weights after that step
            steps_before = resumed.step
        return original(*args)

    resumed._train_step = train_step
    resumed.fit(train, valid)
    assert resumed.averages["model"].updates == resumed.step - steps_before


@pytest.mark.parametrize("rewind", ["average", "trained"])
def test_a_cut_rewinds_the_averages_too(data, tmp_path: Path, rewind: str) -> None:  # noqa: F811
    train, valid = data
    trainer = Trainer(*make(), config(epochs=4, plateau_patience=2, ema_decay=0.5,
                                      plateau_rewind_weights=rewind), tmp_path / "r")
    scripted_validation(trainer, [5.0, 4.0, 4.5, 4.2])
    seen, live = {}, {}
    original = trainer._run_epoch

    def run_epoch(*args):
        original(*args)
        seen[trainer.epoch] = snapshot(trainer.averages["inference"].module)
        live[trainer.epoch] = snapshot(trainer.inference)

    trainer._run_epoch = run_epoch
    history = trainer.fit(train, valid)
    assert history[3].get("lr_cut")
    assert same(seen[4], seen[2])  # epoch 4's cut went back to epoch 2's average
    assert not same(seen[2], live[2])  # so that the two rewinds below differ
    # training goes on from the weights validation chose, or from that epoch's raw ones
    assert same(live[4], seen[2] if rewind == "average" else live[2])
    saved = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert saved["lr_cut"] is True
    with pytest.raises(ValueError, match=r"training\.plateau_rewind_weights"):
        config(plateau_rewind_weights="best").check()
