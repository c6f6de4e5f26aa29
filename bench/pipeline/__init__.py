"""The recording pipeline's benchmark (issue 10, items 4 to 7): ``python -m bench.pipeline``."""
