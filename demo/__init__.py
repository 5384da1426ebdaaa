"""The demo on the bundled corpus: train, export, serve, translate (`python -m demo`)."""
