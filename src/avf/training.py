"""The training loop: θ and φ each descend their own loss, with checkpoints that resume exactly.

Two Adam optimisers, one per parameter set, because the two losses are different objectives
(see :func:`avf.filtering.backward`) and usually want different learning rates. A run directory
holds ``checkpoint.pt`` (everything needed to continue bit for bit: weights, their averages
when ``ema_decay`` > 0, optimiser and scheduler state, every RNG, counters), ``best.pt``
(best validation free energy) and ``metrics.jsonl`` (one JSON line per epoch).

The training data are fixed :class:`~avf.data.Sequences`, or a function of the epoch that
returns them, for data drawn afresh every epoch (random crops of longer songs). Such a function
must give the same data for the same epoch, so that a resumed run sees what an uninterrupted
one would have seen.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Adam, AdamW, Optimizer
from torch.optim.lr_scheduler import ExponentialLR
from tqdm.auto import tqdm

from avf.atomic import atomic_write
from avf.averaging import WeightAverage
from avf.callbacks import BatchEnd, Callback
from avf.checkpoints import BEST as BEST
from avf.checkpoints import CHECKPOINT as CHECKPOINT
from avf.checkpoints import METRICS as METRICS
from avf.checkpoints import init_checkpoint as init_checkpoint
from avf.checkpoints import load_weights as load_weights
from avf.data.batching import Sequences
from avf.evaluation import Score, evaluate
from avf.filtering import FilterOutput, backward, filter_sequences, trainable
from avf.random_state import random_state, seed_everything, seeded, set_random_state
from avf.run_lock import exclusive_run_dir
from avf.stopping import cut_due, cut_epochs, cuts_used_up, stop_reason_of
from avf.train_config import RESUMED_FROM_CHECKPOINT as RESUMED_FROM_CHECKPOINT
from avf.train_config import TrainConfig as TrainConfig
from avf.train_config import kl_weight as kl_weight
from avf.validation import NonFiniteError

PARTS = ("model", "inference")

TrainData = Sequences | Callable[[int], Sequences]
"""Fixed training sequences, or ``epoch -> Sequences`` (epochs count from 1) for fresh data."""


class Trainer:
    """Trains a model and an inference procedure on :class:`~avf.data.Sequences`.

    With a ``run_dir``, :meth:`fit` resumes from ``run_dir/checkpoint.pt`` when it exists, so
    an interrupted run continues by calling the same command again. A fresh run seeds torch,
    numpy and ``random`` from ``config.seed`` so that it is reproducible from its config.
    ``callbacks`` (:class:`~avf.callbacks.Callback`) are called after every batch and epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        inference: nn.Module,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.config = config if config is not None else TrainConfig()
        self.config.check()
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be avf.callbacks.Callback instances, got "
                                f"{type(callback).__name__}")
        self.callbacks = list(callbacks)
        self._stop_requested = False
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.inference = inference.to(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        theta = trainable(model.parameters()) if self.config.train_model else []
        phi = trainable(inference.parameters())
        cfg = self.config
        lrs = {"model": cfg.model_lr, "inference": cfg.inference_lr}
        self.weight_decays = {"model": cfg.model_weight_decay,
                              "inference": cfg.inference_weight_decay}
        self.optimizers: dict[str, Optimizer | None] = {
            name: _adam(params, lrs[name], self.weight_decays[name]) if params else None
            for name, params in zip(PARTS, (theta, phi), strict=True)
        }
        self.schedulers: dict[str, ExponentialLR | None] = {
            name: ExponentialLR(opt, gamma=self.config.lr_decay) if opt is not None else None
            for name, opt in self.optimizers.items()
        }
        self.averages: dict[str, WeightAverage] = {  # of the parts that train, if averaging
            name: WeightAverage(self._part(name), cfg.ema_decay)
            for name, opt in self.optimizers.items() if opt is not None and cfg.ema_decay > 0
        }
        self.shuffle_generator = torch.Generator().manual_seed(self.config.seed)
        self.epoch = 0
        self.step = 0
        self.checkpoint_epoch: int | None = None  # the epoch run_dir's checkpoint.pt holds
        self.best_valid: float | None = None
        self._best_in_memory: dict[str, Any] | None = None  # only without a run_dir
        self._divergence: str | None = None  # this epoch's divergence cut, why it was made
        self.history: list[dict[str, Any]] = []
        self.wall_time = 0.0

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: TrainData, valid: Sequences | None = None,
            time_limit: float | None = None) -> list[dict[str, Any]]:
        """Train up to ``config.epochs`` epochs in total; returns every epoch's metrics.

        ``train`` is fixed data or a function of the epoch (see :data:`TrainData`).
        ``time_limit`` (seconds) stops after the first epoch that ends past it, with a
        checkpoint of that epoch, so a session or a machine lease can end cleanly and the same
        call resumes later.

        With ``config.plateau_patience`` > 0 both learning rates are multiplied by
        ``plateau_factor`` once that many validations have passed without a new best since the
        last cut, and (``plateau_restore_best``) the weights and optimiser states go back to the
        best validation's first: a fast rate finds a good region early, a slow one then keeps
        improving where the fast one would start to overfit. With weight averages, training
        goes on from the best average (``plateau_rewind_weights``). The epoch of a cut is marked
        ``lr_cut`` in the metrics.

        A training batch whose loss or gradient is not finite raises :class:`NonFiniteError`
        and leaves the last checkpoint as it was; with ``config.divergence_cuts`` > 0 it instead
        makes such a cut at once, from the best weights, marked ``divergence`` as well.

        With a ``run_dir`` the call holds the directory's lock (:mod:`avf.run_lock`): while
        another process trains the same directory, this raises
        :class:`avf.run_lock.RunInUseError` instead of interleaving its epochs with that one's.
        """
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
        if self.run_dir is None:
            return self._fit(train, valid, time_limit)
        with exclusive_run_dir(self.run_dir):  # a second trainer of the run is refused
            return self._fit(train, valid, time_limit)

    def _fit(self, train: TrainData, valid: Sequences | None,
             time_limit: float | None) -> list[dict[str, Any]]:
        deadline = None if time_limit is None else time.monotonic() + time_limit
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint = self.run_dir / CHECKPOINT
            if self.epoch == 0 and checkpoint.exists():
                self.load_checkpoint(checkpoint)
                self.checkpoint_epoch = self.epoch
            self._rewrite_metrics()
        if self.epoch == 0 and self.config.init_from is not None:
            self.start_from(self.config.init_from)
        if self.epoch == 0:
            seed_everything(self.config.seed)
        if not any(self.optimizers.values()) and self.epoch < self.config.epochs:
            warnings.warn("nothing to train: neither the model nor the inference procedure has "
                          "trainable parameters (the epochs only measure them)", stacklevel=2)
        self._stop_requested = False
        while self.epoch < self.config.epochs and not self.out_of_patience():
            data = epoch_data(train, self.epoch + 1)
            self._run_epoch(data, valid, data.num_batches(self.config.batch_size))
            if (self.out_of_patience() or self._stop_requested
                    or (deadline is not None and time.monotonic() >= deadline)):
                if self.run_dir is not None and self.epoch % self.config.checkpoint_every:
                    self._save_resume_point()
                break
        return list(self.history)

    def start_from(self, source: str | Path) -> dict[str, Any]:
        """Load the model and inference weights of ``source`` (a checkpoint, or a run
        directory's ``best.pt``; weight averages where kept) into a run that has not trained
        yet, and restart the weight averages from them; returns the checkpoint.

        :meth:`fit` calls this for ``config.init_from`` when the run starts afresh.
        """
        if self.epoch != 0:
            raise RuntimeError(f"start_from is for a run that has not trained yet; this one is "
                               f"at epoch {self.epoch}")
        ckpt = load_weights(init_checkpoint(source), self.model, self.inference, averaged=True)
        for name, average in self.averages.items():
            average.restart(self._part(name))
        return ckpt

    def request_stop(self) -> None:
        """End :meth:`fit` after the current epoch, with a checkpoint of it; for callbacks.

        Like ``time_limit`` it ends this call only: calling :meth:`fit` again continues the run.
        """
        self._stop_requested = True

    def out_of_patience(self) -> bool:
        """True once training should stop early, for any reason of :meth:`stop_reason`."""
        return self.stop_reason() is not None

    def stop_reason(self) -> str | None:
        """Why training should stop now (see :func:`avf.stopping.stop_reason_of`), or ``None``."""
        return stop_reason_of(self.history, self.config)

    def _cut_learning_rates(self, rewind: bool | None = None) -> None:
        """Multiply both learning rates by ``plateau_factor``, first rewinding to the best
        when ``rewind`` (by default: ``plateau_restore_best``)."""
        rates = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()
                 if opt is not None}
        if self.config.plateau_restore_best if rewind is None else rewind:
            self._rewind_to_best()
        for name, opt in self.optimizers.items():
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = rates[name] * self.config.plateau_factor

    def _cut_after_divergence(self, err: NonFiniteError) -> None:
        """Go back to the best validation's weights with cut learning rates
        (``divergence_cuts``), or raise ``err`` where that is not allowed or not possible.

        Why: a run that has trained well for hundreds of epochs can step into a region where
        its latent state runs away on some windows (BENCHMARKS §5.26); with a smaller learning
        rate from the last good weights it trains on. That is what the plateau rule would do a
        little later anyway, so the cut takes the place of one of its cuts.
        """
        cfg = self.config
        used = len(cut_epochs(self.history)[1])
        why = None
        if cfg.divergence_cuts == 0:
            raise err
        if used >= cfg.divergence_cuts:
            why = f"training.divergence_cuts = {cfg.divergence_cuts} used up"
        elif self._divergence is not None:
            why = "this epoch already made one"
        elif cuts_used_up(self.history, cfg):
            why = f"training.plateau_max_cuts = {cfg.plateau_max_cuts} cuts used up"
        elif not self._has_best():
            why = "no validation has kept best weights to go back to yet"
        if why is not None:
            raise NonFiniteError(f"{err} (no divergence cut: {why})") from err
        self._cut_learning_rates(rewind=True)
        self._divergence = str(err)
        rates = ", ".join(f"{k} {v:.3g}" for k, v in self._learning_rates().items()
                          if v is not None)
        warnings.warn(f"{err}\n-> training.divergence_cuts: went back to the best "
                      f"validation's weights and cut the learning rates to {rates}", stacklevel=2)

    def _has_best(self) -> bool:
        if self.run_dir is not None:
            return (self.run_dir / BEST).exists()
        return self._best_in_memory is not None

    def _rewind_to_best(self) -> None:
        """Load the best validation's weights and optimiser states: best.pt, or the copy kept
        in memory by a trainer without a run directory."""
        if self.run_dir is not None:
            if not (self.run_dir / BEST).exists():
                raise FileNotFoundError(
                    f"{self.run_dir / BEST} is missing, so the learning-rate cut cannot rewind to "
                    "the best weights; restore it, or set training.plateau_restore_best = false")
            best: dict[str, Any] | None = load_weights(self.run_dir / BEST, self.model,
                                                       self.inference)
        else:
            best = self._best_in_memory
            if best is None:
                return
            self.model.load_state_dict(best["model"])
            self.inference.load_state_dict(best["inference"])
        for name, opt in self.optimizers.items():
            if opt is not None:
                opt.load_state_dict(best["optimizers"][name])
        self._apply_weight_decay()
        self._load_averages(best.get("average"))
        if self.config.plateau_rewind_weights == "average":
            # The best epoch was chosen by its average, which scores better than that epoch's
            # raw weights; going on from the raw ones would throw that gain away at every cut.
            for name, average in self.averages.items():
                self._part(name).load_state_dict(average.module.state_dict())

    def _apply_weight_decay(self) -> None:
        """Set the configured weight decays after loading optimiser states, which carry their
        own: a run resumed with a new ``*_weight_decay`` then uses the new one."""
        for name, opt in self.optimizers.items():
            if opt is not None:
                for group in opt.param_groups:
                    group["weight_decay"] = self.weight_decays[name]

    def _weights_and_optimizers(self) -> dict[str, Any]:
        """A copy of what a rewind restores (not the history or RNG states of a checkpoint)."""
        state = self.state_dict()
        return copy.deepcopy({k: state[k] for k in ("model", "inference", "optimizers",
                                                    "average")})

    # -- weight averages --------------------------------------------------------------------
    def _part(self, name: str) -> nn.Module:
        return self.model if name == "model" else self.inference

    def _load_averages(self, saved: dict[str, Any] | None) -> None:
        """Restore the averages a checkpoint holds; a part it has none for (a run that trained
        without averaging until now) starts its average over from the loaded live weights."""
        for name, average in self.averages.items():
            if saved and saved.get(name) is not None:
                average.load_state_dict(saved[name])
            else:
                average.restart(self._part(name))

    def scored_modules(self) -> tuple[nn.Module, nn.Module]:
        """The model and inference that validation scores: the weight averages where
        ``config.ema_decay`` > 0, else the live modules."""
        def scored(name: str) -> nn.Module:
            return self.averages[name].module if name in self.averages else self._part(name)

        return scored("model"), scored("inference")

    def _run_epoch(self, train: Sequences, valid: Sequences | None, steps_per_epoch: int) -> None:
        epoch = self.epoch + 1
        last = epoch == self.config.epochs
        start = time.perf_counter()
        record: dict[str, Any] = {"epoch": epoch, **self._learning_rates()}
        record.update(self._train_epoch(train, epoch, steps_per_epoch))
        if self._divergence is not None:
            record.update(lr_cut=True, divergence=self._divergence)
        if valid is not None and (epoch % self.config.valid_every == 0 or last):
            score = self._validate(valid, epoch)
            record.update(valid_free_energy=score.free_energy,
                          valid_macro_free_energy=score.macro_free_energy,
                          valid_recon=score.recon, valid_kl=score.kl)
        for scheduler in self.schedulers.values():
            if scheduler is not None:
                scheduler.step()
        self.epoch = epoch
        elapsed = time.perf_counter() - start
        self.wall_time += elapsed
        record.update(step=self.step, epoch_time=elapsed, wall_time=self.wall_time)
        value = record.get("valid_free_energy")
        improved = value is not None and (self.best_valid is None or value < self.best_valid)
        if improved:
            self.best_valid = value
        self.history.append(record)
        if improved and self.run_dir is not None:
            self.save_checkpoint(self.run_dir / BEST)
        elif improved and ((self.config.plateau_patience > 0 and self.config.plateau_restore_best)
                           or self.config.divergence_cuts > 0):
            self._best_in_memory = self._weights_and_optimizers()
        if cut_due(self.history, self.config):
            self._cut_learning_rates()
            record["lr_cut"] = True
        self._append_metrics(record)
        if self.run_dir is not None and (epoch % self.config.checkpoint_every == 0 or last):
            self._save_resume_point()
        for callback in self.callbacks:
            callback.on_epoch_end(self, dict(record))

    def _train_epoch(self, train: Sequences, epoch: int, steps_per_epoch: int) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        self.inference.train()
        totals = {"free_energy": 0.0, "recon": 0.0, "kl": 0.0}
        steps, beta = 0, 1.0
        self._divergence = None
        batches = train.batches(cfg.batch_size, shuffle=True, generator=self.shuffle_generator)
        with tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}",
                  disable=not cfg.progress, unit="batch") as bar:
            for index, (x, mask) in enumerate(bar, start=1):
                beta = kl_weight(self.step, steps_per_epoch, cfg)
                try:
                    out = self._train_step(x.to(self.device), mask.to(self.device), beta,
                                           f"epoch {epoch}, batch {index}")
                except NonFiniteError as err:
                    self._cut_after_divergence(err)  # or raise
                    self.step += 1  # the batch was seen; KL annealing keeps its pace
                    continue
                totals["free_energy"] += float(out.free_energy.detach().sum())
                totals["recon"] += float(out.recon.detach().sum())
                totals["kl"] += float(out.kl.detach().sum())
                steps += int(out.steps)
                bar.set_postfix(F=f"{totals['free_energy'] / steps:.4f}", beta=f"{beta:.3g}")
                if self.callbacks:
                    done = BatchEnd(epoch=epoch, batch=index, step=self.step, beta=beta, output=out)
                    for callback in self.callbacks:
                        callback.on_batch_end(self, done)
        return {"beta": beta, **{f"train_{k}": v / max(steps, 1) for k, v in totals.items()}}

    def _train_step(self, x: Tensor, mask: Tensor, beta: float, where: str) -> FilterOutput:
        """One batch: filter, send each loss to its own parameters, check, clip, step."""
        cfg = self.config
        try:
            out = filter_sequences(self.model, self.inference, x, mask, beta=beta,
                                   n_samples=cfg.n_samples)
        except NonFiniteError as err:
            raise NonFiniteError(f"{where}: {err}") from err
        optimizers = [opt for opt in self.optimizers.values() if opt is not None]
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        model = self.model if self.optimizers["model"] is not None else None
        backward(out, model, self.inference)
        self._check_gradients(where)
        for opt in optimizers:
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(_params(opt), cfg.grad_clip)
            opt.step()
        for name, average in self.averages.items():
            average.update(self._part(name))
        self.step += 1
        return out

    def _check_gradients(self, where: str) -> None:
        for part, opt in self.optimizers.items():
            if opt is None:
                continue
            grads = [p.grad for p in _params(opt) if p.grad is not None]
            if not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
                continue
            module = self._part(part)
            for name, p in module.named_parameters():
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    raise NonFiniteError(
                        f"{where}: non-finite gradient in {part} parameter "
                        f"'{name}'; lower the learning rate, or set training.divergence_cuts to go "
                        "back to the best weights with a smaller one"
                    )

    def _validate(self, valid: Sequences, epoch: int) -> Score:
        batches = ((x.to(self.device), m.to(self.device))
                   for x, m in valid.batches(self.config.batch_size))
        samples = self.config.valid_samples or self.config.n_samples
        common_noise = (seeded(self.config.valid_seed, self.device)
                        if self.config.valid_seed is not None else nullcontext())
        try:
            with common_noise:
                return evaluate(*self.scored_modules(), batches, n_samples=samples)
        except NonFiniteError as err:
            raise NonFiniteError(f"validation after epoch {epoch}: {err}") from err

    def _learning_rates(self) -> dict[str, float | None]:
        return {f"{name}_lr": (opt.param_groups[0]["lr"] if opt is not None else None)
                for name, opt in self.optimizers.items()}

    # -- metrics log ------------------------------------------------------------------------
    def _append_metrics(self, record: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        with open(self.run_dir / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _rewrite_metrics(self) -> None:
        """Start the log from this trainer's history: a resumed checkpoint's epochs, or none.

        Lines of epochs that no checkpoint kept (a crash between checkpoints) are dropped.
        """
        assert self.run_dir is not None
        text = "".join(json.dumps(r) + "\n" for r in self.history)
        atomic_write(self.run_dir / METRICS, lambda f: f.write(text.encode("utf-8")))

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly where it stopped."""
        return {
            "format": 1,
            "epoch": self.epoch,
            "step": self.step,
            "best_valid": self.best_valid,
            "wall_time": self.wall_time,
            "history": self.history,
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "inference": self.inference.state_dict(),
            "optimizers": {k: (o.state_dict() if o is not None else None)
                           for k, o in self.optimizers.items()},
            "schedulers": {k: (s.state_dict() if s is not None else None)
                           for k, s in self.schedulers.items()},
            "average": {k: a.state_dict() for k, a in self.averages.items()},
            "rng": random_state(self.shuffle_generator),
        }

    def _save_resume_point(self) -> None:
        """The run directory's ``checkpoint.pt``, the one ``fit`` resumes from."""
        assert self.run_dir is not None
        self.save_checkpoint(self.run_dir / CHECKPOINT)
        self.checkpoint_epoch = self.epoch

    def save_checkpoint(self, path: str | Path) -> None:
        """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
        state = self.state_dict()
        atomic_write(Path(path), lambda f: torch.save(state, f))

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore weights, optimisers, schedulers, RNG states and counters from ``path``."""
        ckpt = load_weights(path, self.model, self.inference)
        for kind, objects in (("optimizers", self.optimizers), ("schedulers", self.schedulers)):
            for name, obj in objects.items():
                saved = ckpt[kind].get(name)
                if (saved is None) != (obj is None):
                    have = "has" if saved is not None else "has no"
                    raise ValueError(
                        f"{path} {have} {name} optimiser state but this trainer "
                        f"{'has' if obj is not None else 'has no'} {name} optimiser "
                        "(training.train_model or the parameters changed)"
                    )
                if obj is not None:
                    obj.load_state_dict(saved)
        self._apply_weight_decay()
        self._load_averages(ckpt.get("average"))
        set_random_state(ckpt["rng"], self.shuffle_generator)
        self.epoch = int(ckpt["epoch"])
        self.step = int(ckpt["step"])
        self.best_valid = ckpt["best_valid"]
        self.wall_time = float(ckpt["wall_time"])
        self.history = list(ckpt["history"])


def _adam(params: list[nn.Parameter], lr: float, weight_decay: float) -> Optimizer:
    """Adam, or AdamW (weight decay decoupled from the gradient's scaling) when decaying."""
    if weight_decay > 0:
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    return Adam(params, lr=lr)


def epoch_data(train: TrainData, epoch: int) -> Sequences:
    """The training sequences of ``epoch`` (from 1): ``train`` itself, or ``train(epoch)``."""
    if isinstance(train, Sequences):
        return train
    if not callable(train):
        raise TypeError(f"training data must be Sequences or a function of the epoch, got "
                        f"{type(train).__name__}")
    data = train(epoch)
    if not isinstance(data, Sequences):
        raise TypeError(f"the training data function returned a {type(data).__name__} for "
                        f"epoch {epoch}, not Sequences")
    return data


def _params(opt: Optimizer) -> list[Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]
