"""Speed of each deep model × inference procedure on polyphonic music (JSB Chorales crops).

Reports training throughput (time steps per second: forward, both backward passes and both
optimiser steps, batch 16 × 25-step crops as in the paper), the training time per time step, the
streaming-filter latency per step (one stream, no training graph) and AVF's cost relative to the
model's own baseline encoder, in time and in arithmetic: the matrix-multiply FLOPs of one
training update (forward and both backward passes) by ``torch.utils.flop_counter``'s formulas,
which is what the time ratio tends to on hardware where arithmetic, not overhead, is the cost,
and the part of them in AVF's network (the multiplies with an operand of ``--avf-hidden`` units).
Uses JSB crops when the data is found (``--data-dir`` /
``AVF_DATA_DIR``), else random binary rolls of the same shape (said in the output).
``--rounds R`` times the procedures in turn R times (``--repeats`` updates each time) and takes
each one's median over all of them, so that a machine whose speed drifts slows them alike.

    python benchmarks/speed.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from avf import Iterative, StreamingFilter, backward, filter_sequences
from avf.data.music import load_music, random_crops
from avf.inference.iterative import DEFAULT_ENCODING, DEFAULT_GRAD_SAMPLES, Encoding
from avf.models import DMM, SRNN, VRNN


def model_factories() -> dict[str, type[nn.Module]]:
    return {"srnn": SRNN, "vrnn": VRNN, "dmm": DMM}


def procedures(model: nn.Module, hidden: int, encoding: Encoding = DEFAULT_ENCODING,
               x_dim: int = 0, grad_samples: int = DEFAULT_GRAD_SAMPLES) -> dict[str, nn.Module]:
    """The model's baseline encoder and AVF with K = 1 and 5; ``x_dim > 0`` feeds AVF x_t too
    (the shipped music configs), ``grad_samples`` averages each gradient it is fed over that
    many posterior samples."""
    avf = {"hidden": hidden, "encoding": encoding, "x_dim": x_dim, "grad_samples": grad_samples}
    return {
        "baseline": model.baseline_encoder(),
        "avf_k1": Iterative(model.latent_dim, iterations=1, **avf),
        "avf_k5": Iterative(model.latent_dim, iterations=5, **avf),
    }


def batch(data_dir: str | None, seed: int) -> tuple[torch.Tensor, str]:
    """One batch of 16 JSB crops of 25 steps (or random rolls if the data is missing)."""
    g = torch.Generator().manual_seed(seed)
    try:
        songs = load_music("jsb", data_dir)["train"]
        crops = random_crops(songs, 25, g)
        return crops.x[:16].float(), "JSB Chorales train crops"
    except FileNotFoundError:
        return (torch.rand(16, 25, 88, generator=g) < 0.05).float(), "random binary rolls"


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock reading means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_times(model: nn.Module, inference: nn.Module, x: torch.Tensor,
                   repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` training iterations, after one warm-up."""
    opts = [torch.optim.Adam(model.parameters(), lr=1e-4),
            torch.optim.Adam(inference.parameters(), lr=1e-4)]
    times = []
    for i in range(repeats + 1):
        sync(x.device)
        start = time.perf_counter()
        out = filter_sequences(model, inference, x)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        backward(out, model, inference)
        for opt in opts:
            opt.step()
        sync(x.device)
        if i > 0:
            times.append(time.perf_counter() - start)
    return times


