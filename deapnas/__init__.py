"""deapnas: evolutionary neural architecture search with DEAP."""
