"""``python -m audioset_fewshot`` is the same as the ``audioset-fewshot`` command."""

from audioset_fewshot.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    main()
