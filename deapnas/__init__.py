"""deapnas: evolutionary neural architecture search with DEAP."""

__version__ = "0.2.0"


def load_model(directory, *, raw_inputs=False):
    """The trained network of a finished run, taking normalised images, or raw pixel values
    with ``raw_inputs`` (see :func:`deapnas.export.load_model`)."""
    from .export import load_model as load

    return load(directory, raw_inputs=raw_inputs)
