"""The fused B-spline layer op: backend registry, argument checks, the pure-torch
reference (pykan's math), the autograd Functions / torch.library custom ops, and the
per-backend launchers (``cpu_backend`` over the compiled ``_C``, ``triton_backend`` over
``pykan_fast.triton``). Nothing here imports a model, sympy or matplotlib."""