def interleaved_times(model: nn.Module, inferences: dict[str, nn.Module], x: torch.Tensor,
                      repeats: int, rounds: int) -> dict[str, float]:
    """Median seconds per training iteration of each procedure, timed in ``rounds`` rounds of
    ``repeats`` iterations that take the procedures in turn: on a machine whose speed drifts
    (other work on a shared VM), every procedure then sees the same drift, and the ratios
    to the baseline keep less of it than when each procedure is timed in one block."""
    samples: dict[str, list[float]] = {label: [] for label in inferences}
    for _ in range(rounds):
        for label, inference in inferences.items():
            samples[label] += training_times(model, inference, x, repeats)
    return {label: sorted(t)[len(t) // 2] for label, t in samples.items()}


class MatmulFlops(TorchDispatchMode):
    """Adds up the FLOPs of every matrix multiply (and convolution) that runs under it.

    torch's own ``FlopCounterMode`` also tracks modules, and its tracker fails on the engine's
    shape probe under ``no_grad``; the formulas are the same (``flop_registry``). Fused
    recurrent sequence kernels (oneDNN's ``mkldnn_rnn_layer``, cuDNN's ``_cudnn_rnn``, MIOpen's;
    see :func:`is_fused_recurrence`) have no formula there, so a count that met one would be
    too low without saying so: they are collected in ``uncounted`` instead, and
    :func:`count_training_flops` runs the model without them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.uncounted: set[str] = set()
        self.by_shape: Counter[tuple[int, ...]] = Counter()  # FLOPs by the operands' sizes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            flops = formula(*args, **kwargs, out_val=out)
            self.total += flops
            sizes = sorted({n for a in args if isinstance(a, torch.Tensor) for n in a.shape})
            self.by_shape[tuple(sizes)] += flops
        elif is_fused_recurrence(func.__name__):
            self.uncounted.add(func.__name__)
        return out


def is_fused_recurrence(op_name: str) -> bool:
    """A kernel that runs a recurrent layer's matrix multiplies inside itself (the FLOP count
    cannot see them). CUDA's fused LSTM and GRU *cell* kernels (``_thnn_fused_lstm_cell``) are
    not: they do only the elementwise gate arithmetic, after matrix multiplies that are counted."""
    is_recurrent = any(word in op_name for word in ("rnn", "lstm", "gru"))
    return is_recurrent and "_cell" not in op_name


@contextmanager
def visible_kernels() -> Iterator[None]:
    """oneDNN and cuDNN off: ``nn.LSTM`` then runs as torch's own loop of matrix multiplies,
    the same arithmetic as the fused kernel, which :class:`MatmulFlops` can count."""
    # Setting the oneDNN flags makes torch warn about TF32 on Intel GPUs, which do not apply.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with (torch.backends.mkldnn.flags(enabled=False),
              torch.backends.cudnn.flags(enabled=False)):
            yield


def count_training_flops(model: nn.Module, inference: nn.Module, x: torch.Tensor) -> MatmulFlops:
    """Matrix-multiply FLOPs of one training update (forward filtering and both backward
    passes): ``.total``, and ``.by_shape`` for :func:`width_share`.

    Runs under :func:`visible_kernels`, so fused LSTMs are counted. The optimiser steps are
    elementwise and not counted; nor is anything else elementwise.
    """
    with visible_kernels(), MatmulFlops() as counter:
        out = filter_sequences(model, inference, x)
        backward(out, model, inference)
    model.zero_grad(set_to_none=True)
    inference.zero_grad(set_to_none=True)
    if counter.uncounted:
        raise RuntimeError(f"the FLOP count missed fused kernels {sorted(counter.uncounted)}")
    return counter


def width_share(counter: MatmulFlops, width: int) -> int:
    """FLOPs of the multiplies with an operand of size ``width``: AVF's network when ``width``
    is its hidden size and no layer of the model has that size."""
    return sum(flops for sizes, flops in counter.by_shape.items() if width in sizes)


def time_streaming(model: nn.Module, inference: nn.Module, x: torch.Tensor) -> float:
    """Seconds per step of one live stream."""
    stream = StreamingFilter(model, inference, batch_size=1)
    stream.step(x[0:1, 0])  # warm-up
    sync(x.device)
    start = time.perf_counter()
    for t in range(1, x.shape[1]):
        stream.step(x[0:1, t])
    sync(x.device)
    return (time.perf_counter() - start) / (x.shape[1] - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--models", default="srnn,vrnn,dmm")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1,
                        help="time the procedures in turn this many times, repeats each time")
    parser.add_argument("--avf-hidden", type=int, default=1024,
                        help="width of AVF's two highway layers (the paper's is 1024)")
    parser.add_argument("--avf-encoding", default=DEFAULT_ENCODING, choices=get_args(Encoding),
                        help="how AVF's network encodes its inputs (the DMM's config: layernorm)")
    parser.add_argument("--avf-x-input", action="store_true",
                        help="feed AVF x_t beside the gradient (the shipped music configs)")
    parser.add_argument("--avf-grad-samples", type=int, default=DEFAULT_GRAD_SAMPLES,
                        help="posterior samples behind each gradient AVF is fed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", default="benchmarks/results/speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, source = batch(args.data_dir, seed=0)
    x = x.to(device)
    steps = x.shape[0] * x.shape[1]
    avf_x_dim = x.shape[-1] if args.avf_x_input else 0
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = model_factories()[name]().to(device)
        baseline_time = baseline_flops = None
        ambiguous = False  # the model itself has layers of AVF's width: no share to report
        inferences = {label: inference.to(device) for label, inference in procedures(
            model, args.avf_hidden, args.avf_encoding, avf_x_dim, args.avf_grad_samples).items()}
        train_seconds = interleaved_times(model, inferences, x, args.repeats, args.rounds)
        for label, inference in inferences.items():
            seconds = train_seconds[label]
            counter = count_training_flops(model, inference, x)
            flops = counter.total
            baseline_time = seconds if label == "baseline" else baseline_time
            baseline_flops = flops if label == "baseline" else baseline_flops
            if label == "baseline":
                ambiguous = width_share(counter, args.avf_hidden) > 0
            with torch.no_grad():
                latency = time_streaming(model, inference, x)
            rows.append({"model": name, "inference": label, "train_seconds_per_batch": seconds,
                         "train_ms_per_step": 1000 * seconds / x.shape[1],
                         "train_steps_per_second": steps / seconds,
                         "stream_ms_per_step": 1000 * latency,
                         "relative_to_baseline": seconds / baseline_time,
                         "train_gflop_per_step": flops / 1e9 / x.shape[1],
                         "flops_relative_to_baseline": flops / baseline_flops,
                         "avf_network_gflop_per_step": (
                             width_share(counter, args.avf_hidden) / 1e9 / x.shape[1]
                             if label != "baseline" and not ambiguous else None)})
            r = rows[-1]
            print(f"{name:<5} {label:<9} {r['train_steps_per_second']:>9.0f} steps/s "
                  f"{r['train_ms_per_step']:>8.2f} ms/step (batch 16) "
                  f"{r['stream_ms_per_step']:>7.2f} ms/step streaming "
                  f"x{r['relative_to_baseline']:.2f} vs baseline "
                  f"({r['train_gflop_per_step']:.3f} GFLOP/step, "
                  f"x{r['flops_relative_to_baseline']:.2f} in FLOPs"
                  + (f"; {r['avf_network_gflop_per_step']:.3f} in AVF's network)"
                     if r["avf_network_gflop_per_step"] is not None else ")"), flush=True)
    meta = {"data": source, "batch": list(x.shape), "threads": args.threads,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "avf_hidden": args.avf_hidden, "avf_encoding": args.avf_encoding,
            "avf_x_input": args.avf_x_input, "avf_grad_samples": args.avf_grad_samples,
            "repeats": args.repeats, "rounds": args.rounds, "platform": platform.platform(),
            "torch": torch.__version__, "python": platform.python_version()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"data: {source}; wrote {args.json}")


if __name__ == "__main__":
    main()
