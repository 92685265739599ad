"""Train PyTorch networks from declarative job specs and serve their predictions over HTTP."""
