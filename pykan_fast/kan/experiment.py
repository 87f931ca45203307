"""pykan 0.2.8's ``kan.experiment`` on pykan_fast: ``runner1`` (train, prune, refine
rounds with rewinds, on :class:`pykan_fast.kan.MultKAN` checkpoints) and
``pareto_frontier`` (:mod:`pykan_fast.experiments.pareto`)."""

from __future__ import annotations

import numpy as np

from ..experiments.pareto import pareto_frontier

__all__ = ["runner1", "pareto_frontier"]


def runner1(width, dataset, grids=[5, 10, 20], steps=20, lamb=0.001, prune_round=3,  # noqa: B006
            refine_round=3, edge_th=1e-2, node_th=1e-2, metrics=None, seed=1):
    """pykan's ``runner1``: ``prune_round`` rounds of fit (``lamb``) and prune, each
    followed by ``refine_round`` refinements to ``grids[j]`` and fits; round i > 0
    rewinds to the pruned model of round i - 1 (checkpoint ``'{i-1}.{2i}'``, so the
    model saves checkpoints under ./model). Returns arrays of the test loss, edge
    count 'c', grid 'G', checkpoint 'id' and each metric, one entry per evaluation."""
    from .MultKAN import MultKAN

    result = {"test_loss": [], "c": [], "G": [], "id": []}
    metrics = list(metrics) if metrics is not None else []
    for metric in metrics:
        result[metric.__name__] = []

    def collect(model):
        evaluation = model.evaluate(dataset)
        result["test_loss"].append(evaluation["test_loss"])
        result["c"].append(evaluation["n_edge"])
        result["G"].append(evaluation["n_grid"])
        result["id"].append(f"{model.round}.{model.state_id}")
        for metric in metrics:
            result[metric.__name__].append(float(metric(model, dataset)))

    model = None
    for i in range(prune_round):
        if i == 0:
            model = MultKAN(width=width, grid=grids[0], seed=seed, auto_save=True)
        else:
            model = model.rewind(f"{i - 1}.{2 * i}")
        model.fit(dataset, steps=steps, lamb=lamb)
        model = model.prune(edge_th=edge_th, node_th=node_th)
        collect(model)
        for j in range(refine_round):
            model = model.refine(grids[j])
            model.fit(dataset, steps=steps)
            collect(model)
    return {key: np.array(value) for key, value in result.items()}
