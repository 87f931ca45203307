"""Benchmark shapes.  PYKAN_BENCH_SMOKE=1 (as CI sets) swaps them for one tiny shape so
the same code runs quickly with --benchmark-disable."""

import os

SMOKE = os.environ.get("PYKAN_BENCH_SMOKE") == "1"

# (batch, in, out, G)
SHAPES = [(64, 8, 8, 5)] if SMOKE else [(1024, 64, 64, 5), (4096, 256, 256, 5),
                                        (4096, 256, 256, 50)]


def shape_id(shape):
    return "B{}-in{}-out{}-G{}".format(*shape)
