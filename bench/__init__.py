"""Benchmarks (not tests): ``python -m bench`` runs them all (``--quick`` for a smoke run);
``python -m bench.tasksets``, ``bench.queue`` and ``bench.pg`` run one part in more
detail. Results go to bench/results/ (git-ignored)."""
