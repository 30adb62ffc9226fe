"""Load a unit-tier test module by path, to reuse its corpus loaders over real DNS."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

UNIT = Path(__file__).resolve().parents[1] / "unit"


def load_unit_module(name: str, prefix: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{prefix}{name}", UNIT / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
