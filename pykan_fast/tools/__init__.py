"""Tools over a trained model: attribution and pruning, plots, symbolic regression."""
