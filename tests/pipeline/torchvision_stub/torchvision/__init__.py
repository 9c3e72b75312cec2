"""Import-time stand-in for torchvision (see ../README.md); every call raises."""

from __future__ import annotations

from typing import Any

__version__ = "0.0.0+stub"


class _Unavailable:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("torchvision is not installed; this is an import-time stand-in for easyfsl's imports")


def _unavailable(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("torchvision is not installed; this is an import-time stand-in for easyfsl's imports")
