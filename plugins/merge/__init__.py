"""The ``merge`` plugin's crossover and mutation operators, mergekit's methods by their names, and the
LAPACK eigenpairs its SVD mutation uses."""
