"""The paper's experiments and the command line: grid extension (the demo), continual
learning, the Poisson PINN, the kernel benchmark table, ``python -m pykan_fast``."""
