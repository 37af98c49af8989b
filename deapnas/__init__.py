"""deapnas: evolutionary neural architecture search with DEAP."""

__version__ = "0.2.0"


def load_model(directory):
    """The trained network of a finished run (see :func:`deapnas.export.load_model`)."""
    from .export import load_model as load

    return load(directory)
