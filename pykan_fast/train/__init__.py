"""Training: ``fit`` (pykan's loop and regulariser, and epochs over a DataLoader),
pykan's L-BFGS, datasets, early stopping and checkpoints."""

from .callbacks import Checkpoint, EarlyStopping, accuracy
from .guard import NonFiniteError

__all__ = ["Checkpoint", "EarlyStopping", "NonFiniteError", "accuracy"]
