"""Benchmarks run by ``metastream bench`` (and the scripts in ``bench/``)."""
