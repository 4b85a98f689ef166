"""Benchmarks (not tests): ``python -m bench.tasksets``. Results go to bench/results/."""
