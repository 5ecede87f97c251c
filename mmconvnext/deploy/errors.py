"""The error of a model, file or runtime that cannot be deployed as asked."""


class DeployError(ValueError):
    """What cannot be exported or run, naming the module, config key or package at fault."""
