"""``avf plot`` and :mod:`avf.plots`: what the sequence view computes, and that files appear."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from avf import plots
from avf.cli import main
from avf.filtering import filter_sequences
from avf.inference import GradientDescent, PriorOnly
from avf.models import LinearGaussian
from avf.stopping import cut_epochs

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"

TINY = """
name = "tiny"

[model]
name = "lgssm"

[model.options]
latent_dim = 2
obs_dim = 2

[inference]
name = "iterative"

[inference.options]
iterations = 2
hidden = 8
layers = 1

[data]
train_sequences = 4
valid_sequences = 2
test_sequences = 3
steps = 6

[training]
epochs = 2
batch_size = 4
train_model = false
progress = false
"""


@pytest.fixture
def model() -> LinearGaussian:
    return LinearGaussian.random(latent_dim=2, obs_dim=2, seed=0)


def test_the_view_matches_whole_sequence_filtering(model: LinearGaussian) -> None:
    x = torch.randn(7, 2)
    inference = GradientDescent(iterations=3, lr=0.1)
    torch.manual_seed(0)
    view = plots.view_sequence(model, inference, x)
    torch.manual_seed(0)
    whole = filter_sequences(model, inference, x[None])
    assert torch.allclose(view.free_energy, whole.free_energy[0], atol=1e-5)
    assert view.data.shape == view.prediction.shape == view.reconstruction.shape == (7, 2)


def test_prediction_comes_before_the_data_and_reconstruction_after(
        model: LinearGaussian) -> None:
    x = torch.randn(20, 2) * 3
    # no inference: the posterior is the prior, so the reconstruction is the prediction
    prior = plots.view_sequence(model, PriorOnly(), x)
    assert torch.allclose(prior.prediction, prior.reconstruction)
    # inference moves the latent towards what x_t says: the reconstruction fits x_t better
    view = plots.view_sequence(model, GradientDescent(iterations=20, lr=0.1), x)
    fit = {k: float(((getattr(view, k) - x) ** 2).mean()) for k in ("prediction",
                                                                    "reconstruction")}
    assert fit["reconstruction"] < fit["prediction"]


def test_learning_curves_skip_epochs_without_validation(tmp_path: Path) -> None:
    records = [{"epoch": e, "train_free_energy": 5.0 - e, "train_recon": 4.0, "train_kl": 1.0}
               for e in (1, 2, 3)]
    records[2].update(valid_free_energy=3.0, valid_recon=2.5, valid_kl=0.5)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = plots.plot_learning_curves(plots.read_metrics(metrics), tmp_path / "lc.png", "t")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="no epochs"):
        plots.plot_learning_curves([], tmp_path / "none.png")
    with pytest.raises(FileNotFoundError, match="no metrics file"):
        plots.read_metrics(tmp_path / "nowhere.jsonl")


def test_learning_curves_mark_cuts_and_keep_a_divergence_off_the_scale(tmp_path: Path,
                                                                         monkeypatch) -> None:
    records = [{"epoch": e, "train_free_energy": 6.0 - 0.1 * e, "train_recon": 5.0,
                "train_kl": 1.0, "valid_free_energy": 6.5 - 0.1 * e, "valid_recon": 5.4,
                "valid_kl": 1.1} for e in range(1, 7)]
    records[2]["lr_cut"] = True  # a plateau cut after epoch 3
    records[4].update(lr_cut=True, divergence="epoch 5, batch 18: non-finite gradient",
                      train_free_energy=7.4e18, train_kl=7.4e18)  # the batches before the cut
    assert cut_epochs(records) == ([3], [5])
    train = plots.curve_points(records, "train", "free_energy")
    assert [e for e, _ in train] == [1, 2, 3, 4, 6]
    assert [e for e, _ in plots.curve_points(records, "valid", "free_energy")] == [1, 2, 3, 4, 5, 6]
    drawn = {}
    real_save = plots._save

    def keep_figure(plt, fig, path, tight=True):
        drawn["tops"] = [ax.get_ylim()[1] for ax in fig.axes]
        drawn["lines"] = [line.get_label() for line in fig.axes[0].get_lines()]
        return real_save(plt, fig, path, tight)

    monkeypatch.setattr(plots, "_save", keep_figure)
    path = plots.plot_learning_curves(records, tmp_path / "lc.png")
    assert path.read_bytes()[:8] == PNG
    assert max(drawn["tops"]) < 10  # 7.4e18 is not on the scale
    assert {"train", "valid", "lr cut", "divergence, lr cut"} <= set(drawn["lines"])


def test_piano_roll_of_a_view(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(12, 88, generator=g) < 0.05).float()
    view = plots.SequenceView(data, torch.rand(12, 88, generator=g) * 0.3,
                              data * 0.8 + 0.1, torch.ones(12))
    assert plots.plot_piano_roll(view, tmp_path / "roll.png").read_bytes()[:8] == PNG


def test_plot_command_on_a_synthetic_run(tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    out = tmp_path / "pictures"
    assert main(["plot", str(run), "--out", str(out), "--split", "valid", "--song", "1"]) == 0
    printed = capsys.readouterr().out
    for name in ("learning_curves.png", "iterations.png", "sequence.png"):  # no piano roll
        assert f"wrote {out / name}" in printed
        assert (out / name).read_bytes()[:8] == PNG
    assert not (out / "piano_roll.png").exists()

    assert main(["plot", str(run), "--song", "3"]) == 2
    assert "--song 3 is not in the test split (0 to 2)" in capsys.readouterr().err


def test_missing_matplotlib_is_one_clear_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'avf\[plot\]'"):
        plots.pyplot()
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avf: error: plotting needs matplotlib") and "\n" not in err
