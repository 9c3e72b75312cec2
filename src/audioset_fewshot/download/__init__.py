"""Download stage: fetch one clip (yt-dlp + ffmpeg), the SQLite ledger, the runner.

Import the submodules directly (``from audioset_fewshot.download.fetch import fetch_clip``):
this package imports nothing heavy on its own.
"""
