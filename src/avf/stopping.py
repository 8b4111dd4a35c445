"""When training cuts its learning rates and when it stops, read from the validation history.

These are functions of ``(history, config)`` rather than :class:`~avf.training.Trainer`
methods, for two reasons: a resumed run counts the validations before its interruption, and a
finished run's ``metrics.jsonl`` can be replayed under other settings
(``benchmarks/replay_stopping.py``). ``history`` is the list of per-epoch records the trainer
writes: a validating epoch has ``valid_free_energy``, an epoch that cut has ``lr_cut``.
``config`` is any object with the :class:`~avf.train_config.TrainConfig` fields used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class StoppingSettings(Protocol):
    """The :class:`~avf.train_config.TrainConfig` fields the rules read."""

    patience: int
    plateau_patience: int
    plateau_max_cuts: int
    plateau_stop_without_gain: bool
    min_improvement: float
    final_min_improvement: float | None


def stop_reason_of(history: list[dict[str, Any]], config: StoppingSettings) -> str | None:
    """``"plateau_max_cuts"`` once a plateau arrives after ``config.plateau_max_cuts``
    learning-rate cuts, ``"plateau_without_gain"`` (with ``config.plateau_stop_without_gain``)
    once a plateau arrives after a cut that brought no counted best, ``"patience"`` once
    ``config.patience`` validations in a row have not beaten the counted best, else ``None``."""
    if on_plateau(history, config):
        if cuts_used_up(history, config):
            return "plateau_max_cuts"
        if config.plateau_stop_without_gain and _cut_without_gain(history, config):
            return "plateau_without_gain"
    if config.patience > 0 and validations_without_improvement(
            history, **_thresholds(config)) >= config.patience:
        return "patience"
    return None


def cut_due(history: list[dict[str, Any]], config: StoppingSettings) -> bool:
    """Whether the epoch just appended to ``history`` (not yet marked ``lr_cut``) cuts the
    learning rates: a plateau while cuts are left, unless it ends training instead."""
    return (on_plateau(history, config) and not cuts_used_up(history, config)
            and not (config.plateau_stop_without_gain and _cut_without_gain(history, config)))


def cuts_used_up(history: list[dict[str, Any]], config: StoppingSettings) -> bool:
    """True when ``config.plateau_max_cuts`` (> 0) cuts are in ``history``."""
    return 0 < config.plateau_max_cuts <= len(_cut_indices(history))


def on_plateau(history: list[dict[str, Any]], config: StoppingSettings) -> bool:
    """True when ``config.plateau_patience`` validations since the counted best and since the
    last learning-rate cut have not beaten it."""
    if config.plateau_patience <= 0:
        return False
    return (validations_without_improvement(history, since_cut=True, **_thresholds(config))
            >= config.plateau_patience)


def validations_without_improvement(history: list[dict[str, Any]], since_cut: bool = False,
                                    min_improvement: float = 0.0, *,
                                    final_min_improvement: float | None = None,
                                    final_after_cuts: int = 0) -> int:
    """Validations in ``history`` after its last counted best; with ``since_cut``, counted only
    after the last epoch marked ``lr_cut`` too (which need not be a validating epoch: a run
    resumed with a new ``plateau_patience`` can cut at once).

    A validation is a counted best when it beats the previous counted best by more than
    ``min_improvement`` (ties are never new bests), so with 0 the counted best is the first
    lowest score, and with more a slow creep of tiny gains counts only once it adds up. With
    ``final_min_improvement`` set, a validation that comes after ``final_after_cuts`` (> 0)
    cuts must beat it by that instead: the last learning-rate stage, where the creep is
    longest, gets its own threshold and the earlier stages keep theirs.
    """
    scored = [i for i, r in enumerate(history) if "valid_free_energy" in r]
    if not scored:
        return 0
    start = _last_counted_best(history, scored, min_improvement, final_min_improvement,
                               final_after_cuts)
    if since_cut:
        start = max([start, *_cut_indices(history)])
    return sum(i > start for i in scored)


def _last_counted_best(history: list[dict[str, Any]], scored: list[int], min_improvement: float,
                       final_min_improvement: float | None, final_after_cuts: int) -> int:
    """The index in ``history`` of the last counted best (see
    :func:`validations_without_improvement`); ``scored`` are the validating indices."""
    start, best = scored[0], history[scored[0]]["valid_free_energy"]
    final_from = len(history)  # the index of the first record after the last allowed cut
    if final_min_improvement is not None and final_after_cuts > 0:
        cut_at = _cut_indices(history)
        if len(cut_at) >= final_after_cuts:
            final_from = cut_at[final_after_cuts - 1] + 1
    for i in scored[1:]:
        delta = min_improvement
        if i >= final_from and final_min_improvement is not None:
            delta = final_min_improvement
        if history[i]["valid_free_energy"] < best - delta:
            start, best = i, history[i]["valid_free_energy"]
    return start


def _cut_without_gain(history: list[dict[str, Any]], config: StoppingSettings) -> bool:
    """True when ``history`` has a cut and no counted best after the last one: the smaller
    learning rate found nothing, and a still smaller one would move the weights less."""
    cut_at = _cut_indices(history)
    scored = [i for i, r in enumerate(history) if "valid_free_energy" in r]
    if not cut_at or not scored:
        return False
    return _last_counted_best(history, scored, **_thresholds(config)) <= cut_at[-1]


def cut_epochs(history: Sequence[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """The epochs that cut the learning rates at a plateau, and those that cut them after a
    divergence (``training.divergence_cuts``: marked ``divergence`` as well as ``lr_cut``)."""
    plateau = [r["epoch"] for r in history if r.get("lr_cut") and not r.get("divergence")]
    return plateau, [r["epoch"] for r in history if r.get("divergence")]


def _cut_indices(history: list[dict[str, Any]]) -> list[int]:
    """The indices of the records marked ``lr_cut``."""
    return [i for i, r in enumerate(history) if r.get("lr_cut")]


def _thresholds(config: StoppingSettings) -> dict[str, Any]:
    return {"min_improvement": config.min_improvement,
            "final_min_improvement": config.final_min_improvement,
            "final_after_cuts": config.plateau_max_cuts}
