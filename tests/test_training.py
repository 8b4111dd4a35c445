"""The trainer: who learns, at what rate, exact resumption, and crash-safe checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.distributions import MultivariateNormal

from avf.callbacks import BatchEnd, Callback
from avf.data import Sequences, sample_dataset
from avf.evaluation import Score
from avf.inference import Iterative, PriorOnly
from avf.models import LinearGaussian
from avf.run_lock import LOCK_NAME
from avf.stopping import cut_due, stop_reason_of, validations_without_improvement
from avf.training import (
    CHECKPOINT,
    TrainConfig,
    Trainer,
    kl_weight,
    load_weights,
)
from avf.validation import NonFiniteError


class Fragile(LinearGaussian):
    """An LGSSM whose likelihood turns infinite after ``poison_at`` calls (a mid-run crash)."""

    calls = 0
    poison_at: int | None = None

    def likelihood(self, z, state) -> MultivariateNormal:
        self.calls += 1
        dist = super().likelihood(z, state)
        if self.poison_at is not None and self.calls > self.poison_at:
            return MultivariateNormal(dist.loc + float("inf"), scale_tril=dist.scale_tril)
        return dist


def make(seed: int = 0, cls: type[LinearGaussian] = LinearGaussian):
    """A tiny model (θ) and iterative inference model (φ), initialised from ``seed``."""
    torch.manual_seed(seed)
    model = cls.random(latent_dim=2, obs_dim=2, seed=1)
    return model, Iterative(2, iterations=1, hidden=16, layers=1)


@pytest.fixture(scope="module")
def data() -> tuple[Sequences, Sequences]:
    source = sample_dataset(LinearGaussian.random(latent_dim=2, obs_dim=2, seed=0), 10, 6, 0)
    lengths = [6, 4, 5, 3, 6, 2, 6, 5]
    train = Sequences.from_list([source.x[i, :n] for i, n in enumerate(lengths)])
    return train, source.subset([8, 9])


def config(**kw) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 3, "model_lr": 1e-2, "inference_lr": 1e-2,
            "progress": False}
    return TrainConfig(**{**base, **kw})


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kl_weight_rises_linearly_to_one() -> None:
    cfg = TrainConfig(kl_anneal_epochs=2, kl_anneal_start=0.2)
    values = [kl_weight(s, 5, cfg) for s in (0, 5, 10, 20)]
    assert values == pytest.approx([0.2, 0.6, 1.0, 1.0])
    assert kl_weight(0, 5, TrainConfig()) == 1.0


def test_resuming_gives_bit_identical_parameters(data, tmp_path: Path) -> None:
    train, valid = data
    kw = {"kl_anneal_epochs": 3, "kl_anneal_start": 0.1, "lr_decay": 0.8, "grad_clip": 5.0}
    model, inference = make()
    straight = Trainer(model, inference, config(epochs=4, **kw), tmp_path / "a").fit(train, valid)

    model2, inference2 = make()
    Trainer(model2, inference2, config(epochs=2, **kw), tmp_path / "b").fit(train, valid)
    model3, inference3 = make(seed=99)  # a fresh process would build from scratch
    resumed = Trainer(model3, inference3, config(epochs=4, **kw), tmp_path / "b").fit(
        train, valid)

    assert same(snapshot(model), snapshot(model3))
    assert same(snapshot(inference), snapshot(inference3))
    drop = ("epoch_time", "wall_time")
    assert [{k: v for k, v in r.items() if k not in drop} for r in straight] == [
        {k: v for k, v in r.items() if k not in drop} for r in resumed]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_time_limit_stops_with_a_checkpoint_and_the_same_call_resumes(data, tmp_path: Path) -> None:
    train, valid = data
    kw = {"checkpoint_every": 3}
    model, inference = make()
    straight = Trainer(model, inference, config(epochs=3, **kw), tmp_path / "a").fit(train, valid)

    model2, inference2 = make()
    first = Trainer(model2, inference2, config(epochs=3, **kw), tmp_path / "b").fit(
        train, valid, time_limit=1e-9)  # already past after the first epoch
    assert [r["epoch"] for r in first] == [1]
    model3, inference3 = make(seed=99)
    Trainer(model3, inference3, config(epochs=3, **kw), tmp_path / "b").fit(train, valid)
    assert same(snapshot(model), snapshot(model3))
    assert same(snapshot(inference), snapshot(inference3))
    assert len(straight) == 3
    with pytest.raises(ValueError, match="time_limit"):
        Trainer(*make(), config(epochs=1)).fit(train, valid, time_limit=0)


def test_patience_counts_validations_since_the_best() -> None:
    trainer = Trainer(*make(), config(patience=2))
    assert not trainer.out_of_patience()  # no validation yet
    for epoch, score in enumerate([5.0, 4.0, 4.5, 4.0], start=1):  # a tie is not a new best
        trainer.history.append({"epoch": epoch, "valid_free_energy": score})
    assert trainer.out_of_patience()
    trainer.history.append({"epoch": 5})  # epochs without validation do not count
    assert trainer.out_of_patience()
    trainer.history.append({"epoch": 6, "valid_free_energy": 3.9})
    assert not trainer.out_of_patience()
    assert not Trainer(*make(), config(patience=0)).out_of_patience()
    with pytest.raises(ValueError, match=r"training\.patience"):
        config(patience=-1).check()


def test_training_stops_once_validation_stops_improving(data, tmp_path: Path) -> None:
    train, valid = data
    frozen = config(epochs=60, model_lr=0.0, inference_lr=0.0, patience=2, checkpoint_every=7)
    history = Trainer(*make(), frozen, tmp_path / "r").fit(train, valid)
    assert len(history) < 60  # nothing learns, so new bests soon stop coming
    scores = [r["valid_free_energy"] for r in history]
    assert min(scores) < min(scores[-2:])  # the last two validations did not beat the best
    resumed = Trainer(*make(), frozen, tmp_path / "r")
    assert resumed.fit(train, valid)[-1]["epoch"] == history[-1]["epoch"]  # already done


def test_nan_mid_training_leaves_the_last_checkpoint_intact(data, tmp_path: Path) -> None:
    train, valid = data
    probe_model, probe_inference = make(cls=Fragile)
    Trainer(probe_model, probe_inference, config(epochs=2)).fit(train, valid)
    per_two_epochs = probe_model.calls

    model, inference = make(cls=Fragile)
    model.poison_at = per_two_epochs + per_two_epochs // 4  # early in epoch 3
    with pytest.raises(NonFiniteError, match=r"epoch 3, batch \d+: non-finite reconstruction"):
        Trainer(model, inference, config(epochs=4), tmp_path).fit(train, valid)

    fresh_model, fresh_inference = make(seed=5)
    ckpt = load_weights(tmp_path / CHECKPOINT, fresh_model, fresh_inference)
    assert ckpt["epoch"] == 2
    assert same(snapshot(fresh_model), snapshot(probe_model))
    assert same(snapshot(fresh_inference), snapshot(probe_inference))
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_write_keeps_the_previous_checkpoint(data, tmp_path: Path, monkeypatch) -> None:
    train, _ = data
    trainer = Trainer(*make(), config(epochs=1), tmp_path)
    trainer.fit(train)
    before = (tmp_path / CHECKPOINT).read_bytes()

    def broken_save(_obj, f) -> None:
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    trainer.config.epochs = 2
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(train)
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME, "checkpoint.pt",
                                                          "metrics.jsonl"]


def test_non_finite_gradients_name_the_parameter(data) -> None:
    train, _ = data
    model, inference = make()
    model.A.register_hook(lambda g: g * float("nan"))
    with pytest.raises(NonFiniteError, match="epoch 1, batch 1: non-finite gradient in model "
                                             "parameter 'A'"):
        Trainer(model, inference, config()).fit(train)


def test_fixed_model_only_inference_learns(data) -> None:
    train, _ = data
    model, inference = make()
    theta, phi = snapshot(model), snapshot(inference)
    trainer = Trainer(model, inference, config(train_model=False))
    trainer.fit(train)
    assert trainer.optimizers["model"] is None
    assert same(snapshot(model), theta)
    assert not same(snapshot(inference), phi)


@pytest.mark.parametrize(("model_lr", "inference_lr"), [(0.0, 1e-2), (1e-2, 0.0)])
def test_each_parameter_set_uses_its_own_learning_rate(data, model_lr, inference_lr) -> None:
    train, _ = data
    model, inference = make()
    theta, phi = snapshot(model), snapshot(inference)
    Trainer(model, inference, config(model_lr=model_lr, inference_lr=inference_lr)).fit(train)
    assert same(snapshot(model), theta) == (model_lr == 0)
    assert same(snapshot(inference), phi) == (inference_lr == 0)


def test_learning_rates_decay_every_epoch_and_are_logged(data, tmp_path: Path) -> None:
    train, valid = data
    trainer = Trainer(*make(), config(epochs=3, lr_decay=0.5, model_lr=0.02,
                                      kl_anneal_epochs=2), tmp_path)
    history = trainer.fit(train, valid)
    assert [r["model_lr"] for r in history] == pytest.approx([0.02, 0.01, 0.005])
    assert [r["inference_lr"] for r in history] == pytest.approx([0.01, 0.005, 0.0025])
    assert trainer.optimizers["model"].param_groups[0]["lr"] == pytest.approx(0.0025)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == json.loads(json.dumps(history))
    steps_per_epoch = train.num_batches(3)
    assert [r["step"] for r in records] == [steps_per_epoch * e for e in (1, 2, 3)]
    # β of each epoch's last batch, annealed over two epochs
    assert [r["beta"] for r in records] == pytest.approx(
        [(steps_per_epoch - 1) / (2 * steps_per_epoch), (2 * steps_per_epoch - 1) /
         (2 * steps_per_epoch), 1.0])
    for r in records:
        assert {"train_free_energy", "train_recon", "train_kl", "valid_free_energy",
                "valid_macro_free_energy", "wall_time"} <= r.keys()
        assert r["train_free_energy"] == pytest.approx(r["train_recon"] + r["train_kl"])
    assert (tmp_path / "best.pt").is_file()


def test_validation_and_checkpoint_intervals(data, tmp_path: Path) -> None:
    train, valid = data
    history = Trainer(*make(), config(epochs=3, valid_every=2, checkpoint_every=2),
                      tmp_path).fit(train, valid)
    assert ["valid_free_energy" in r for r in history] == [False, True, True]  # last always
    assert load_weights(tmp_path / CHECKPOINT, *make())["epoch"] == 3


def test_models_without_parameters_train_nothing_but_run(data) -> None:
    train, _ = data
    model = LinearGaussian.random(latent_dim=2, obs_dim=2)
    trainer = Trainer(model, PriorOnly(), config(train_model=False))
    with pytest.warns(UserWarning, match="nothing to train"):
        history = trainer.fit(train)
    assert len(history) == 2 and trainer.optimizers == {"model": None, "inference": None}


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"training\.batch_size"):
        Trainer(*make(), TrainConfig(batch_size=0))
    with pytest.raises(ValueError, match=r"training\.lr_decay"):
        Trainer(*make(), TrainConfig(lr_decay=0.0))


def scripted_validation(trainer: Trainer, scores: list[float]) -> None:
    """Make ``trainer`` see ``scores`` as its validations, one per validating epoch, in order."""
    queue = list(scores)

    def validate(_valid, _epoch):
        value = queue.pop(0)
        return Score(free_energy=value, macro_free_energy=value, recon=value, kl=0.0,
                     steps=1, sequences=1, trace=[value])

    trainer._validate = validate


def test_validations_without_improvement_restart_at_a_cut() -> None:
    history = [{"epoch": 1, "valid_free_energy": 4.0}, {"epoch": 2, "valid_free_energy": 5.0},
               {"epoch": 3}, {"epoch": 4, "valid_free_energy": 4.0, "lr_cut": True},
               {"epoch": 5, "valid_free_energy": 4.5}]
    assert validations_without_improvement(history) == 3
    assert validations_without_improvement(history, since_cut=True) == 1
    assert validations_without_improvement([]) == 0
    with pytest.raises(ValueError, match=r"training\.plateau_factor"):
        config(plateau_factor=1.0).check()
    with pytest.raises(ValueError, match=r"training\.plateau_patience"):
        config(plateau_patience=-1).check()


@pytest.mark.parametrize("with_run_dir", [True, False], ids=["best.pt", "in memory"])
def test_a_plateau_cuts_the_rates_and_rewinds_to_the_best(data, tmp_path: Path,
                                                           with_run_dir: bool) -> None:
    train, valid = data
    cfg = config(epochs=6, plateau_patience=2, plateau_factor=0.1, lr_decay=0.5)
    trainer = Trainer(*make(), cfg, tmp_path / "r" if with_run_dir else None)
    scripted_validation(trainer, [5.0, 4.0, 4.5, 4.2, 4.1, 3.0])
    seen: dict[int, tuple] = {}
    original_run_epoch = trainer._run_epoch

    def run_epoch(*args):
        original_run_epoch(*args)
        adam_steps = trainer.optimizers["model"].state_dict()["state"][0]["step"].item()
        seen[trainer.epoch] = (snapshot(trainer.model), snapshot(trainer.inference), adam_steps)

    trainer._run_epoch = run_epoch
    history = trainer.fit(train, valid)
    assert [bool(r.get("lr_cut")) for r in history] == [False, False, False, True, False, False]
    rates = [r["model_lr"] for r in history]
    assert rates[:4] == pytest.approx([1e-2, 5e-3, 2.5e-3, 1.25e-3])
    assert rates[4] == pytest.approx(1.25e-3 * 0.5 * 0.1)  # decayed, then cut
    assert history[5]["inference_lr"] == pytest.approx(rates[4] * 0.5)
    best, cut = seen[2], seen[4]  # after epoch 4's cut: epoch 2's weights and Adam states
    assert same(cut[0], best[0]) and same(cut[1], best[1]) and cut[2] == best[2]
    assert not same(seen[3][0], best[0])  # epochs 3 and 4 had moved on from there
    assert trainer.best_valid == 3.0


def test_a_cut_survives_a_resume(data, tmp_path: Path) -> None:
    train, valid = data
    scores = [5.0, 4.0, 4.5, 4.2, 4.3, 4.4, 4.6]
    cfg = config(epochs=7, plateau_patience=2, checkpoint_every=1)
    straight = Trainer(*make(), cfg, tmp_path / "a")
    scripted_validation(straight, scores)
    expected = straight.fit(train, valid)

    first = Trainer(*make(), config(epochs=5, plateau_patience=2, checkpoint_every=1),
                    tmp_path / "b")
    scripted_validation(first, scores[:5])
    first.fit(train, valid)
    resumed = Trainer(*make(), cfg, tmp_path / "b")
    scripted_validation(resumed, scores[5:])
    got = resumed.fit(train, valid)
    assert [r.get("lr_cut") for r in got] == [r.get("lr_cut") for r in expected]
    assert [r.get("lr_cut") for r in got] == [None, None, None, True, None, True, None]
    assert [r["model_lr"] for r in got] == pytest.approx([r["model_lr"] for r in expected])
    assert same(snapshot(resumed.model), snapshot(straight.model))


def test_max_cuts_then_a_plateau_ends_training(data) -> None:
    train, valid = data
    trainer = Trainer(*make(), config(epochs=10, plateau_patience=1, plateau_max_cuts=1))
    scripted_validation(trainer, [5.0, 4.0, 4.5, 4.6, 3.0])
    history = trainer.fit(train, valid)
    assert [bool(r.get("lr_cut")) for r in history] == [False, False, True, False]
    assert history[3]["model_lr"] == pytest.approx(1e-3)  # the one cut, not a second
    with pytest.raises(ValueError, match=r"training\.plateau_max_cuts"):
        config(plateau_max_cuts=-1).check()
    with pytest.raises(ValueError, match=r"plateau_max_cuts needs training\.plateau_patience"):
        config(plateau_max_cuts=2).check()


def test_min_improvement_counts_a_creep_of_tiny_gains_only_once_it_adds_up() -> None:
    scores = [5.0, 4.0, 3.9999, 3.9998, 3.9997, 3.5, 3.4999]
    history = [{"epoch": i + 1, "valid_free_energy": v} for i, v in enumerate(scores)]
    assert validations_without_improvement(history) == 0  # every score is a new lowest
    assert validations_without_improvement(history, min_improvement=1e-3) == 1  # after 3.5
    assert validations_without_improvement(history[:5], min_improvement=1e-3) == 3  # after 4.0
    creep = [{"epoch": i + 1, "valid_free_energy": 4.0 - 4e-4 * i} for i in range(4)]
    assert validations_without_improvement(creep, min_improvement=1e-3) == 0  # 1.2e-3 in all
    with pytest.raises(ValueError, match=r"training\.min_improvement"):
        config(min_improvement=-1e-3).check()


def test_a_cut_that_finds_nothing_ends_training_with_plateau_stop_without_gain(data) -> None:
    """The first cut finds a new best (3.0), so the next plateau cuts again; the second cut
    finds nothing, so its plateau ends the run, with cuts still left."""
    train, valid = data
    settings = config(epochs=12, plateau_patience=1, plateau_max_cuts=5,
                      plateau_stop_without_gain=True)
    trainer = Trainer(*make(), settings)
    scripted_validation(trainer, [5.0, 4.0, 4.5, 3.0, 3.5, 3.6, 3.0, 2.0])
    history = trainer.fit(train, valid)
    assert [bool(r.get("lr_cut")) for r in history] == [False, False, True, False, True, False]
    assert trainer.stop_reason() == "plateau_without_gain"
    assert not cut_due(history, settings)
    without = config(epochs=12, plateau_patience=1, plateau_max_cuts=5)
    assert stop_reason_of(history, without) is None and cut_due(history, without)
    with pytest.raises(ValueError, match=r"plateau_stop_without_gain needs training\.plateau_p"):
        config(plateau_stop_without_gain=True).check()


def test_final_min_improvement_applies_only_after_the_last_allowed_cut() -> None:
    """The same creep before and after the one allowed cut: with final_min_improvement the
    first stage counts every tiny gain (so its cut stays where it was) and only the last stage
    needs gains above the threshold."""
    scores = [5.0, 4.0, 4.1, 4.2, 3.9999, 3.9998, 3.9997, 3.9996]
    history = [{"epoch": i + 1, "valid_free_energy": v} for i, v in enumerate(scores)]
    history[3]["lr_cut"] = True
    final = {"final_min_improvement": 1e-3, "final_after_cuts": 1}
    assert validations_without_improvement(history, **final) == 6  # the creep after the cut
    assert validations_without_improvement(history[:3], **final) == 1  # before it: as with 0
    assert validations_without_improvement(history, final_min_improvement=1e-3) == 0  # no cuts
    settings = config(plateau_patience=2, plateau_max_cuts=1, final_min_improvement=1e-3)
    assert cut_due([{**r, "lr_cut": False} for r in history[:4]], settings)
    assert stop_reason_of(history[:6], settings) == "plateau_max_cuts"
    assert stop_reason_of(history[:6], config(plateau_patience=2, plateau_max_cuts=1)) is None
    # a creep in the first stage under min_improvement = 1e-3 moves the cut; under final_ it
    # does not
    early = [{"epoch": i + 1, "valid_free_energy": 4.0 - 1e-4 * i} for i in range(3)]
    assert cut_due(early, config(plateau_patience=2, min_improvement=1e-3))
    assert not cut_due(early, settings)
    with pytest.raises(ValueError, match=r"training\.final_min_improvement must be >= 0"):
        config(plateau_patience=2, plateau_max_cuts=1, final_min_improvement=-1.0).check()
    with pytest.raises(ValueError, match=r"final_min_improvement needs training\.plateau_max"):
        config(final_min_improvement=1e-3).check()


def test_min_improvement_lets_patience_end_a_run_that_only_creeps(data, tmp_path: Path) -> None:
    """At a tiny learning rate a valid_seed run improves by 1e-5 a validation and never runs
    out of patience; with min_improvement it stops, and best.pt still holds the lowest score."""
    train, valid = data
    creep = [4.0 - 1e-5 * i for i in range(10)]
    endless = Trainer(*make(), config(epochs=10, patience=3), tmp_path / "endless")
    scripted_validation(endless, creep)
    assert len(endless.fit(train, valid)) == 10
    stopping = Trainer(*make(), config(epochs=10, patience=3, min_improvement=1e-3),
                       tmp_path / "stopping")
    scripted_validation(stopping, creep)
    assert len(stopping.fit(train, valid)) == 4
    assert stopping.best_valid == pytest.approx(creep[3])
    assert load_weights(tmp_path / "stopping" / "best.pt", *make())["epoch"] == 4


def test_a_cut_without_best_pt_says_so(data, tmp_path: Path) -> None:
    train, valid = data
    trainer = Trainer(*make(), config(epochs=4, plateau_patience=1), tmp_path)
    scripted_validation(trainer, [5.0, 6.0])
    original_run_epoch = trainer._run_epoch

    def run_epoch(*args):
        if trainer.epoch == 1:
            (tmp_path / "best.pt").unlink()
        original_run_epoch(*args)

    trainer._run_epoch = run_epoch
    with pytest.raises(FileNotFoundError, match=r"best\.pt is missing.*plateau_restore_best"):
        trainer.fit(train, valid)


def test_weight_decay_is_decoupled_and_per_parameter_set() -> None:
    trainer = Trainer(*make(), config(model_weight_decay=0.5))
    model_opt, inference_opt = trainer.optimizers["model"], trainer.optimizers["inference"]
    assert type(model_opt) is torch.optim.AdamW and type(inference_opt) is torch.optim.Adam
    assert model_opt.param_groups[0]["weight_decay"] == 0.5
    # with a zero gradient Adam's step is 0, so only the decay moves θ: θ ← θ (1 - lr · decay)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    for p in trainer.model.parameters():
        p.grad = torch.zeros_like(p)
    model_opt.step()
    for b, p in zip(before, trainer.model.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), b * (1 - 1e-2 * 0.5))
    for name in ("model_weight_decay", "inference_weight_decay"):
        with pytest.raises(ValueError, match=rf"training\.{name}"):
            config(**{name: -0.1}).check()


@pytest.mark.parametrize(("n_samples", "valid_samples", "expected"),
                         [(1, None, 1), (2, None, 2), (1, 4, 4)])
def test_validation_averages_valid_samples(data, monkeypatch, n_samples, valid_samples,
                                           expected) -> None:
    import avf.training

    seen = []
    real = avf.training.evaluate

    def spy(*args, **kw):
        seen.append(kw["n_samples"])
        return real(*args, **kw)

    monkeypatch.setattr(avf.training, "evaluate", spy)
    train, valid = data
    Trainer(*make(), config(epochs=1, n_samples=n_samples, valid_samples=valid_samples)).fit(
        train, valid)
    assert seen == [expected]
    with pytest.raises(ValueError, match=r"training\.valid_samples"):
        config(valid_samples=0).check()


def test_a_cut_between_validations_waits_for_the_next_ones() -> None:
    """A run resumed with a new plateau_patience may cut at an epoch without validation; the
    count since that cut must start there, not re-cut every epoch until the next validation."""
    history = [{"epoch": 1, "valid_free_energy": 4.0}, {"epoch": 2, "valid_free_energy": 5.0},
               {"epoch": 3, "valid_free_energy": 5.0}, {"epoch": 4, "lr_cut": True},
               {"epoch": 5}]
    assert validations_without_improvement(history, since_cut=True) == 0
    history.append({"epoch": 6, "valid_free_energy": 4.5})
    assert validations_without_improvement(history, since_cut=True) == 1
    assert validations_without_improvement(history) == 3


def test_resuming_with_a_new_plateau_patience_cuts_once(data, tmp_path: Path) -> None:
    train, valid = data
    first = Trainer(*make(), config(epochs=3), tmp_path)
    scripted_validation(first, [4.0, 5.0, 5.0])
    first.fit(train, valid)
    resumed = Trainer(*make(), config(epochs=6, valid_every=3, plateau_patience=2), tmp_path)
    scripted_validation(resumed, [4.5])
    history = resumed.fit(train, valid)
    assert [bool(r.get("lr_cut")) for r in history] == [False, False, False, True, False, False]


def test_a_run_resumed_with_a_new_weight_decay_uses_it(data, tmp_path: Path) -> None:
    train, valid = data
    Trainer(*make(), config(epochs=1), tmp_path).fit(train, valid)
    resumed = Trainer(*make(), config(epochs=2, model_weight_decay=0.5), tmp_path)
    resumed.load_checkpoint(tmp_path / CHECKPOINT)  # its Adam state says weight_decay = 0
    assert resumed.optimizers["model"].param_groups[0]["weight_decay"] == 0.5
    assert resumed.optimizers["inference"].param_groups[0]["weight_decay"] == 0.0


class Recorder(Callback):
    """Keeps what every hook saw, and asks the trainer to stop after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.batches: list[BatchEnd] = []
        self.epochs: list[dict] = []
        self.stop_after = stop_after

    def on_batch_end(self, trainer: Trainer, batch: BatchEnd) -> None:
        self.batches.append(batch)

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        self.epochs.append(record)
        if self.stop_after is not None and record["epoch"] >= self.stop_after:
            trainer.request_stop()


