"""The data-quality gate: per-image statistics and a great-expectations suite over them."""
