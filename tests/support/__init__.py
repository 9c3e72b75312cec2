"""Helpers shared by the tests, one importable package (``tests`` is on pytest's path):

- :mod:`support.manifest_helpers` -- roots with a plan, a ledger and audio files for the manifest tools;
- :mod:`support.process_clips` -- small roots of synthetic clips for clean / pack / features;
- :mod:`support.fewshot_synth` -- synthetic feature roots for the few-shot loaders and baselines;
- :mod:`support.origin_builders` -- local copies of AudioSet in each origin layout.
"""
