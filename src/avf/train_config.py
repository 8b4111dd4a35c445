"""How a run trains, as plain data: the ``[training]`` table of an experiment file.

Kept apart from the loop (:mod:`avf.training`) so that tools that only read or replay settings
(the config loader, ``benchmarks/replay_stopping.py``) need not import the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a resumed run takes from its checkpoint rather than from its config: the optimisers'
# learning rates and their decay schedule, the random streams (``seed`` seeds a fresh run), and
# its weights (``init_from`` only sets a fresh run's first ones).
RESUMED_FROM_CHECKPOINT = ("model_lr", "inference_lr", "lr_decay", "seed", "init_from")


@dataclass
class TrainConfig:
    """How to train; every field can be set from a TOML file's ``[training]`` table."""

    epochs: int = 10
    batch_size: int = 32
    model_lr: float = 1e-3
    inference_lr: float = 1e-3
    lr_decay: float = 1.0  # both learning rates are multiplied by this after every epoch
    model_weight_decay: float = 0.0  # decoupled weight decay (AdamW) on θ; 0: plain Adam
    inference_weight_decay: float = 0.0  # the same for φ
    kl_anneal_epochs: int = 0  # β rises linearly from kl_anneal_start to 1 over these epochs
    kl_anneal_start: float = 0.0
    ema_decay: float = 0.0  # > 0: validation, best.pt and evaluation use an exponential
    #                         moving average of θ and φ with this decay per step (0: off)
    grad_clip: float | None = None  # max global gradient norm, for θ and φ separately
    train_model: bool = True  # False: θ stays fixed and only φ learns
    n_samples: int = 1
    valid_samples: int | None = None  # samples averaged per validation step (unset: n_samples);
    #                                   more of them make the best epoch less a matter of luck
    valid_seed: int | None = None  # set: every validation draws the same noise from this seed
    #                                (common random numbers), so successive scores differ by
    #                                the weights, not by the draw; training's streams are left
    #                                as they were. Unset: validation draws from the training RNG
    valid_every: int = 1  # epochs
    checkpoint_every: int = 1  # epochs
    patience: int = 0  # stop after this many validations without a new best (0: never)
    min_improvement: float = 0.0  # nats/step a validation must beat the last counted best by
    #                               to reset patience and plateau_patience; best.pt still keeps
    #                               the lowest score. > 0 stops endless 1e-5 gains at a tiny
    #                               learning rate from holding a valid_seed run open
    final_min_improvement: float | None = None  # set: the min_improvement of the last stage,
    #                               after plateau_max_cuts cuts, in place of min_improvement
    #                               (the earlier stages, and so their cuts, keep theirs)
    plateau_patience: int = 0  # cut the learning rates after this many validations without a
    #                            new best since the last cut (0: never), see Trainer.fit
    plateau_factor: float = 0.1  # the cut: both learning rates are multiplied by this
    plateau_restore_best: bool = True  # a cut also rewinds weights and optimisers to the best
    plateau_rewind_weights: str = "average"  # with ema_decay, training goes on after a rewind
    #                                          from the best average ("average", the weights
    #                                          validation chose) or from that epoch's raw
    #                                          weights ("trained")
    plateau_max_cuts: int = 0  # after this many cuts the next plateau ends training (0: never)
    plateau_stop_without_gain: bool = False  # true: a plateau after a cut that brought no new
    #                                          best ends training instead of cutting again
    divergence_cuts: int = 0  # > 0: a training batch whose loss or gradient is not finite
    #                           does not end the run; weights and optimisers go back to the best
    #                           validation's and both learning rates are cut by plateau_factor,
    #                           as a plateau cut would (it counts toward plateau_max_cuts), at
    #                           most this many times in a run and once per epoch
    init_from: str | None = None  # a checkpoint, or a run directory (its best.pt), whose model
    #                               and inference weights a new run starts from (their weight
    #                               averages where it kept them): pretraining on one data set,
    #                               fine-tuning on another. Optimisers, epochs and schedules
    #                               start afresh; a run resuming its own checkpoint ignores it
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        """Raise a ``ValueError`` naming the first field whose value cannot work."""
        rules = [
            ("epochs", self.epochs >= 0, "must be >= 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("model_lr", self.model_lr >= 0, "must be >= 0"),
            ("inference_lr", self.inference_lr >= 0, "must be >= 0"),
            ("lr_decay", 0 < self.lr_decay <= 1, "must be in (0, 1]"),
            ("model_weight_decay", self.model_weight_decay >= 0, "must be >= 0"),
            ("inference_weight_decay", self.inference_weight_decay >= 0, "must be >= 0"),
            ("kl_anneal_epochs", self.kl_anneal_epochs >= 0, "must be >= 0"),
            ("kl_anneal_start", 0 <= self.kl_anneal_start <= 1, "must be in [0, 1]"),
            ("ema_decay", 0 <= self.ema_decay < 1, "must be in [0, 1)"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "must be > 0 or unset"),
            ("n_samples", self.n_samples >= 1, "must be >= 1"),
            ("valid_samples", self.valid_samples is None or self.valid_samples >= 1,
             "must be >= 1 or unset"),
            ("valid_every", self.valid_every >= 1, "must be >= 1"),
            ("checkpoint_every", self.checkpoint_every >= 1, "must be >= 1"),
            ("patience", self.patience >= 0, "must be >= 0"),
            ("min_improvement", self.min_improvement >= 0, "must be >= 0"),
            ("final_min_improvement",
             self.final_min_improvement is None or self.final_min_improvement >= 0,
             "must be >= 0 or unset"),
            ("final_min_improvement",
             self.final_min_improvement is None or self.plateau_max_cuts > 0,
             "needs training.plateau_max_cuts > 0 (it applies after the last allowed cut)"),
            ("plateau_patience", self.plateau_patience >= 0, "must be >= 0"),
            ("plateau_factor", 0 < self.plateau_factor < 1, "must be in (0, 1)"),
            ("plateau_max_cuts", self.plateau_max_cuts >= 0, "must be >= 0"),
            ("divergence_cuts", self.divergence_cuts >= 0, "must be >= 0"),
            ("plateau_rewind_weights", self.plateau_rewind_weights in ("average", "trained"),
             "must be 'average' or 'trained'"),
            ("plateau_max_cuts", self.plateau_max_cuts == 0 or self.plateau_patience > 0,
             "needs training.plateau_patience > 0 (without it there are no cuts to count)"),
            ("plateau_stop_without_gain",
             not self.plateau_stop_without_gain or self.plateau_patience > 0,
             "needs training.plateau_patience > 0 (without it there are no cuts)"),
            ("init_from", self.init_from is None or (isinstance(self.init_from, str)
                                                      and self.init_from.strip() != ""),
             "must be the path of a checkpoint or a run directory, or unset"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"training.{name} {rule}, got {getattr(self, name)!r}")


def kl_weight(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """β at optimiser step ``step`` (0-based): linear from ``kl_anneal_start`` to 1."""
    total = config.kl_anneal_epochs * steps_per_epoch
    if total <= 0:
        return 1.0
    start = config.kl_anneal_start
    return start + (1.0 - start) * min(1.0, step / total)
