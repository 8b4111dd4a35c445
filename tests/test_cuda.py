"""The same numbers on a GPU as on the CPU, and the command-line path on CUDA.

Skipped where CUDA is not available (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py``. The CPU/GPU comparisons draw every reparameterisation sample from
one CPU generator, so both devices filter with the same noise and must agree to float precision:
what is checked is that each model, procedure and mask path computes the same thing on CUDA
(no tensor left behind on the CPU, no device-dependent branch), not that two random draws agree.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import normal as normal_module

from avf import GradientDescent, Iterative, StreamingFilter, backward, filter_sequences, load_run
from avf.cli import main
from avf.config import load_config
from avf.models import DMM, SRNN, SVG, VRNN
from avf.runs import build, dataset_label
from avf.training import BEST, Trainer
from conftest import TINY_MUSIC_RUN, climbing_songs, music_data_dir
from test_init_from import averaged_weights, train_tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

X, Z, B, T, FRAME = 6, 3, 4, 7, 16
MODELS: dict[str, Callable[[], nn.Module]] = {
    "srnn": lambda: SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8),
    "vrnn": lambda: VRNN(x_dim=X, latent_dim=Z, rnn_dim=8, feature_dim=8, hidden=8),
    "dmm": lambda: DMM(x_dim=X, latent_dim=Z, transition_dim=8, emission_dim=8),
    "svg": lambda: SVG(latent_dim=Z, g_dim=8, rnn_dim=16, nf=4, image_size=FRAME),
}
PROCEDURES: dict[str, Callable[[nn.Module], nn.Module]] = {
    "baseline": lambda model: model.baseline_encoder(),
    "avf_k1": lambda _: Iterative(Z, iterations=1, hidden=16),
    "avf_k2_x": lambda model: Iterative(Z, iterations=2, hidden=16, x_dim=_x_size(model)),
    "gradient": lambda _: GradientDescent(iterations=3, lr=0.1),
}


def _x_size(model: nn.Module) -> int:
    return X if not isinstance(model, SVG) else FRAME * FRAME


@pytest.fixture(autouse=True)
def full_precision() -> Iterator[None]:
    """No TF32 in cuDNN's recurrences or in matrix products: it differs from the CPU by about
    1e-3 relative. The settings are put back afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def same_noise(monkeypatch) -> Callable[[], None]:
    """Calling it restarts one seeded CPU stream that every N(0, 1) draw of ``rsample`` then
    comes from (moved to the device), so the second device filters with the first one's noise."""

    def restart() -> None:
        generator = torch.Generator().manual_seed(0)

        def standard_normal(shape, dtype, device):
            return torch.randn(shape, generator=generator, dtype=dtype).to(device)

        monkeypatch.setattr(normal_module, "_standard_normal", standard_normal)

    return restart


