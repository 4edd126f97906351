"""Comparing finished runs: read their metrics, group them by seed, print tables and draw curves
(scripts/compare.py)."""
