"""The paper's polyphonic-music experiments: config schema, shipped files, fresh crops, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avf.builders import build_inference, build_model, observation_size
from avf.cli import main
from avf.config import from_dict, load_config, save_config
from avf.data import transpose_rolls
from avf.datasets import EpochCrops, build_datasets, build_training_data
from avf.inference import Iterative
from avf.models import DMM, SRNN, VRNN
from avf.models.encoders import DMMEncoder, SRNNEncoder, VRNNEncoder
from avf.training import TrainConfig, Trainer
from conftest import TINY_MUSIC_RUN, music_data_dir

MUSIC = Path(__file__).resolve().parents[1] / "experiments" / "music"


def music(**data) -> dict:
    return {"model": {"name": "srnn"}, "data": {"source": "music", **data}}


# -- the schema -------------------------------------------------------------------------------
def test_music_config_parses_and_round_trips(tmp_path: Path) -> None:
    cfg = from_dict(music(dataset="jsb"))
    assert (cfg.data.dataset, cfg.data.crop) == ("jsb", 25)  # the paper's windows by default
    # the synthetic keys do not apply and are left out of the resolved config
    assert cfg.data.train_sequences is None and cfg.data.steps is None
    save_config(cfg, tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    assert "train_sequences" not in text and 'dataset = "jsb"' in text
    assert load_config(tmp_path / "config.toml") == cfg
    assert from_dict(music(dataset="piano", crop=0)).data.crop == 0  # whole songs
    assert cfg.data.whole_valid is False  # validation on windows unless asked
    whole = from_dict(music(dataset="jsb", whole_valid=True))
    save_config(whole, tmp_path / "whole.toml")
    assert load_config(tmp_path / "whole.toml").data.whole_valid is True
    assert cfg.data.crop_sampling == "song"  # the paper's: one window per song
    per_step = from_dict(music(dataset="jsb", crop_sampling="step"))
    save_config(per_step, tmp_path / "step.toml")
    assert load_config(tmp_path / "step.toml").data.crop_sampling == "step"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"data": {"dataset": "jsb"}}, r"data\.dataset only applies to source = 'music'"),
        ({"data": {"crop": 25}}, r"data\.crop only applies to source = 'music'"),
        (music(dataset="jsb", train_sequences=3), r"data\.train_sequences only applies to "
                                                  "source = 'synthetic'"),
        (music(dataset="jsb", generator={"seed": 1}), r"data\.generator only applies"),
        (music(), r"data\.dataset is required"),
        (music(dataset="jsb", crop=-1), r"data\.crop must be >= 0"),
        (music(dataset="jsb", crops=25), r"unknown key 'data\.crops'"),
        ({"data": {"source": "midi"}}, "unknown data source 'midi'; known: synthetic, music"),
        (music(dataset="jsb", transpose=13), r"data\.transpose must be a number of semitones "
                                             "from 0 to 12, got 13"),
        (music(dataset="jsb", crop=0, transpose=2), r"data\.transpose needs data\.crop > 0"),
        ({"data": {"source": "speech", "dataset": "fsdd", "transpose": 2}},
         r"data\.transpose only applies to source = 'music'"),
        (music(dataset="jsb", whole_valid="yes"), r"data\.whole_valid must be true or false"),
        ({"data": {"source": "speech", "dataset": "fsdd", "whole_valid": True}},
         r"data\.whole_valid only applies to source = 'music'"),
        (music(dataset="jsb", crop_sampling="length"),
         r"data\.crop_sampling must be one of song, step, got 'length'"),
    ],
)
def test_music_schema_errors_are_named(raw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_dict(raw)


def test_overrides_switch_a_config_to_music(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\nname = "srnn"\n')
    cfg = load_config(path, ["data.source=music", "data.dataset=nottingham", "data.crop=10"])
    assert (cfg.data.source, cfg.data.dataset, cfg.data.crop) == ("music", "nottingham", 10)


# -- the shipped experiments ------------------------------------------------------------------
EXPECTED = {f"{d}_srnn_{i}" for d in ("jsb", "nottingham", "musedata", "piano")
            for i in ("baseline", "avf_k1")} | {"jsb_srnn_avf_k5"} | {
    f"jsb_{m}_{i}" for m in ("vrnn", "dmm") for i in ("baseline", "avf_k1")} | {
    # a variant beyond the paper, for every AVF row: x_t fed to the inference model too
    f"{d}_srnn_avf_k1_x" for d in ("jsb", "nottingham", "musedata", "piano")} | {
    "jsb_srnn_avf_k5_x"}


def test_every_experiment_of_the_table_is_shipped() -> None:
    assert {p.stem for p in MUSIC.glob("*.toml")} == EXPECTED


@pytest.mark.parametrize("path", sorted(MUSIC.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_music_experiments_load_and_build(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    dataset, model_name, inference_name = path.stem.removesuffix("_x").split("_", 2)
    assert (cfg.data.source, cfg.data.dataset, cfg.data.crop) == ("music", dataset, 25)
    t = cfg.training
    assert (t.batch_size, t.model_lr, t.inference_lr, t.lr_decay) == (16, 1e-4, 1e-4, 0.999)
    assert (t.kl_anneal_epochs, t.kl_anneal_start, t.train_model) == (50, 0.0, True)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    inference = build_inference(cfg.inference, model, observation_size(model))
    assert isinstance(model, {"srnn": SRNN, "vrnn": VRNN, "dmm": DMM}[model_name])
    if inference_name == "baseline":
        encoders = {"srnn": SRNNEncoder, "vrnn": VRNNEncoder, "dmm": DMMEncoder}
        assert isinstance(inference, encoders[model_name])
    else:
        x_dim = 88 if path.stem.endswith("_x") else 0  # the _x variant also sees x_t
        assert isinstance(inference, Iterative) and inference.x_dim == x_dim
        assert inference.iterations == int(inference_name[-1])
    if model_name == "srnn":
        assert (model.rnn_dim, model.latent_dim) == (300, 100)


# -- fresh crops every epoch ------------------------------------------------------------------
def songs(n: int = 12, keys: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [(torch.rand(8 + 3 * i, keys, generator=g) < 0.3).float() for i in range(n)]


def test_epoch_crops_differ_between_epochs_and_repeat_per_seed() -> None:
    crops = EpochCrops(songs(), length=5, seed=7)
    first, second = crops(1), crops(2)
    assert len(crops) == 12 and first.x.shape == (12, 5, 6)
    assert not torch.equal(first.x, second.x)
    assert torch.equal(first.x, EpochCrops(songs(), 5, seed=7)(1).x)  # (seed, epoch) decide
    assert torch.equal(crops(2).x, second.x)  # in any order
    assert not torch.equal(first.x, EpochCrops(songs(), 5, seed=8)(1).x)


def test_transposed_rolls_move_up_or_down_and_drop_what_leaves_the_keys() -> None:
    rolls = torch.zeros(3, 2, 5)
    rolls[:, 0, 0] = rolls[:, 0, 3] = rolls[:, 1, 4] = 1.0
    out = transpose_rolls(rolls, torch.tensor([1, -1, 0]))
    assert out[0, 0].tolist() == [0, 1, 0, 0, 1] and out[0, 1].tolist() == [0] * 5
    assert out[1, 0].tolist() == [0, 0, 1, 0, 0] and out[1, 1].tolist() == [0, 0, 0, 1, 0]
    assert torch.equal(out[2], rolls[2])
    assert not transpose_rolls(rolls, torch.tensor([5, -7, 0]))[:2].any()
    with pytest.raises(ValueError, match="one shift per roll"):
        transpose_rolls(rolls, torch.tensor([1, 2]))


def test_transposed_epoch_crops_are_the_same_windows_shifted() -> None:
    plain, shifted = EpochCrops(songs(), 5, seed=7), EpochCrops(songs(), 5, seed=7, transpose=2)
    for epoch in (1, 2):
        windows, moved = plain(epoch).x, shifted(epoch).x
        assert torch.equal(moved, shifted(epoch).x)  # (seed, epoch) still decide
        found = []
        for n in range(len(windows)):
            fits = [s for s in range(-2, 3)
                    if torch.equal(moved[n], transpose_rolls(windows[n:n + 1],
                                                             torch.tensor([s]))[0])]
            assert fits, f"window {n} is not its plain window shifted by -2..2"
            found.append(fits)
        assert any(0 not in fits for fits in found)  # some windows did move
    assert torch.equal(EpochCrops(songs(), 5, seed=7, transpose=0)(1).x, plain(1).x)


def test_resume_with_epoch_crops_is_bit_identical(tmp_path: Path) -> None:
    def make(seed: int) -> tuple[SRNN, Iterative]:
        torch.manual_seed(seed)
        return (SRNN(x_dim=6, latent_dim=2, rnn_dim=4, hidden=4),
                Iterative(2, iterations=1, hidden=8, layers=1))

    def config(epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=5, model_lr=1e-2, inference_lr=1e-2,
                           kl_anneal_epochs=2, lr_decay=0.9, progress=False)

    crops = EpochCrops(songs(), length=5, seed=1)
    model, inference = make(0)
    straight = Trainer(model, inference, config(3), tmp_path / "a").fit(crops)
    Trainer(*make(0), config(2), tmp_path / "b").fit(crops)
    model2, inference2 = make(99)  # as a fresh process would build them
    resumed = Trainer(model2, inference2, config(3), tmp_path / "b").fit(crops)
    for a, b in ((model, model2), (inference, inference2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    drop = ("epoch_time", "wall_time")
    assert [{k: v for k, v in r.items() if k not in drop} for r in straight] == [
        {k: v for k, v in r.items() if k not in drop} for r in resumed]


def test_the_trainer_rejects_a_data_function_that_returns_something_else() -> None:
    model, inference = SRNN(x_dim=6, latent_dim=2, rnn_dim=4, hidden=4), Iterative(2, hidden=8)
    with pytest.raises(TypeError, match="returned a list for epoch 1, not Sequences"):
        Trainer(model, inference, TrainConfig(epochs=1, progress=False)).fit(lambda _epoch: [])


# -- the real data ----------------------------------------------------------------------------
def test_music_splits_come_from_the_data_dir() -> None:
    root = music_data_dir()
    cfg = from_dict(music(dataset="jsb"))
    data = build_datasets(cfg, root)
    assert data["train"].x.shape == (229, 25, 88) and data["valid"].x.shape == (76, 25, 88)
    assert len(data["test"]) == 77 and data["test"].steps == 4725  # whole songs
    train, valid = build_training_data(cfg, root)
    assert isinstance(train, EpochCrops) and torch.equal(valid.x, data["valid"].x)
    assert torch.equal(train(1).x, data["train"].x) and not torch.equal(train(2).x, train(1).x)
    moved, _ = build_training_data(from_dict(music(dataset="jsb", transpose=3)), root)
    assert moved.transpose == 3 and not torch.equal(moved(1).x, train(1).x)
    _, whole = build_training_data(from_dict(music(dataset="jsb", whole_valid=True)), root)
    assert len(whole) == 76 and whole.steps == 4602  # every valid song, whole
    weighted, weighted_valid = build_training_data(
        from_dict(music(dataset="jsb", crop_sampling="step")), root)
    assert weighted.per == "step" and len(weighted) == len(train)  # same windows per epoch
    assert weighted(1).x.shape == train(1).x.shape and not torch.equal(weighted(1).x, train(1).x)
    assert weighted_valid.x.shape == valid.x.shape and not torch.equal(weighted_valid.x, valid.x)


def test_missing_data_is_one_clear_line(tmp_path: Path, capsys) -> None:
    config = MUSIC / "jsb_srnn_baseline.toml"
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run"),
                 "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avf: error: no jsb data found") and "--data-dir" in err
    assert "\n" not in err


def test_train_evaluate_plot_a_tiny_music_run(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    root = music_data_dir()
    run = tmp_path / "run"
    sets = [arg for item in TINY_MUSIC_RUN for arg in ("--set", item)]
    assert main(["train", str(MUSIC / "jsb_srnn_avf_k1.toml"), "--run-dir", str(run),
                 "--data-dir", str(root), *sets]) == 0
    out = capsys.readouterr().out
    assert "229 training sequences (fresh every epoch)" in out
    assert "validation after epoch 1" in out

    assert main(["evaluate", str(run), "--data-dir", str(root)]) == 0
    report = json.loads((run / "eval_test.json").read_text())
    assert (report["sequences"], report["steps"]) == (77, 4725)  # whole test songs
    assert 0 < report["free_energy"] < 100

    assert main(["plot", str(run), "--data-dir", str(root), "--song", "3",
                 "--sequences", "4", "--max-steps", "40"]) == 0
    names = ("learning_curves.png", "iterations.png", "piano_roll.png")
    printed = capsys.readouterr().out
    for name in names:
        path = run / "plots" / name
        assert f"wrote {path}" in printed
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", sorted((MUSIC / "fast").glob("*.toml")), ids=lambda p: p.stem)
def test_fast_music_configs_differ_from_the_papers_only_in_rate_and_width(path: Path) -> None:
    fast = load_config(path)
    paper = load_config(MUSIC / f"{path.stem.removesuffix('_fast')}.toml")
    assert fast.name == path.stem
    assert (fast.training.model_lr, fast.training.inference_lr) == (1e-3, 1e-3)
    fast.training.model_lr = fast.training.inference_lr = paper.training.model_lr
    assert fast.training == paper.training and fast.data == paper.data
    assert fast.model == paper.model
    if fast.inference.name == "iterative":
        assert fast.inference.options.pop("hidden") == 256
        paper.inference.options.pop("hidden")
    assert fast.inference == paper.inference


def test_every_fast_config_is_shipped() -> None:
    stems = {p.stem for p in (MUSIC / "fast").glob("*.toml")}
    assert stems == {f"{d}_srnn_{i}_fast" for d in ("jsb", "nottingham", "musedata", "piano")
                     for i in ("baseline", "avf_k1_x")} | {"jsb_srnn_avf_k5_x_fast",
                                                           "jsb_srnn_avf_k1_fast",
                                                           "piano_srnn_avf_k1_fast"}


@pytest.mark.parametrize("path", sorted((MUSIC / "tuned").glob("*.toml")), ids=lambda p: p.stem)
def test_tuned_music_configs_add_only_the_regularisers_to_the_fast_ones(path: Path) -> None:
    tuned = load_config(path)
    fast = load_config(MUSIC / "fast" / f"{path.stem.removesuffix('_tuned')}_fast.toml")
    assert tuned.name == path.stem
    # dropout 0.5 where it validated better than 0.3 for both methods (BENCHMARKS 5.19)
    half = path.stem.startswith(("jsb", "nottingham"))
    assert tuned.model.options.pop("dropout") == (0.5 if half else 0.3)
    t = tuned.training
    assert t.valid_seed == 0  # common random numbers in validation (BENCHMARKS 5.17)
    t.valid_seed = None
    assert (t.plateau_patience, t.plateau_factor, t.plateau_max_cuts) == (4, 0.1, 3)
    assert t.ema_decay == 0.995
    assert t.grad_clip == (10.0 if tuned.inference.name == "iterative" else None)
    t.plateau_patience, t.plateau_max_cuts, t.ema_decay, t.grad_clip = 0, 0, 0.0, None
    # MuseData's long songs: windows in proportion to song length (BENCHMARKS 5.9)
    assert tuned.data.crop_sampling == ("step" if path.stem.startswith("musedata") else "song")
    tuned.data.crop_sampling = "song"
    # AVF's inputs layer-normalised, as in the paper: better than signlog on all four (5.12)
    if tuned.inference.name == "iterative" and tuned.inference.options["iterations"] == 1:
        assert tuned.inference.options.pop("encoding") == "layernorm"
        assert fast.inference.options.pop("encoding") == "signlog"
    # model-agnostic AVF: the gradient it is fed averaged over 8 samples (BENCHMARKS 5.23)
    if tuned.inference.name == "iterative" and not tuned.inference.options.get("x_input"):
        assert tuned.inference.options.pop("grad_samples") == 8
        assert tuned.inference.options.pop("antithetic") is True  # BENCHMARKS 5.27
    assert tuned.training == fast.training and tuned.data == fast.data
    assert tuned.model == fast.model and tuned.inference == fast.inference


@pytest.mark.parametrize("dataset", ["jsb", "piano"])
def test_the_model_agnostic_tuned_configs_build_avf_fed_only_averaged_gradients(dataset) -> None:
    cfg = load_config(MUSIC / "tuned" / f"{dataset}_srnn_avf_k1_tuned.toml")
    model = build_model(cfg.model)
    inference = build_inference(cfg.inference, model, observation_size(model))
    assert isinstance(inference, Iterative)
    assert (inference.x_dim, inference.grad_samples, inference.iterations) == (0, 8, 1)
    assert inference.antithetic


@pytest.mark.parametrize("dataset", ["jsb", "piano"])
def test_the_model_agnostic_tuned_configs_are_the_x_configs_as_benchmarked(dataset) -> None:
    """BENCHMARKS 5.23-5.27 trained the x_t config with these three overrides; the shipped
    model-agnostic config must be exactly that, or the "as shipped" rows would not be its own."""
    shipped = load_config(MUSIC / "tuned" / f"{dataset}_srnn_avf_k1_tuned.toml")
    benchmarked = load_config(MUSIC / "tuned" / f"{dataset}_srnn_avf_k1_x_tuned.toml")
    benchmarked.inference.options.update(x_input=False, grad_samples=8, antithetic=True)
    assert shipped.inference.options.setdefault("x_input", False) is False
    assert (shipped.model, shipped.inference) == (benchmarked.model, benchmarked.inference)
    assert (shipped.data, shipped.training) == (benchmarked.data, benchmarked.training)


def test_every_tuned_config_is_shipped() -> None:
    stems = {p.stem for p in (MUSIC / "tuned").glob("*.toml")}
    fast = {p.stem for p in (MUSIC / "fast").glob("*.toml")}
    assert stems == {s.replace("_fast", "_tuned") for s in fast}


def test_dmm_with_avf_trains_its_first_epoch_at_a_high_learning_rate(tmp_path: Path) -> None:
    """The shipped DMM + AVF config layer-normalises the network's inputs. With the raw
    posterior parameters of "signlog" the same epoch diverged: without the config's prior bound,
    a scale of 0 at batch 14 after |z| grew to 10²–10⁴; with it, a training KL of 10²²."""
    root = music_data_dir()
    config = MUSIC / "jsb_dmm_avf_k1.toml"
    assert load_config(config).inference.options["encoding"] == "layernorm"
    run = tmp_path / "run"
    fast = ["training.model_lr=1e-3", "training.inference_lr=1e-3", "inference.options.hidden=256",
            "training.epochs=1", "training.valid_every=1", "training.progress=false"]
    assert main(["train", str(config), "--run-dir", str(run), "--data-dir", str(root),
                 *[arg for item in fast for arg in ("--set", item)]]) == 0
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # KL is cheap at β ≈ 0.02 and reaches about 65 nats/step in this epoch; diverged runs
    # reached 10¹⁰ and more before the non-finite check stopped them
    assert record["train_kl"] < 1e3 and record["valid_free_energy"] < 1e3
