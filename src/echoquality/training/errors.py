"""The training run's usage error, shared by its parts."""


class TrainError(Exception):
    """A usage problem: bad options, no usable clips, output folder in use."""
