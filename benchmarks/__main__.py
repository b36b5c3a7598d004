"""``python -m benchmarks``: the ``vlae-bench`` command line (what ``torchrun -m`` launches)."""

from benchmarks.cli import main

main()
