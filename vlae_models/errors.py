"""The error type of the models layer."""


class ModelError(Exception):
    """Bad model input, config or checkpoint: the CLI prints it as one line."""
