"""Benchmarks: ``python -m lit_gans.bench.loader`` (data loading)."""
