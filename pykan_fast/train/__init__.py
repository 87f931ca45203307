"""Training: ``fit`` (pykan's loop and regulariser), pykan's L-BFGS, datasets."""
