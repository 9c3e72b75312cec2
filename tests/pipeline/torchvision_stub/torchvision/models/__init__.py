"""torchvision.models stand-in (see ../../README.md)."""
