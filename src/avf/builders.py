"""From config to objects: models and inference procedures by name (data: avf.datasets).

The ``options`` tables of a config are the constructors' keyword arguments. They are checked
against the constructor signatures here, so an unknown or ill-typed option fails with its
name before anything is built.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from torch import nn

from avf.config import InferenceConfig, ModelConfig
from avf.inference import Direct, GradientDescent, InferenceProcedure, Iterative, PriorOnly
from avf.model import check_model, latent_dim, state_dim
from avf.user_code import is_import_path, load_object
from avf.validation import observation_shape

# Constructor arguments that the builder supplies itself (or that TOML cannot express).
_SUPPLIED = {"family"}


def _lgssm() -> Callable[..., nn.Module]:
    from avf.models.lgssm import LinearGaussian

    return LinearGaussian.random


def _growth() -> Callable[..., nn.Module]:
    from avf.models.growth import NonlinearGrowth

    return NonlinearGrowth


def _srnn() -> Callable[..., nn.Module]:
    from avf.models.srnn import SRNN

    return SRNN


def _vrnn() -> Callable[..., nn.Module]:
    from avf.models.vrnn import VRNN

    return VRNN


def _dmm() -> Callable[..., nn.Module]:
    from avf.models.dmm import DMM

    return DMM


def _svg() -> Callable[..., nn.Module]:
    from avf.models.svg import SVG

    return SVG


MODELS: dict[str, Callable[[], Callable[..., nn.Module]]] = {
    "lgssm": _lgssm, "growth": _growth, "srnn": _srnn, "vrnn": _vrnn, "dmm": _dmm, "svg": _svg}
INFERENCE = ("prior", "direct", "iterative", "gradient", "baseline")


def model_factory(name: str) -> Callable[..., nn.Module]:
    """What builds the model called ``name``: a built-in's class, or the user's class (or
    function) at the import path ``module:Class`` / ``file.py:Class`` (:mod:`avf.user_code`)."""
    if is_import_path(name):
        factory = load_object(name)
        if not callable(factory):
            raise ValueError(f"model '{name}' is a {type(factory).__name__}, not a class or "
                             "function that builds a model")
        return factory
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; known models: {', '.join(MODELS)}, or your "
                         "own as 'package.module:Class' or 'file.py:Class'")
    return MODELS[name]()


def build_model(cfg: ModelConfig) -> nn.Module:
    """``lgssm`` → ``LinearGaussian.random(**options)``; the others → their class.

    ``growth`` → ``NonlinearGrowth``, ``srnn`` → ``SRNN``, ``vrnn`` → ``VRNN``, ``dmm`` → ``DMM``,
    ``svg`` → ``SVG``; an import path → the user's class, called with the options, which must
    give an ``nn.Module`` with the step contract (:class:`avf.model.StepModel`).
    """
    factory = model_factory(cfg.name)
    check_options(f"model '{cfg.name}'", cfg.options, factory)
    model = factory(**cfg.options)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model '{cfg.name}' built a {type(model).__name__}, not a "
                        "torch.nn.Module")
    check_model(model)
    return model


def build_inference(cfg: InferenceConfig, model: nn.Module, x_dim: int) -> InferenceProcedure:
    """The named procedure, sized for ``model``; ``x_dim`` is the flattened size of one x_t.

    Extra options: ``use_state`` (direct, default true) feeds the model state to the encoder;
    ``x_input`` (iterative, default false) adds x_t to the inputs of the iterative model.
    ``baseline`` is the model's own encoder, ``model.baseline_encoder(**options)``; an import
    path (``module:Class``, ``file.py:Class``) is your own procedure.
    """
    opts = dict(cfg.options)
    where = f"inference '{cfg.name}'"
    if cfg.name == "prior":
        check_options(where, opts, PriorOnly)
        return PriorOnly(**opts)
    if cfg.name == "gradient":
        check_options(where, opts, GradientDescent)
        return GradientDescent(**opts)
    if cfg.name == "direct":
        use_state = _flag(opts, "use_state", True, where)
        check_options(where, opts, Direct, supplied={"x_dim", "latent_dim", "state_dim"},
                      extra=("use_state",))
        return Direct(x_dim, latent_dim(model), state_dim(model) if use_state else 0, **opts)
    if cfg.name == "iterative":
        x_input = _flag(opts, "x_input", False, where)
        check_options(where, opts, Iterative, supplied={"latent_dim", "x_dim"},
                      extra=("x_input",))
        return Iterative(latent_dim(model), x_dim=x_dim if x_input else 0, **opts)
    if cfg.name == "baseline":
        factory = getattr(model, "baseline_encoder", None)
        if factory is None:
            raise ValueError(f"model {type(model).__name__} has no baseline encoder")
        check_options(where, opts, factory)
        return factory(**opts)
    if is_import_path(cfg.name):
        return _user_inference(cfg.name, opts, model, x_dim)
    raise ValueError(f"unknown inference '{cfg.name}'; known procedures: {', '.join(INFERENCE)}, "
                     "or your own as 'package.module:Class' or 'file.py:Class'")


def _user_inference(name: str, opts: dict[str, Any], model: nn.Module,
                    x_dim: int) -> InferenceProcedure:
    """A user's :class:`InferenceProcedure` subclass, given the options plus whichever of
    ``latent_dim``, ``x_dim`` and ``state_dim`` its constructor takes (from the model)."""
    factory = load_object(name)
    where = f"inference '{name}'"
    if not callable(factory):
        raise ValueError(f"{where} is a {type(factory).__name__}, not a class or function")
    sizes = {"latent_dim": lambda: latent_dim(model), "x_dim": lambda: x_dim,
             "state_dim": lambda: state_dim(model)}
    params = inspect.signature(factory).parameters
    supplied = {key: size() for key, size in sizes.items() if key in params and key not in opts}
    check_options(where, opts, factory, supplied=supplied)
    inference = factory(**supplied, **opts)
    if not isinstance(inference, InferenceProcedure):
        raise TypeError(f"{where} built a {type(inference).__name__}, not an "
                        "avf.inference.InferenceProcedure")
    return inference


def observation_size(model: nn.Module) -> int:
    """Number of numbers in one observation x_t (what an encoder takes as input)."""
    return math.prod(observation_shape(model))


# -- option checking --------------------------------------------------------------------------
def check_options(
    where: str,
    options: dict[str, Any],
    target: Callable[..., Any],
    supplied: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> None:
    """Raise ``ValueError`` for an option ``target`` does not take, or of the wrong type."""
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    skip = _SUPPLIED | set(supplied)
    valid = [n for n, p in params.items()
             if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in options.items():
        if key not in valid:
            listed = sorted([*valid, *extra])
            raise ValueError(f"unknown option '{key}' for {where}; valid options: "
                             f"{', '.join(listed) if listed else '(none)'}")
        hint = _hints(target).get(key)
        if hint is not None and not _matches(hint, value):
            raise ValueError(f"option '{key}' for {where} must be {_show(hint)}, got {value!r}")


def _flag(opts: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = opts.pop(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"option '{key}' for {where} must be true or false, got {value!r}")
    return value


def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        return get_type_hints(fn)
    except Exception:  # unresolvable annotations: check names only
        return {}


def _matches(hint: Any, value: Any) -> bool:
    """Whether a TOML value fits a simple annotation; unfamiliar annotations always match."""
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        return any(_matches(a, value) for a in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _show(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    return getattr(hint, "__name__", str(hint))
