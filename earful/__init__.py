"""earful: what customers say about a company, classified per post.

Public API (imported lazily so `import earful` stays cheap)::

    from earful import Predictor, Bundle, Schema
"""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("earful")  # pyproject.toml holds the one version number
__all__ = ["Bundle", "Predictor", "Prediction", "Schema", "__version__"]

_LAZY = {
    "Predictor": "earful.models.predictor",
    "Prediction": "earful.models.predictor",
    "Bundle": "earful.models.bundle",
    "Schema": "earful.schema",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'earful' has no attribute {name!r}")
