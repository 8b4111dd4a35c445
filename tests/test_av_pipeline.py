"""Speech and video end to end through configs and the CLI, on tiny data the tests make.

Checks the wiring that the unit tests of each piece cannot: the ``speech``/``video`` data
sources, the bin width filled in from the data and saved with the run, discretised scoring in
``avf evaluate``, and the waveform / frame pictures of ``avf plot``.
"""

from __future__ import annotations

import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from avf.cli import main
from avf.config import from_dict, load_config
from avf.datasets import build_training_data, data_bin_width

SPEECH = """
name = "speech"
seed = 0

[model]
name = "vrnn"

[model.options]
x_dim = 40
latent_dim = 3
rnn_dim = 8
feature_dim = 8
hidden = 8
output = "gaussian"

[inference]
name = "{inference}"

[data]
source = "speech"
dataset = "{dataset}"
frame_size = 40
crop = 3
seed = 1

[training]
epochs = 2
batch_size = 4
progress = false
"""

VIDEO = """
name = "video"
seed = 0

[model]
name = "svg"

[model.options]
latent_dim = 2
g_dim = 8
rnn_dim = 8
nf = 4

[inference]
name = "{inference}"

[data]
source = "video"
dataset = "smmnist"
steps = 3
train_sequences = 4
valid_sequences = 2
test_sequences = 2

[training]
epochs = 1
batch_size = 2
progress = false
"""


@pytest.fixture
def wav_dir(tmp_path: Path) -> Path:
    soundfile = pytest.importorskip("soundfile")
    root = tmp_path / "wavs"
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("valid", 2), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            wave = (rng.normal(0, 3000, size=40 * (4 + i))).astype(np.int16)
            soundfile.write(root / split / f"u{i}.wav", wave, 8000, subtype="PCM_16")
    return root


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A data directory whose mnist/ holds 20 random 28x28 'digits' per file."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
        header = struct.pack(">IIII", 0x803, 20, 28, 28)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(header + images.tobytes())
    return folder.parent


def test_speech_source_standardises_and_sets_the_bin(wav_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SPEECH.format(inference="baseline", dataset=wav_dir))
    cfg = load_config(path)
    train, valid = build_training_data(cfg)
    first = train(1)
    assert first.x.shape[1:] == (3, 40) and valid.x.shape[1:] == (3, 40)
    assert not torch.equal(first.x, train(2).x)  # fresh windows each epoch
    width = data_bin_width(cfg)
    from avf.datasets import speech_standardizer

    std = speech_standardizer(cfg).std
    assert width == pytest.approx(1 / 32768 / std)


def test_speech_train_evaluate_plot(wav_dir: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SPEECH.format(inference="iterative", dataset=wav_dir))
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run)]) == 0
    saved = load_config(run / "config.toml")
    assert saved.model.options["bin_width"] > 0  # filled in from the data, kept with the run
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "discretised (bin" in out
    report = json.loads((run / "eval_test.json").read_text())
    binned = report["discretized"]
    # a narrow bin's probability is about density x width, for each of the 40 samples a step
    expected = report["recon"] - 40 * np.log(binned["bin_width"])
    assert binned["recon"] == pytest.approx(expected, rel=0.05)
    pytest.importorskip("matplotlib")
    assert main(["plot", str(run), "--sequences", "2"]) == 0
    assert (run / "plots" / "waveform.png").stat().st_size > 0


