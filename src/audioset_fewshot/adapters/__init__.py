"""Adapters for code written against learn2learn and torchmeta (imported lazily).

Neither library is imported (learn2learn 0.2.0 does not build on Python 3.11,
torchmeta cannot be installed with torch 2.x); the adapters reproduce the parts
of their data APIs that training code touches:

- :mod:`audioset_fewshot.adapters.learn2learn`: ``audioset_tasksets(root, ...)``
  -> ``(train, validation, test)`` task sets whose ``.sample()`` returns
  ``(data, labels)`` like learn2learn's ``TaskDataset``;
- :mod:`audioset_fewshot.adapters.torchmeta`: a class dataset, a combination
  meta-dataset, ``ClassSplitter`` and ``BatchMetaDataLoader`` giving batches
  ``{"train": (inputs, targets), "test": (inputs, targets)}``.

Both draw tasks with :class:`~audioset_fewshot.episodes.EpisodeSampler`, so tasks
are seeded, order-independent and pass the multi-label episode guard.
"""
