"""Optional dependencies, imported when first needed with an error that says how to get them.

Reading MIDI, audio or video needs packages most users of the core library never install, so
the readers import them lazily through :func:`optional_import` instead of at module load.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def optional_import(module: str, purpose: str, extra: str, package: str | None = None
                    ) -> ModuleType:
    """``import module``, or an ``ImportError`` naming ``purpose`` and the avf extra to install.

    ``package`` is the name on PyPI when it differs from the module's (PyAV installs ``av``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module
        raise ImportError(f"{purpose} needs the optional dependency {name}: "
                          f"pip install 'avf[{extra}]' (or pip install {module})") from err