def test_callbacks_see_every_batch_and_epoch_as_trained(data, tmp_path: Path) -> None:
    train, valid = data  # 8 sequences in batches of 3: 3 batches an epoch
    seen = Recorder()
    history = Trainer(*make(), config(epochs=2, kl_anneal_epochs=1), tmp_path,
                      callbacks=[seen]).fit(train, valid)
    assert [(b.epoch, b.batch, b.step) for b in seen.batches] == [
        (1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 4), (2, 2, 5), (2, 3, 6)]
    assert [b.beta for b in seen.batches] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1, 1])
    # each batch's output is the batch it trained on: the epoch's steps add up to the data's
    first_epoch_steps = sum(int(b.output.steps) for b in seen.batches[:3])
    assert first_epoch_steps == int(train.mask.sum())
    weighted = sum(b.free_energy() * int(b.output.steps) for b in seen.batches[3:])
    assert weighted / int(train.mask.sum()) == pytest.approx(history[1]["train_free_energy"])
    assert seen.epochs == history
    seen.epochs[0]["epoch"] = 99  # a callback's copy: changing it changes no log
    assert history[0]["epoch"] == 1


def test_a_callback_can_stop_the_run_and_the_same_call_resumes(data, tmp_path: Path) -> None:
    train, valid = data
    model, inference = make()
    straight = Trainer(model, inference, config(epochs=3, checkpoint_every=3),
                       tmp_path / "a").fit(train, valid)
    model2, inference2 = make()
    stopped = Trainer(model2, inference2, config(epochs=3, checkpoint_every=3), tmp_path / "b",
                      callbacks=[Recorder(stop_after=1)]).fit(train, valid)
    assert [r["epoch"] for r in stopped] == [1]
    assert (tmp_path / "b" / CHECKPOINT).exists()  # saved although checkpoint_every is 3
    model3, inference3 = make(seed=99)
    resumed = Trainer(model3, inference3, config(epochs=3, checkpoint_every=3), tmp_path / "b",
                      callbacks=[Recorder()]).fit(train, valid)
    assert [r["epoch"] for r in resumed] == [1, 2, 3] == [r["epoch"] for r in straight]
    assert same(snapshot(model), snapshot(model3))
    assert same(snapshot(inference), snapshot(inference3))


