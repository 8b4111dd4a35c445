"""Config files: every unknown key fails with its name, overrides are typed, files round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avf.builders import build_inference, build_model, observation_size
from avf.config import (
    ExperimentConfig,
    InferenceConfig,
    ModelConfig,
    dumps,
    from_dict,
    load_config,
    save_config,
)
from avf.datasets import build_datasets, data_model_config
from avf.inference import Direct, GradientDescent, Iterative, PriorOnly
from avf.models import LinearGaussian

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

BASIC = """
name = "tiny"
seed = 3

[model]
name = "lgssm"

[model.options]
latent_dim = 2
obs_dim = 2

[inference]
name = "iterative"

[inference.options]
hidden = 8

[training]
epochs = 2
"""


@pytest.fixture
def basic(tmp_path: Path) -> Path:
    path = tmp_path / "basic.toml"
    path.write_text(BASIC)
    return path


def test_load_sets_values_and_defaults(basic: Path) -> None:
    cfg = load_config(basic)
    assert cfg.name == "tiny" and cfg.seed == 3
    assert cfg.model == ModelConfig("lgssm", {"latent_dim": 2, "obs_dim": 2})
    assert cfg.training.epochs == 2 and cfg.training.batch_size == 32
    assert cfg.data.source == "synthetic"


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "my_run.toml"
    path.write_text("[training]\nepochs = 1\n")
    assert load_config(path).name == "my_run"


def test_overrides_are_parsed_as_toml_values(basic: Path) -> None:
    cfg = load_config(basic, [
        "training.epochs=3",
        "training.model_lr=1e-2",
        "training.inference_lr=1",  # an integer where a float is expected
        "training.train_model=false",
        "training.grad_clip=0.5",
        "inference.options.iterations=5",
        "inference.options.encoding=layernorm",  # not TOML: kept as a string
        "data.generator.seed=7",
        "device = cuda",
    ])
    t = cfg.training
    assert t.epochs == 3 and isinstance(t.epochs, int)
    assert t.model_lr == 0.01 and isinstance(t.model_lr, float)
    assert t.inference_lr == 1.0 and isinstance(t.inference_lr, float)
    assert t.train_model is False and t.grad_clip == 0.5
    assert cfg.inference.options == {"hidden": 8, "iterations": 5, "encoding": "layernorm"}
    assert cfg.data.generator == {"seed": 7}
    assert cfg.device == "cuda"
    assert load_config(basic, ["training.grad_clip=none"]).training.grad_clip is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("epochz = 3\n", "'epochz'"),
        ("[trainig]\nepochs = 3\n", "'trainig'"),
        ("[training]\nepochz = 3\n", "'training.epochz'"),
        ("[data]\nsteps = 5\ntrain_seqs = 3\n", "'data.train_seqs'"),
    ],
)
def test_unknown_keys_in_the_file_are_named(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=key) as info:
        load_config(path)
    assert "valid keys" in str(info.value)


def test_unknown_section_key_lists_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nepochz = 3\n")
    with pytest.raises(ValueError, match="valid keys in \\[training\\]: epochs, batch_size"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("training.epochz=3", "unknown key 'training.epochz'"),
        ("nosuch.key=1", "unknown key 'nosuch'"),
        ("training.epochs.x=1", "'training.epochs' is a value"),
        ("training.epochs", "must look like section.key=value"),
        ("training.epochs=three", "training.epochs must be an integer"),
        ("training.train_model=1", "training.train_model must be true or false"),
        ("training=3", r"\[training\] must be a table"),
    ],
)
def test_bad_overrides_are_named(basic: Path, override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(basic, [override])


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.toml"):
        load_config(path)


def test_invalid_toml_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[training\nepochs = 3\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(path)


def test_save_and_load_round_trip(basic: Path, tmp_path: Path) -> None:
    cfg = load_config(basic, ["training.grad_clip=2.5", "data.generator.seed=9",
                              'inference.options.note="a \\"quoted\\" value\\n"'])
    out = tmp_path / "run" / "config.toml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    default = ExperimentConfig()
    save_config(default, out)
    assert load_config(out) == default  # grad_clip None is left out and comes back as None
    assert "grad_clip" not in out.read_text()


def test_dumps_writes_nested_tables() -> None:
    text = dumps({"a": 1, "s": {"x": [1, 2], "t": {"k y": True, "f": 1e-5}}})
    assert text.index("a = 1") < text.index("[s]") < text.index("[s.t]")
    assert '"k y" = true' in text and "f = 1e-05" in text


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_experiments_load_and_build(path: Path) -> None:
    cfg = load_config(path)
    model = build_model(cfg.model)
    inference = build_inference(cfg.inference, model, observation_size(model))
    assert isinstance(model, LinearGaussian)
    assert cfg.training.train_model is False
    if cfg.name == "lgssm_avf":
        assert isinstance(inference, Iterative) and inference.iterations == 2
        assert inference.x_dim == 0


# -- builders ---------------------------------------------------------------------------------
@pytest.fixture
def model() -> LinearGaussian:
    return LinearGaussian.random(latent_dim=2, obs_dim=2)


def test_builders_make_every_procedure(model: LinearGaussian) -> None:
    assert isinstance(build_inference(InferenceConfig("prior"), model, 2), PriorOnly)
    gd = build_inference(InferenceConfig("gradient", {"iterations": 3, "lr": 0.5}), model, 2)
    assert isinstance(gd, GradientDescent) and gd.iterations == 3
    direct = build_inference(InferenceConfig("direct", {"hidden": 8}), model, 2)
    assert isinstance(direct, Direct) and direct.use_state
    stateless = build_inference(InferenceConfig("direct", {"hidden": 8, "use_state": False}),
                                model, 2)
    assert not stateless.use_state
    it = build_inference(InferenceConfig("iterative", {"hidden": 8, "x_input": True}), model, 2)
    assert it.x_dim == 2


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (InferenceConfig("iterative", {"hiden": 8}), "unknown option 'hiden'.*valid options:"),
        (InferenceConfig("direct", {"x_input": True}), "unknown option 'x_input'"),
        (InferenceConfig("prior", {"hidden": 8}), "unknown option 'hidden'"),
        (InferenceConfig("iterative", {"x_input": 1}), "'x_input'.*true or false"),
        (InferenceConfig("iterative", {"encoding": "fancy"}), "'encoding'.*one of"),
        (InferenceConfig("gradient", {"iterations": "many"}), "'iterations'.*int"),
        (InferenceConfig("amortised"), "unknown inference 'amortised'.*iterative"),
    ],
)
def test_bad_inference_options_are_named(model: LinearGaussian, cfg, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_inference(cfg, model, 2)


def test_bad_model_options_are_named() -> None:
    with pytest.raises(ValueError, match="unknown option 'latent' for model 'lgssm'"):
        build_model(ModelConfig("lgssm", {"latent": 3}))
    with pytest.raises(ValueError, match="unknown model 'rnn'; known models: lgssm, growth"):
        build_model(ModelConfig("rnn"))


def test_growth_model_builds() -> None:
    pytest.importorskip("avf.models.growth")
    assert build_model(ModelConfig("growth", {"obs_var": 2.0})).latent_dim == 1


def test_datasets_use_the_generator_options_and_stream_seeds() -> None:
    cfg = from_dict({"model": {"options": {"latent_dim": 2, "obs_dim": 2}},
                     "data": {"train_sequences": 3, "valid_sequences": 2, "test_sequences": 0,
                              "steps": 4, "generator": {"seed": 5}}})
    assert data_model_config(cfg).options == {"latent_dim": 2, "obs_dim": 2, "seed": 5}
    data = build_datasets(cfg)
    assert len(data["train"]) == 3 and len(data["valid"]) == 2 and data["test"] is None
    assert not bool((data["train"].x[:2] == data["valid"].x).all())
    again = build_datasets(cfg)
    assert all(bool((data[k].x == again[k].x).all()) for k in ("train", "valid"))


def test_synthetic_data_from_a_randomly_initialised_model_ignore_the_global_rng() -> None:
    """`avf evaluate` rebuilds the test split in another process: a generator whose weights
    came from torch's global RNG would give other data there."""
    def config(seed: int):
        return from_dict({"model": {"name": "vrnn", "options": {
                              "x_dim": 3, "latent_dim": 2, "rnn_dim": 4, "feature_dim": 4,
                              "hidden": 4, "output": "gaussian"}},
                          "data": {"train_sequences": 2, "valid_sequences": 0,
                                   "test_sequences": 2, "steps": 3, "seed": seed}})

    torch.manual_seed(1)
    first = build_datasets(config(0))
    torch.manual_seed(2)
    again = build_datasets(config(0))
    assert torch.equal(first["test"].x, again["test"].x)
    other = build_datasets(config(7))
    assert not torch.equal(first["test"].x, other["test"].x)  # data.seed does choose them


@pytest.mark.parametrize(
    ("inference", "words"),
    [({"name": "direct"}, "direct"),
     ({"name": "iterative", "options": {"iterations": 1}}, "iterative K=1"),
     ({"name": "iterative", "options": {"iterations": 5, "x_input": True,
                                        "encoding": "layernorm"}},
      "iterative K=5 + x_t, layernorm"),
     ({"name": "iterative", "options": {"iterations": 1, "update": "learned_step",
                                        "grad_samples": 8}},
      "iterative K=1, learned_step update, 8-sample gradients"),
     ({"name": "iterative", "options": {"iterations": 1, "grad_samples": 8,
                                        "antithetic": True}},
      "iterative K=1, 8-sample antithetic gradients")])
def test_run_tables_describe_the_inference_procedure(inference, words) -> None:
    from avf.runs import describe_inference

    cfg = from_dict({"model": {"name": "lgssm"}, "inference": inference})
    assert describe_inference(cfg) == words
