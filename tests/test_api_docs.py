"""docs/api.md is generated from the code; this fails when the two differ."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "make_api_reference.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_api_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_is_up_to_date(capsys) -> None:
    status = _script().main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_every_public_name_is_on_the_page() -> None:
    script = _script()
    page = script.PAGE.read_text(encoding="utf-8")
    for module_name in script.MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            assert f"### `{module_name}.{name}` (" in page, f"{module_name}.{name} is missing"


def test_the_check_fails_on_a_stale_page(tmp_path, monkeypatch) -> None:
    script = _script()
    stale = tmp_path / "api.md"
    stale.write_text(script.reference().replace("Iterative", "Iterativ", 1), encoding="utf-8")
    monkeypatch.setattr(script, "PAGE", stale)
    assert script.main(["--check"]) == 1