def test_a_callback_that_is_not_one_is_named() -> None:
    def on_batch_end(trainer: Trainer, batch: BatchEnd) -> None:
        del trainer, batch

    with pytest.raises(TypeError, match="Callback instances, got function"):
        Trainer(*make(), config(), callbacks=[on_batch_end])


def test_random_state_puts_back_every_stream():
    """After a restore, torch, numpy, Python and the shuffling generator repeat their draws."""
    import random

    import numpy as np

    from avf.random_state import random_state, seed_everything, set_random_state

    seed_everything(3)
    shuffle = torch.Generator().manual_seed(5)
    saved = random_state(shuffle)

    def draws():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(),
                torch.randperm(6, generator=shuffle).tolist())

    first = draws()
    set_random_state(saved, shuffle)
    assert draws() == first
    assert draws() != first  # the streams moved on; the check above could fail


def test_a_validation_seed_draws_the_same_noise_every_time(data) -> None:
    _, valid = data
    for valid_seed, repeatable in [(11, True), (None, False)]:
        trainer = Trainer(*make(), config(valid_seed=valid_seed))
        first, second = (trainer._validate(valid, epoch=1).free_energy for _ in range(2))
        assert (first == second) is repeatable  # the same weights: only the noise can differ


def test_a_validation_seed_leaves_training_as_it_would_be(data) -> None:
    """With common random numbers validation draws from a fork, so how much it draws (more
    samples per step) cannot change the training run; without them it does."""
    train, valid = data
    for valid_seed, isolated in [(5, True), (None, False)]:
        runs = []
        for valid_samples in (1, 3):
            model, inference = make()
            Trainer(model, inference, config(epochs=3, valid_seed=valid_seed,
                                             valid_samples=valid_samples)).fit(train, valid)
            runs.append(snapshot(model))
        assert same(*runs) is isolated


