"""Experiments as plain data: dataclasses read from TOML, with ``section.key=value`` overrides.

Every key is checked against the dataclasses, so a typo fails loudly with the list of valid
keys instead of being silently ignored. The ``options`` tables are free-form here (they are the
keyword arguments of a model or inference constructor) and are checked by :mod:`avf.builders`.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from avf.atomic import atomic_write
from avf.data.music import CROP_SAMPLING
from avf.train_config import TrainConfig
from avf.user_code import absolute_import_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass
class ModelConfig:
    """Which model (``lgssm``, ``growth``, ``srnn``, ``vrnn``, ``dmm``, ``svg``, or your own as
    ``"package.module:Class"`` / ``"file.py:Class"``) and its options (the constructor's
    keyword arguments)."""

    name: str = "lgssm"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferenceConfig:
    """Which procedure (``prior``, ``direct``, ``iterative``, ``gradient``, ``baseline``, or
    your own :class:`~avf.inference.InferenceProcedure` as ``"module:Class"`` /
    ``"file.py:Class"``) and its options."""

    name: str = "iterative"
    options: dict[str, Any] = field(default_factory=dict)


# The keys that belong to some data sources only; a key no source of this config takes is an
# error rather than a setting that silently does nothing.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "synthetic": ("train_sequences", "valid_sequences", "test_sequences", "steps", "generator"),
    "music": ("dataset", "crop", "transpose", "whole_valid", "crop_sampling"),
    "speech": ("dataset", "crop", "frame_size"),
    "video": ("dataset", "train_sequences", "valid_sequences", "test_sequences", "steps",
              "num_digits"),
}
MUSIC_CROP = 25  # the AVF paper's training windows: 25 steps
SPEECH_FRAME = 200  # samples per time step, as in the AVF paper (and VRNN/SRNN) on TIMIT
# defaults per source for the keys left unset
_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"train_sequences": 256, "valid_sequences": 64, "test_sequences": 64,
                  "steps": 50},
    "music": {"crop": MUSIC_CROP, "transpose": 0, "whole_valid": False, "crop_sampling": "song"},
    "speech": {"crop": 0, "frame_size": SPEECH_FRAME},
    "video": {"train_sequences": 2048, "valid_sequences": 128, "test_sequences": 256,
              "steps": 20, "num_digits": 2},
}


@dataclass
class DataConfig:
    """Where the data come from: sampled from a model (``synthetic``) or read from files.

    Each source has its own keys (:data:`SOURCE_KEYS`); writing a key another source owns is an
    error rather than a setting that silently does nothing. ``seed`` serves every source: it
    draws the synthetic data, the random training windows, or the generated videos. The data
    directory is not part of a config, since it differs between machines (see
    :func:`avf.data.resolve_data_dir`).

    * synthetic: ``*_sequences`` per split (0 leaves a split out; 256/64/64 unless set),
      ``steps`` per sequence (50), and ``generator``, which overrides ``[model.options]`` for
      the data-generating model; left empty, the data come from the very model that is trained
      (the right set-up when θ is fixed).
    * music: ``dataset`` (``jsb``, ``nottingham``, ``musedata``, ``piano``, or a file's path)
      and ``crop``, the length of the random windows that train and valid are cut into (25
      unless set; 0 keeps whole songs). Training draws fresh windows every epoch; test songs
      are always scored whole. ``transpose = N`` (0 unless set; not in the AVF paper) shifts
      every training window by a random number of semitones in [-N, N], drawn with the window,
      as augmentation against overfitting; notes shifted off the 88 keys are dropped.
      ``whole_valid = true`` (false unless set) validates on whole valid songs, the way test
      songs are scored, instead of one window per song: more steps (less noise in the choice
      of ``best.pt``) at a higher cost per validation. ``crop_sampling = "step"`` (``"song"``,
      the paper's, unless set) draws the train and valid windows in proportion to song length
      instead of one per song, so that long songs weigh in training and in the choice of
      ``best.pt`` as much as they do in the micro average of the test score.
    * speech: ``dataset`` (``fsdd``, ``timit``, or a directory of WAV files), ``frame_size``
      (waveform samples per time step, 200) and ``crop`` (training windows in frames; 0, the
      default, keeps whole utterances). Waveforms are standardised with the training set's
      mean and standard deviation; test utterances are scored whole.
    * video: ``dataset`` (``smmnist``: Stochastic Moving MNIST generated from the MNIST files;
      ``kth``: KTH Actions), ``steps`` frames per clip (20), and for ``smmnist`` the number of
      sequences per split (training draws ``train_sequences`` fresh videos every epoch) and
      ``num_digits`` (2).
    """

    source: str = "synthetic"
    train_sequences: int | None = None
    valid_sequences: int | None = None
    test_sequences: int | None = None
    steps: int | None = None
    seed: int = 1234
    generator: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    crop: int | None = None
    frame_size: int | None = None
    num_digits: int | None = None
    transpose: int | None = None
    whole_valid: bool | None = None
    crop_sampling: str | None = None

    def resolved(self) -> DataConfig:
        """The same data with other sources' keys cleared and this source's defaults set."""
        if self.source not in SOURCE_KEYS:
            return self  # check() names the unknown source
        own = SOURCE_KEYS[self.source]
        cleared = {key: ({} if key == "generator" else None)
                   for keys in SOURCE_KEYS.values() for key in keys if key not in own}
        filled = {key: value for key, value in _DEFAULTS[self.source].items()
                  if getattr(self, key) is None}
        return replace(self, **cleared, **filled)

    def check(self) -> None:
        """Raise a ``ValueError`` naming the first key whose value cannot work for the source."""
        if self.source not in SOURCE_KEYS:
            raise ValueError(f"unknown data source {self.source!r}; known: "
                             f"{', '.join(SOURCE_KEYS)}")
        own = SOURCE_KEYS[self.source]
        for keys in SOURCE_KEYS.values():
            for key in keys:
                if key not in own and getattr(self, key) not in (None, {}):
                    raise ValueError(f"data.{key} does not apply to source = '{self.source}'")
        if self.source == "synthetic":
            self._check_sizes()
            return
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError(f"data.dataset is required with source = '{self.source}': "
                             f"{_DATASETS[self.source]}")
        if self.crop is not None and self.crop < 0:
            raise ValueError(f"data.crop must be >= 0 (0 keeps whole sequences), got {self.crop}")
        if self.transpose is not None and not 0 <= self.transpose <= 12:
            raise ValueError(f"data.transpose must be a number of semitones from 0 to 12, got "
                             f"{self.transpose}")
        if self.whole_valid is not None and not isinstance(self.whole_valid, bool):
            raise ValueError(f"data.whole_valid must be true or false, got {self.whole_valid!r}")
        if self.crop_sampling is not None and self.crop_sampling not in CROP_SAMPLING:
            raise ValueError(f"data.crop_sampling must be one of {', '.join(CROP_SAMPLING)}, got "
                             f"{self.crop_sampling!r}")
        if self.transpose and not self.crop:
            raise ValueError("data.transpose needs data.crop > 0: only the fresh training "
                             "windows drawn every epoch are transposed")
        if self.frame_size is not None and self.frame_size < 1:
            raise ValueError(f"data.frame_size must be at least 1, got {self.frame_size}")
        if self.source == "video":
            self._check_sizes()
            if self.num_digits is None or self.num_digits < 1:
                raise ValueError(f"data.num_digits must be at least 1, got {self.num_digits}")

    def _check_sizes(self) -> None:
        for split in ("train", "valid", "test"):
            n = getattr(self, f"{split}_sequences")
            if n is None or n < 0:
                raise ValueError(f"data.{split}_sequences must be >= 0, got {n}")
        if self.train_sequences < 1:
            raise ValueError("data.train_sequences must be at least 1")
        if self.steps is None or self.steps < 1:
            raise ValueError(f"data.steps must be at least 1, got {self.steps}")


_DATASETS = {
    "music": "jsb, nottingham, musedata, piano, or the path of a music file",
    "speech": "fsdd, timit, or a directory of WAV files",
    "video": "smmnist or kth",
}


@dataclass
class ExperimentConfig:
    """One experiment: reproducible from this and nothing else.

    ``seed`` initialises the model and inference networks; ``training.seed`` drives the batch
    order and the sampling during training; ``data.seed`` draws the data.
    """

    name: str = "experiment"
    seed: int = 0
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig().resolved())
    training: TrainConfig = field(default_factory=TrainConfig)


# -- reading ----------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read an experiment from TOML and apply ``key=value`` overrides (values parsed as TOML).

    ``name`` defaults to the file's stem. A model or inference procedure named by a relative
    ``file.py:Class`` path gets the absolute path (see :mod:`avf.user_code`). Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` naming the key for anything
    unknown or ill-typed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file") from err
    raw.setdefault("name", path.stem)
    for item in overrides:
        apply_override(raw, item)
    cfg = from_dict(raw)
    cfg.model.name = absolute_import_path(cfg.model.name, path.parent)
    cfg.inference.name = absolute_import_path(cfg.inference.name, path.parent)
    return cfg


def from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested dictionaries, checking every key."""
    _check_source_keys(raw.get("data"))
    cfg = _build(ExperimentConfig, raw, "")
    cfg.data = cfg.data.resolved()
    cfg.data.check()
    cfg.training.check()
    return cfg


def _check_source_keys(table: Any) -> None:
    """Reject a ``[data]`` key that belongs to another source than the one named.

    This looks at the keys as written: after defaults are filled in, a synthetic default cannot
    be told from a value someone set for a music run.
    """
    if not isinstance(table, dict):
        return  # not a table: _build names the problem
    source = table.get("source", DataConfig.source)
    if not isinstance(source, str) or source not in SOURCE_KEYS:
        return  # DataConfig.check names the unknown source
    own = SOURCE_KEYS[source]
    for key in table:
        owners = [name for name, keys in SOURCE_KEYS.items() if key in keys]
        if owners and source not in owners:
            where = " or ".join(f"'{name}'" for name in owners)
            raise ValueError(f"data.{key} only applies to source = {where}, and this config "
                             f"has source = '{source}'; valid keys for '{source}': source, "
                             f"seed, {', '.join(own)}")


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``section.key=value`` in the raw dictionaries; the value is parsed as TOML."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {item!r} must look like section.key=value")
    parts = key.split(".")
    _check_path(parts, item)
    node = raw
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: '{'.'.join(parts[:i + 1])}' is not a table")
    node[parts[-1]] = parse_value(text.strip())


def parse_value(text: str) -> Any:
    """A TOML value (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"a"``), else the text itself."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _check_path(parts: list[str], item: str) -> None:
    cls: Any = ExperimentConfig
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        if cls is None:  # inside a free-form table: any key goes
            return
        names = [f.name for f in fields(cls)]
        if part not in names:
            raise ValueError(
                f"unknown key '{'.'.join(parts[:i + 1])}' in override {item!r}; "
                f"valid keys{_in(where)}: {', '.join(names)}"
            )
        hint = get_type_hints(cls)[part]
        if is_dataclass(hint):
            cls = hint
        elif hint is dict or get_origin(hint) is dict:
            cls = None
        elif i < len(parts) - 1:
            raise ValueError(
                f"override {item!r}: '{'.'.join(parts[:i + 1])}' is a value, not a table"
            )


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"[{where}] must be a table, got {_describe(data)}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise ValueError(
                f"unknown key '{_join(where, key)}'; valid keys{_in(where)}: {', '.join(names)}"
            )
    for f in fields(cls):
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"missing key '{_join(where, f.name)}'")
    kwargs = {key: _convert(hints[key], value, _join(where, key)) for key, value in data.items()}
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str) -> Any:
    """Check ``value`` against a field's type (TOML integers are accepted as floats)."""
    if is_dataclass(hint):
        return _build(hint, value, key)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if type(None) in get_args(hint) and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        if len(options) == 1:
            return _convert(options[0], value, key)
        return value
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a table, got {_describe(value)}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {_describe(value)}")
        return value
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _in(where: str) -> str:
    return f" in [{where}]" if where else " at the top level"


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


# -- writing ----------------------------------------------------------------------------------
def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as TOML (unset optional values are left out), atomically:
    a run directory's config is what rebuilds its model, so it is never left half written."""
    text = dumps(asdict(cfg)).encode("utf-8")
    atomic_write(Path(path), lambda f: f.write(text))


def config_changes(old: ExperimentConfig, new: ExperimentConfig) -> dict[str, str]:
    """``{dotted key: "old → new"}`` for every entry that differs, in file order."""
    before, after = _flatten(asdict(old)), _flatten(asdict(new))
    return {key: f"{_shown(before.get(key))} → {_shown(after.get(key))}"
            for key in dict.fromkeys([*before, *after]) if before.get(key) != after.get(key)}


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _shown(value: Any) -> str:
    return "(unset)" if value is None else _value(value)


def dumps(data: dict[str, Any]) -> str:
    """TOML text for nested dictionaries of plain values (``None`` values are skipped)."""
    lines: list[str] = []
    _write_table(lines, [], data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _write_table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict) and v}
    if path and (scalars or not tables):
        lines.append("")
        lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _write_table(lines, [*path, key], value)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    raise ValueError(f"cannot write {_describe(value)} to TOML")


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
