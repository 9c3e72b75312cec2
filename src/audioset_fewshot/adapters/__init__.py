"""Adapters for code written against learn2learn and torchmeta (imported lazily)."""
