"""audioset-fewshot: AudioSet as a clean, reproducible few-shot dataset.

Data flows one way, one module or subpackage per stage::

    metadata -> selection -> plan -> download -> manifest -> process
             -> splits -> episodes -> torchdata -> pipeline / cli

Heavy dependencies (torch, yt_dlp) are imported only inside the stages that
need them, so ``import audioset_fewshot`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