def poison_gradients(model: LinearGaussian, at_batches: set[int]) -> None:
    """Make θ's gradient NaN in these training batches (counted from 1 over the whole run)."""
    calls = {"n": 0}

    def hook(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return grad * float("nan") if calls["n"] in at_batches else grad

    model.A.register_hook(hook)


@pytest.mark.parametrize("with_run_dir", [True, False], ids=["best.pt", "in memory"])
def test_a_divergence_cut_goes_back_to_the_best_weights_with_smaller_rates(
        data, tmp_path: Path, with_run_dir: bool) -> None:
    train, valid = data  # 3 batches per epoch: batch 8 is epoch 3's second
    model, inference = make()
    poison_gradients(model, {8})
    cfg = config(epochs=5, divergence_cuts=1, plateau_factor=0.1)
    trainer = Trainer(model, inference, cfg, tmp_path / "r" if with_run_dir else None)
    scripted_validation(trainer, [5.0, 4.0, 4.5, 4.6, 4.7])
    best_weights: dict[int, tuple] = {}
    rewound: list[tuple] = []
    original_run_epoch, original_rewind = trainer._run_epoch, trainer._rewind_to_best

    def run_epoch(*args):
        original_run_epoch(*args)
        best_weights[trainer.epoch] = (snapshot(trainer.model), snapshot(trainer.inference))

    def rewind():
        original_rewind()
        rewound.append((snapshot(trainer.model), snapshot(trainer.inference)))

    trainer._run_epoch, trainer._rewind_to_best = run_epoch, rewind
    with pytest.warns(UserWarning, match=r"(?s)epoch 3, batch 2: non-finite gradient in model "
                                         r"parameter 'A'.*went back to the best"):
        history = trainer.fit(train, valid)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]  # the run went on
    assert [bool(r.get("lr_cut")) for r in history] == [False, False, True, False, False]
    assert "epoch 3, batch 2: non-finite gradient" in history[2]["divergence"]
    assert history[3]["model_lr"] == pytest.approx(1e-3)  # cut once, from 1e-2
    assert len(rewound) == 1  # to epoch 2's weights, the best validation's
    assert same(rewound[0][0], best_weights[2][0]) and same(rewound[0][1], best_weights[2][1])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_divergence_cuts_are_limited_and_need_a_best_to_go_back_to(data, tmp_path: Path) -> None:
    train, valid = data
    model, inference = make()
    poison_gradients(model, {4, 10})  # epochs 2 and 4
    trainer = Trainer(model, inference, config(epochs=5, divergence_cuts=1), tmp_path)
    scripted_validation(trainer, [5.0, 4.0, 4.5, 4.6])
    with pytest.warns(UserWarning, match="epoch 2, batch 1"), pytest.raises(
            NonFiniteError, match=r"epoch 4, batch 1: non-finite gradient.*no divergence cut: "
                                  r"training\.divergence_cuts = 1 used up"):
        trainer.fit(train, valid)
    assert load_weights(tmp_path / CHECKPOINT, *make(seed=3))["epoch"] == 3  # kept as it was

    model, inference = make()
    poison_gradients(model, {2})  # epoch 1, before any validation kept a best
    with pytest.raises(NonFiniteError, match="no validation has kept best weights"):
        Trainer(model, inference, config(divergence_cuts=1), tmp_path / "fresh").fit(train, valid)

    model, inference = make()
    poison_gradients(model, {4, 5})  # twice in epoch 2
    with pytest.warns(UserWarning), pytest.raises(NonFiniteError,
                                                  match="this epoch already made one"):
        Trainer(model, inference, config(divergence_cuts=2)).fit(train, valid)
    with pytest.raises(ValueError, match=r"training\.divergence_cuts must be >= 0"):
        config(divergence_cuts=-1).check()


def test_a_divergence_cut_counts_as_one_of_the_plateau_cuts(data) -> None:
    train, valid = data
    model, inference = make()
    poison_gradients(model, {4})  # epoch 2
    cfg = config(epochs=10, divergence_cuts=2, plateau_patience=1, plateau_max_cuts=1)
    trainer = Trainer(model, inference, cfg)
    scripted_validation(trainer, [5.0, 4.0, 4.5, 3.0])
    with pytest.warns(UserWarning, match="went back to the best"):
        history = trainer.fit(train, valid)
    assert [bool(r.get("lr_cut")) for r in history] == [False, True, False]
    assert trainer.stop_reason() == "plateau_max_cuts"  # epoch 3's plateau ends the run

    model, inference = make()
    poison_gradients(model, {10})  # epoch 4, after the one allowed plateau cut
    trainer = Trainer(model, inference, cfg)
    scripted_validation(trainer, [5.0, 4.0, 4.5, 3.0])
    with pytest.raises(NonFiniteError, match=r"plateau_max_cuts = 1 cuts used up"):
        trainer.fit(train, valid)
