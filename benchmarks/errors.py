"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class BenchError(Exception):
    """Bad input or environment (missing data, wrong checksum, bad option): not a bug."""
