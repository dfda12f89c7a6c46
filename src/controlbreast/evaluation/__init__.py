"""Measures of what the pipeline made: classification metrics with bootstrap intervals."""
