"""Post-processing: clean, pack, log-mel features, normalisation."""