def test_video_train_evaluate_plot(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "v.toml"
    path.write_text(VIDEO.format(inference="baseline"))
    run = tmp_path / "run"
    common = ["--data-dir", str(mnist_dir)]
    assert main(["train", str(path), "--run-dir", str(run), *common]) == 0
    assert load_config(run / "config.toml").model.options["bin_width"] == 1 / 256
    assert main(["evaluate", str(run), "--particles", "4", *common]) == 0
    report = json.loads((run / "eval_test.json").read_text())
    assert report["steps"] == 2 * 3 and report["discretized"]["recon"] > 0
    smc = report["smc"]  # scored on the bins too, like the free energy it is compared with
    assert smc["discretized"] and smc["steps"] == 6 and math.isfinite(smc["nll"])
    assert smc["nll"] > 0  # a probability of 8-bit pixels, not a density
    pytest.importorskip("matplotlib")
    assert main(["plot", str(run), "--sequences", "1", *common]) == 0
    assert {"frames.png", "futures.png"} <= {p.name for p in (run / "plots").iterdir()}
    capsys.readouterr()


def test_a_video_run_scores_on_kth_and_a_speech_run_is_refused(mnist_dir: Path, wav_dir: Path,
                                                              tmp_path: Path, capsys) -> None:
    """``avf evaluate --dataset``: SMMNIST's model on KTH clips of its length, kept apart from
    its own score; speech is refused, since its scaling comes from its own training set."""
    from test_video import PERSONS, write_video

    kth = mnist_dir / "kth"
    kth.mkdir()
    for person in PERSONS:  # 1 trains, 15 validates, 17 tests
        write_video(kth / f"person{person:02d}_boxing_d1_uncomp.avi", person)
    path = tmp_path / "v.toml"
    path.write_text(VIDEO.format(inference="baseline"))
    run = tmp_path / "run"
    common = ["--data-dir", str(mnist_dir)]
    assert main(["train", str(path), "--run-dir", str(run), *common]) == 0
    assert main(["evaluate", str(run), "--dataset", "kth", *common]) == 0
    report = json.loads((run / "eval_test_on_kth.json").read_text())
    assert report["dataset"] == "kth" and report["sequences"] >= 1
    assert report["steps"] == 3 * report["sequences"]  # clips as long as the run's videos
    assert not (run / "eval_test.json").exists()

    speech = tmp_path / "s.toml"
    speech.write_text(SPEECH.format(inference="baseline", dataset=wav_dir))
    assert main(["train", str(speech), "--run-dir", str(tmp_path / "sp")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "sp"), "--dataset", "fsdd"]) == 2
    assert "not for source = 'speech'" in capsys.readouterr().err


def test_video_epochs_draw_fresh_videos(mnist_dir: Path) -> None:
    cfg = from_dict({"data": {"source": "video", "dataset": "smmnist", "steps": 2,
                              "train_sequences": 3, "valid_sequences": 1,
                              "test_sequences": 1}})
    train, valid = build_training_data(cfg, mnist_dir)
    assert len(train) == 3 and train(1).x.shape == (3, 2, 1, 64, 64)
    assert torch.equal(train(1).x, train(1).x) and not torch.equal(train(1).x, train(2).x)
    assert valid.x.shape == (1, 2, 1, 64, 64)


@pytest.mark.parametrize(("data", "message"), [
    ({"source": "speech"}, "data.dataset is required with source = 'speech'"),
    ({"source": "speech", "dataset": "fsdd", "steps": 3},
     "data.steps only applies to source = 'synthetic' or 'video'"),
    ({"source": "video", "dataset": "smmnist", "frame_size": 3},
     "data.frame_size only applies to source = 'speech'"),
    ({"source": "music", "dataset": "jsb", "num_digits": 2},
     "data.num_digits only applies to source = 'video'"),
    ({"source": "video", "dataset": "smmnist", "num_digits": 0}, "num_digits must be at least"),
    ({"source": "speech", "dataset": "fsdd", "frame_size": 0}, "frame_size must be at least"),
])
def test_data_keys_are_checked_per_source(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict({"data": data})


def test_source_defaults() -> None:
    speech = from_dict({"data": {"source": "speech", "dataset": "fsdd"}}).data
    assert (speech.frame_size, speech.crop, speech.steps) == (200, 0, None)
    video = from_dict({"data": {"source": "video", "dataset": "smmnist"}}).data
    assert (video.steps, video.num_digits, video.crop) == (20, 2, None)
    synthetic = from_dict({}).data
    assert (synthetic.train_sequences, synthetic.steps, synthetic.dataset) == (256, 50, None)


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "speech").glob("*.toml"))
                         + sorted((EXPERIMENTS / "video").glob("*.toml")), ids=lambda p: p.stem)
def test_experiment_configs_load_and_name_themselves(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem and cfg.data.source in ("speech", "video")
    if cfg.data.dataset in ("fsdd", "smmnist"):  # the ones we run here: build them too
        from avf.runs import build

        model, inference = build(cfg)
        assert model.bin_width is not None or cfg.data.source == "speech"
        assert sum(p.numel() for p in inference.parameters()) > 0
