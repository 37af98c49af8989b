"""deapnas: evolutionary neural architecture search with DEAP."""

__version__ = "0.2.0"
