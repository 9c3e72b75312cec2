"""The offline demo: a YouTube-like media server on 127.0.0.1 and synthetic metadata."""
