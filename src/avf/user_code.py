"""Classes that a config names by import path, so that ``avf train`` runs a user's own model.

``[model] name = "my_package.models:MyModel"`` imports a module from the Python path, and
``name = "my_model.py:MyModel"`` a file (a relative path is taken from the config file's folder,
else from the current directory, and the run directory's config stores it absolute, so that
``avf evaluate`` and ``avf plot`` find it from anywhere); the file's folder joins the import
path, so that it can import its neighbours. Naming code in a config runs it, as
``python my_model.py`` would: a config is code the user trusts.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any


def is_import_path(name: str) -> bool:
    """Whether a config's name is ``module:attribute`` or ``file.py:attribute``."""
    return ":" in name


def absolute_import_path(name: str, base_dir: Path) -> str:
    """``name`` with a relative ``.py`` file made absolute: from ``base_dir`` if the file is
    there, else from the current directory (where a missing file is reported later)."""
    module, sep, attribute = name.rpartition(":")
    if not sep or not module.endswith(".py") or Path(module).expanduser().is_absolute():
        return name
    beside = (base_dir / module).resolve()
    chosen = beside if beside.is_file() else Path(module).resolve()
    return f"{chosen}:{attribute}"


def load_object(name: str) -> Any:
    """The attribute ``name`` points to, ``module:attr`` or ``file.py:attr`` (dots allowed in
    ``attr`` for nested classes); errors name what was missing and where it was looked for."""
    module_name, sep, attribute = name.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"'{name}' is not an import path: use 'package.module:Class' or "
                         "'file.py:Class'")
    module = _load_file(Path(module_name)) if module_name.endswith(".py") else _import(module_name)
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"{module_name} has no '{attribute}'; it defines: "
                             f"{', '.join(_own_names(module)) or 'no public class or function'}")
        found = getattr(found, part)
    return found


def _own_names(module: Any) -> list[str]:
    """The public classes and functions defined in ``module`` itself (not imported there)."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and callable(value)
                  and getattr(value, "__module__", None) == module.__name__)


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and not module_name.startswith(err.name):
            raise  # the module was found; something it imports is missing
        raise ValueError(f"cannot import module '{module_name}' ({err}): install it, add its "
                         "folder to PYTHONPATH, or name the file instead "
                         "('path/to/file.py:Class')") from err


def _load_file(path: Path) -> Any:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    # one module per file, kept in sys.modules, so that loading it twice runs it once
    key = f"avf_user_code.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    if str(path.parent) not in sys.path:  # as for a script: its folder's modules import too
        sys.path.append(str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module