def batch(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Random data for the model and a mask with a short and a one-step sequence."""
    g = torch.Generator().manual_seed(1)
    if isinstance(model, SVG):
        x = torch.rand(B, T, 1, FRAME, FRAME, generator=g)
    else:
        x = (torch.rand(B, T, X, generator=g) < 0.4).float()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 1:] = False
    return x, mask


def run_on(device: str, model: nn.Module, inference: nn.Module, x: torch.Tensor,
           mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The per-step free energies [B, T] of a training pass on ``device`` and every gradient
    it leaves, both copied to the CPU for comparison."""
    model, inference = model.to(device), inference.to(device)
    out = filter_sequences(model, inference, x.to(device), mask.to(device), n_samples=2)
    backward(out, model, inference)
    grads = {f"model.{name}": p.grad.cpu() for name, p in model.named_parameters()
             if p.grad is not None}
    grads |= {f"inference.{name}": p.grad.cpu() for name, p in inference.named_parameters()
              if p.grad is not None}
    return out.free_energy.detach().cpu(), grads


@pytest.mark.parametrize("procedure", list(PROCEDURES))
@pytest.mark.parametrize("name", list(MODELS))
def test_training_pass_on_cuda_equals_the_cpu(name: str, procedure: str, same_noise) -> None:
    torch.manual_seed(0)
    model = MODELS[name]()
    inference = PROCEDURES[procedure](model)
    x, mask = batch(model)
    cpu_copy = (copy.deepcopy(model), copy.deepcopy(inference))

    same_noise()
    fe_cpu, grads_cpu = run_on("cpu", *cpu_copy, x, mask)
    same_noise()
    fe_gpu, grads_gpu = run_on("cuda", model, inference, x, mask)

    assert torch.isfinite(fe_gpu).all()
    torch.testing.assert_close(fe_gpu, fe_cpu, rtol=1e-4, atol=1e-4)
    assert grads_gpu.keys() == grads_cpu.keys() and grads_cpu
    # φ gets gradients exactly when the procedure has parameters; θ always does
    assert any(key.startswith("model.") for key in grads_cpu)
    assert any(key.startswith("inference.") for key in grads_cpu) == any(
        True for _ in inference.parameters())
    # each gradient to 1e-3 of its own size, with a floor at 1e-5 of the whole gradient's: some
    # are zero but for rounding (SVG's convolution biases ahead of a GroupNorm), and their
    # rounding noise differs between cuDNN and the CPU
    floor = 1e-5 * torch.cat([g.flatten() for g in grads_cpu.values()]).norm()
    for key, grad in grads_cpu.items():
        error = (grads_gpu[key] - grad).norm()
        assert error <= 1e-3 * grad.norm() + floor, f"{key}: |Δ| {error:.3g}, |g| {grad.norm():.3g}"


def test_streaming_filter_and_forecast_on_cuda(same_noise) -> None:
    torch.manual_seed(0)
    model = MODELS["srnn"]()
    inference = Iterative(Z, iterations=2, hidden=16, x_dim=X)
    x, _ = batch(model)
    results = {}
    for device in ("cpu", "cuda"):
        same_noise()
        stream = StreamingFilter(copy.deepcopy(model).to(device),
                                 copy.deepcopy(inference).to(device), batch_size=B)
        energies = [stream.step(x[:, t].to(device)).free_energy for t in range(T)]
        results[device] = torch.stack(energies).cpu(), stream.forecast(horizon=3, samples=2).x
    energies_gpu, futures_gpu = results["cuda"]
    torch.testing.assert_close(energies_gpu, results["cpu"][0], rtol=1e-4, atol=1e-4)
    assert futures_gpu.device.type == "cuda"
    assert futures_gpu.shape == results["cpu"][1].shape


def test_train_evaluate_particles_plot_and_load_a_music_run_on_cuda(tmp_path: Path,
                                                                   capsys) -> None:
    pytest.importorskip("matplotlib")
    data = music_data_dir()
    run = tmp_path / "run"
    sets = [arg for item in TINY_MUSIC_RUN for arg in ("--set", item)]
    config = Path(__file__).resolve().parents[1] / "experiments" / "music" / "jsb_srnn_avf_k1.toml"
    assert main(["train", str(config), "--run-dir", str(run), "--data-dir", str(data),
                 "--device", "cuda", *sets]) == 0
    assert "validation after epoch 1" in capsys.readouterr().out

    assert main(["evaluate", str(run), "--data-dir", str(data), "--device", "cuda",
                 "--particles", "4", "--no-progress"]) == 0
    report = json.loads((run / "eval_test.json").read_text())
    assert (report["sequences"], report["steps"]) == (77, 4725)
    assert 0 < report["smc"]["nll"] < report["free_energy"] + 1.0

    assert main(["plot", str(run), "--data-dir", str(data), "--device", "cuda", "--song", "3",
                 "--sequences", "4", "--max-steps", "40"]) == 0
    assert (run / "plots" / "piano_roll.png").read_bytes()[:4] == b"\x89PNG"

    loaded = load_run(run, device="cuda")
    assert next(loaded.model.parameters()).device.type == "cuda"
    x, mask = next(iter(loaded.data("test", data_dir=data).batches(4)))
    out = filter_sequences(loaded.model, loaded.inference, x.cuda(), mask.cuda())
    assert torch.isfinite(out.free_energy).all()


@pytest.mark.filterwarnings("error:RNN module weights are not part of single contiguous")
def test_fine_tune_across_devices_and_score_another_data_set_on_cuda(tmp_path: Path,
                                                                     songs_file: Path,
                                                                     capsys) -> None:
    """``training.init_from`` reads a run trained on one device into a run on the other (a model
    pretrained on a GPU, fine-tuned on a laptop, or back), and ``avf evaluate --dataset`` scores
    on CUDA. With a weight average (``ema_decay``), whose copy of the LSTM once lost cuDNN's
    single weight buffer, so that every validation call compacted it again (torch warns)."""
    other = tmp_path / "other.json"
    other.write_text(json.dumps(climbing_songs({"train": [12] * 2, "valid": [10] * 2,
                                                "test": [9, 7, 5]}, 60)))
    gpu, cpu, back = tmp_path / "gpu", tmp_path / "cpu", tmp_path / "back"
    assert train_tiny(gpu, songs_file, 'device="cuda"') == 0
    assert train_tiny(cpu, songs_file, f"training.init_from={json.dumps(str(gpu))}") == 0
    assert f"starting from the weights of {gpu / BEST}" in capsys.readouterr().out
    assert train_tiny(back, songs_file, 'device="cuda"',
                      f"training.init_from={json.dumps(str(cpu))}") == 0
    assert f"starting from the weights of {cpu / BEST}" in capsys.readouterr().out

    # a trainer on CUDA starts from the CPU run's averaged weights, exactly
    cfg = load_config(back / "config.toml")
    model, inference = build(cfg)
    trainer = Trainer(model, inference, cfg.training, device="cuda")
    trainer.start_from(cpu)
    expected = averaged_weights(cpu / BEST)
    for part, module in (("model", model), ("inference", inference)):
        for name, value in module.state_dict().items():
            assert value.device.type == "cuda"
            assert torch.equal(value.cpu(), expected[part][name]), f"{part}.{name}"

    assert main(["evaluate", str(back), "--dataset", str(other), "--device", "cuda",
                 "--no-progress"]) == 0
    report = json.loads((back / f"eval_test_on_{dataset_label(str(other))}.json").read_text())
    assert (report["dataset"], report["sequences"], report["steps"]) == (str(other), 3, 21)
    assert math.isfinite(report["free_energy"])
