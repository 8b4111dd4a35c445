"""docs/config.md against the code: every config key listed, none invented, defaults the code's.

A reference page that lists a key the code no longer has, or a default it changed, is worse than
none; these tests fail as soon as the two drift apart.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from avf.config import _DEFAULTS, SOURCE_KEYS, DataConfig, ExperimentConfig, tomllib
from avf.training import TrainConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _rows() -> dict[str, list[str]]:
    """``{key: the row's other cells}`` for every table row whose first cell is a `key`."""
    rows: dict[str, list[str]] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells[0].startswith("`"):
            key = cells[0].strip("`")
            assert key not in rows, f"{key} is listed twice"
            rows[key] = cells[1:]
    return rows


def _value(cell: str) -> Any:
    """A default cell as a value: a TOML literal in backticks, or ``None`` for "unset"."""
    if cell == "unset":
        return None
    return tomllib.loads(f"v = {cell.strip('`')}")["v"]


def _code_keys() -> set[str]:
    top = {f.name for f in dataclasses.fields(ExperimentConfig)
           if f.name not in ("model", "inference", "data", "training")}
    return (top | {"model.name", "model.options", "inference.name", "inference.options"}
            | {f"data.{f.name}" for f in dataclasses.fields(DataConfig)}
            | {f"training.{f.name}" for f in dataclasses.fields(TrainConfig)})


def test_every_key_of_the_code_is_documented_and_no_other() -> None:
    documented, code = set(_rows()), _code_keys()
    assert code - documented == set(), "keys missing from docs/config.md"
    assert documented - code == set(), "keys in docs/config.md that the code does not have"


TRAINING_KEYS = sorted(f"training.{f.name}" for f in dataclasses.fields(TrainConfig))


@pytest.mark.parametrize("key", [*TRAINING_KEYS, "name", "seed", "device"])
def test_the_documented_defaults_are_the_codes(key: str) -> None:
    default = _rows()[key][0]
    if key.startswith("training."):
        expected = getattr(TrainConfig(), key.removeprefix("training."))
    else:
        expected = getattr(ExperimentConfig(), key)
    assert _value(default) == expected, f"{key}: docs say {default}, the code {expected!r}"


def test_the_documented_data_defaults_are_each_sources() -> None:
    rows = _rows()
    for key, cells in rows.items():
        if not key.startswith("data."):
            continue
        sources, default, _ = cells
        name = key.removeprefix("data.")
        if sources == "all" or default == "required":
            if default != "required":
                assert _value(default) == getattr(DataConfig(), name), key
            continue
        listed = sources.split(", ")
        assert listed == [s for s in SOURCE_KEYS if name in SOURCE_KEYS[s]], key
        if name == "generator":
            assert _value(default) == {}
            continue
        values = [_value(cell) for cell in default.split(", ")]
        assert values == [_DEFAULTS[source][name] for source in listed], key
