"""The one error type the dataset layer raises for bad or missing data."""

from benchmarks.errors import BenchError


class DatasetError(BenchError):
    """A dataset is missing, corrupt, or asked for in a way it cannot be served.

    Messages are one line and name the file (or folder) and what is wrong with it.
    """
