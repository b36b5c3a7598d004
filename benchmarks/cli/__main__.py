"""``python -m benchmarks.cli``: the same as ``vlae-bench``."""

from benchmarks.cli import main

main()
