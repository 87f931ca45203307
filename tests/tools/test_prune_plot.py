"""Attribution, pruning and plotting against pykan 0.2.8's ``MultKAN`` (float64): the same
``attribute`` scores, the same nodes/edges kept by ``prune``, ``prune_node``,
``prune_edge`` and ``prune_input`` with the same weights and outputs; ``KANLayer.get_subset``;
``plot`` writes a PNG whose edge alphas follow the scores."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import pykan_fast as pf
from pykan_fast.tools.prune import activation_scales, attribution_scores

from support import inputs as _inputs, max_rel as _max_rel

LAYER_PARAMS = ("grid", "coef", "scale_base", "scale_sp", "mask")
AFFINES = ("node_bias", "node_scale", "subnode_bias", "subnode_scale")
SCORES = ("node_scores", "edge_scores", "subnode_scores",
          "node_scores_all", "edge_scores_all", "subnode_scores_all")

# (width, mult_arity) with one output where mult_arity is per node: pykan's per-node
# attribution only works for a single output row (its expand() fails otherwise).
CASES = [
    ([3, 5, 4, 2], 2),
    ([3, [3, 2], [1, 1], 2], 2),
    ([3, [3, 2], [1, 1], 1], 3),
    ([3, [3, 2], [1, 1], 1], [[], [2, 3], [2], []]),
]
IDS = ["add-only", "mixed-ar2", "mixed-ar3", "mixed-per-node"]


def _weaken(model, edges_from):
    """Scale down every edge leaving the given (layer, node) pairs: those nodes (and,
    through them, their inputs) become clearly unimportant."""
    with torch.no_grad():
        for l, i in edges_from:
            model.act_fun[l].scale_base[i] *= 1e-4
            model.act_fun[l].scale_sp[i] *= 1e-4


def _assert_same_model(ours, theirs, x, rtol=1e-12):
    assert ours.width == theirs.width and ours.mult_arity == theirs.mult_arity
    for l, (a, b) in enumerate(zip(ours.act_fun, theirs.act_fun)):
        for name in LAYER_PARAMS:
            assert getattr(a, name).shape == getattr(b, name).shape, (l, name)
            assert _max_rel(getattr(a, name), getattr(b, name)) <= rtol, (l, name)
    for name in AFFINES:
        for l, (a, b) in enumerate(zip(getattr(ours, name), getattr(theirs, name))):
            assert a.shape == b.shape and torch.equal(a, b), (l, name)
    with torch.no_grad():
        assert _max_rel(ours(x), theirs(x)) <= 1e-10


def _pair(multkan, width, mult_arity, seed=1, weaken=(), **kwargs):
    theirs = multkan(width, grid=5, k=3, seed=seed, mult_arity=mult_arity, noise_scale=1.0,
                     **kwargs)
    _weaken(theirs, weaken)
    return theirs, pf.KAN.from_pykan(theirs)


# ---- attribute ---------------------------------------------------------------------


@pytest.mark.parametrize("width,mult_arity", CASES, ids=IDS)
def test_attribute_matches_multkan(multkan, float64_default, width, mult_arity):
    theirs, ours = _pair(multkan, width, mult_arity)
    x = _inputs(200, width[0], seed=2)
    theirs(x)
    ours(x)
    assert theirs.attribute() is None and ours.attribute() is None
    for name in SCORES:
        mine, want = getattr(ours, name), getattr(theirs, name)
        assert len(mine) == len(want), name
        for l, (a, b) in enumerate(zip(mine, want)):
            assert a.shape == b.shape and _max_rel(a, b) <= 1e-12, (name, l)
    assert _max_rel(ours.feature_score, theirs.feature_score) <= 1e-12
    if isinstance(mult_arity, int):  # node attribution of a hidden layer
        assert _max_rel(ours.attribute(1), theirs.attribute(1)) <= 1e-12
        assert _max_rel(ours.attribute(2, 0), theirs.attribute(2, 0)) <= 1e-12
        assert len(ours.node_scores) == len(theirs.node_scores) == 3


def test_attribute_uses_cache_data_not_a_stored_forward(float64_default):
    """Scores are computed at cache_data when asked, not taken from whatever the last
    forward recorded."""
    model = pf.KAN([3, 4, 1], grid=4, seed=3)
    x = _inputs(100, 3, seed=4)
    model(x)
    model.attribute()
    first = [s.clone() for s in model.edge_scores]
    model(_inputs(5, 3, seed=5))
    model.cache_data = x  # as if x had been the last input
    model.attribute()
    assert all(torch.equal(a, b) for a, b in zip(model.edge_scores, first))


def test_attribute_includes_symbolic_edges(multkan, float64_default):
    """A symbolic-only edge and an edge with both branches: their std is that of the
    sum of both branches, as pykan's ``edge_actscale``."""
    theirs, ours = _pair(multkan, [2, 3, 1], 2, symbolic_enabled=True)
    x = _inputs(150, 2, seed=6)
    for model in (theirs, ours):
        model(x)
        model.fix_symbolic(0, 0, 1, "sin", fit_params_bool=False, verbose=False, log_history=False)
        model.fix_symbolic(0, 1, 2, "x^2", fit_params_bool=False, verbose=False, log_history=False)
        model.set_mode(0, 1, 2, "sn")
        model(x)
        model.attribute()
    for name in SCORES:
        for l, (a, b) in enumerate(zip(getattr(ours, name), getattr(theirs, name))):
            assert _max_rel(a, b) <= 1e-12, (name, l)


def test_attribute_errors():
    model = pf.KAN([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="x"):
        model.attribute()  # no data seen
    model(_inputs(20, 2, seed=0).float())
    with pytest.raises(ValueError, match="l"):
        model.attribute(3)
    with pytest.raises(ValueError, match="out_score"):
        attribution_scores(model, out_score=torch.ones(2))


@pytest.mark.parametrize("reg_metric", ["edge_backward", "node_backward"])
@pytest.mark.parametrize("width,mult_arity", CASES[:2] + [([2, 3, 1], 2)], ids=IDS[:2] + ["symbolic"])
def test_attribution_regularisers_match_multkan_reg(multkan, float64_default, reg_metric, width, mult_arity):
    """reg_metric 'edge_backward' / 'node_backward': pykan's reg after attribute() /
    node_attribute() on the same forward, value and gradients (edge_actscale carries the
    gradient, subnode_actscale is detached)."""
    theirs, ours = _pair(multkan, width, mult_arity, symbolic_enabled=width == [2, 3, 1])
    x = _inputs(120, width[0], seed=21)
    if width == [2, 3, 1]:  # a symbolic-only edge and an edge with both branches
        for model in (theirs, ours):
            model(x)
            model.fix_symbolic(0, 0, 1, "sin", fit_params_bool=False, verbose=False, log_history=False)
            model.fix_symbolic(0, 1, 2, "x^2", fit_params_bool=False, verbose=False, log_history=False)
            model.set_mode(0, 1, 2, "sn")
    lambs = dict(lamb_l1=0.7, lamb_entropy=1.9, lamb_coef=0.3, lamb_coefdiff=0.2)
    theirs(x)
    theirs.attribute() if reg_metric == "edge_backward" else theirs.node_attribute()
    want = theirs.reg(reg_metric, **lambs)
    got = ours.reg(reg_metric, x=x, **lambs)
    assert abs(got.item() - want.item()) <= 1e-12 * abs(want.item())
    names = ("coef", "scale_base", "scale_sp")
    grads = [torch.autograd.grad(r, [getattr(l, n) for l in m.act_fun for n in names])
             for r, m in ((got, ours), (want, theirs))]
    for a, b in zip(*grads):
        assert _max_rel(a, b) <= 1e-10
    # not the forward metric's number: the attribution scores are what is penalised
    assert abs(ours.reg("edge_forward_spline_n", x=x, **lambs).item() - got.item()) > 1e-6


@pytest.mark.parametrize("reg_metric", ["edge_backward", "node_backward"])
def test_fit_with_attribution_regulariser_matches_multkan(multkan, float64_default, reg_metric):
    from pykan_fast.kan import create_dataset

    dataset = create_dataset(lambda x: torch.sin(x[:, [0]]) + x[:, [1]] ** 2, n_var=3,
                             train_num=60, test_num=30, seed=1)
    kwargs = dict(opt="LBFGS", steps=2, lamb=0.01, reg_metric=reg_metric, update_grid=False)
    theirs = multkan([3, 4, 1], grid=4, k=3, seed=2)
    ours = pf.KAN([3, 4, 1], grid=4, k=3, seed=2)
    np.random.seed(3)
    hist_theirs = theirs.fit(dataset, **kwargs)
    np.random.seed(3)
    hist_ours = ours.fit(dataset, progress=False, **kwargs)
    for a, b in zip(ours.act_fun, theirs.act_fun):
        for name in ("coef", "scale_base", "scale_sp"):
            assert _max_rel(getattr(a, name), getattr(b, name)) <= 1e-8, name
    assert np.allclose(hist_ours["reg"], np.array(hist_theirs["reg"], dtype=float), rtol=1e-8)


def test_attribution_regulariser_by_hand(float64_default):
    """Behaviour: on a one-layer [2, 1] model both metrics penalise the scores
    std(edge_i) / (std(edge_0 + edge_1) + 1e-4) by pykan's l1 + entropy formula, with the
    gradient through the edges' stds and none through the subnode's (detached, as pykan)."""
    from pykan_fast.nn.edges import edge_activations
    from pykan_fast.train.fit import regularization

    model = pf.KAN([2, 1], grid=4, seed=0, noise_scale=0.5)
    x = _inputs(100, 2, seed=22)
    layer = model.act_fun[0]
    acts = edge_activations(layer, x, slice(None))[:, :, 0]  # [B, 2]
    vec = (torch.std(acts, dim=0) / (torch.std(acts.sum(dim=1)).detach() + 1e-4))[None, :]
    p_row = vec / (vec.sum(dim=1, keepdim=True) + 1)
    p_col = vec / (vec.sum(dim=0, keepdim=True) + 1)
    entropy = (-torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
               - torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0)))
    want = 0.5 * vec.sum() + 1.5 * entropy
    want_grad, = torch.autograd.grad(want, layer.coef)
    for metric in ("edge_backward", "node_backward"):
        got = model.reg(metric, lamb_l1=0.5, lamb_entropy=1.5, x=x)
        assert abs(got.item() - want.item()) <= 1e-12 * want.item(), metric
        got_grad, = torch.autograd.grad(got, layer.coef)
        assert want_grad.abs().max() > 1e-3 and _max_rel(got_grad, want_grad) <= 1e-10, metric
    with pytest.raises(ValueError, match="reg_metric"):
        regularization(model, [x], "node_sideways")


# ---- get_subset --------------------------------------------------------------------


def test_layer_get_subset_matches_pykan(float64_default):
    from kan.KANLayer import KANLayer as PykanLayer

    torch.manual_seed(0)
    theirs = PykanLayer(in_dim=4, out_dim=5, num=6, k=3, noise_scale=1.0)
    ours = pf.KANLayer.from_pykan(theirs)
    torch.manual_seed(1)
    sub_theirs = theirs.get_subset([0, 3], [1, 2, 4])
    after_theirs = torch.rand(3)
    torch.manual_seed(1)
    sub_ours = ours.get_subset([0, 3], [1, 2, 4])
    after_ours = torch.rand(3)
    assert torch.equal(after_ours, after_theirs)  # the same draws, as pykan's
    assert (sub_ours.in_dim, sub_ours.out_dim) == (2, 3)
    for name in LAYER_PARAMS:
        assert torch.equal(getattr(sub_ours, name), getattr(sub_theirs, name)), name
    x = _inputs(30, 2, seed=7)
    assert _max_rel(sub_ours(x), sub_theirs(x)[0]) <= 1e-12
    with pytest.raises(ValueError, match="out_id"):
        ours.get_subset([0], [5])
    with pytest.raises(ValueError, match="in_id"):
        ours.get_subset([], [0])


# ---- prune -------------------------------------------------------------------------

# Weakened (layer, node) pairs: input 2 and hidden nodes 1 and 4 of layer 1 (in the
# mixed widths node 4 is the second multiplication node).
WEAK = [(0, 2), (1, 1), (1, 4)]


@pytest.mark.parametrize("width,mult_arity", [
    ([3, 5, 1], 2),
    ([3, [3, 2], [1, 1], 1], 2),
    ([3, [3, 2], [1, 1], 1], [[], [2, 3], [2], []]),
], ids=["add-only", "mixed-ar2", "mixed-per-node"])
def test_prune_matches_multkan(multkan, float64_default, width, mult_arity):
    os.makedirs("model", exist_ok=True)  # pykan's prune writes its history there
    theirs, ours = _pair(multkan, width, mult_arity, weaken=WEAK)
    x = _inputs(200, 3, seed=8)
    theirs(x)
    ours(x)
    masks_before = [layer.mask.clone() for layer in ours.act_fun]
    pruned_theirs = theirs.prune()
    rng_theirs = (np.random.rand(), torch.rand(2))
    pruned_ours = ours.prune()
    rng_ours = (np.random.rand(), torch.rand(2))
    # the global generators end as after pykan's (its new model is built with seed 1)
    assert rng_ours[0] == rng_theirs[0] and torch.equal(rng_ours[1], rng_theirs[1])
    assert pruned_ours.width[1] == ([3, 0] if width[1] == 5 else [2, 1])
    _assert_same_model(pruned_ours, pruned_theirs, x)
    assert any(bool((layer.mask == 0).any()) for layer in pruned_ours.act_fun)  # edges pruned
    # the original is left as it was (pykan zeroes the removed nodes' masks in it)
    assert all(torch.equal(layer.mask, m) for layer, m in zip(ours.act_fun, masks_before))


def test_prune_node_and_edge_match_multkan(multkan, float64_default):
    x = _inputs(200, 3, seed=9)

    def fresh_pair():  # pykan's prune_node zeroes masks in the model it prunes
        theirs, ours = _pair(multkan, [3, [3, 2], [1, 1], 1], 3, weaken=WEAK)
        theirs(x)
        ours(x)
        return theirs, ours

    theirs, ours = fresh_pair()
    for threshold in (1e-2, 5e-2):
        _assert_same_model(ours.prune_node(threshold), theirs.prune_node(threshold, log_history=False), x)
        theirs, _ = fresh_pair()
    manual = [[0, 2, 3], [1]]  # layer 2 keeps its multiplication node only
    _assert_same_model(ours.prune_node(active_neurons_id=manual),
                       theirs.prune_node(active_neurons_id=manual, log_history=False), x)
    theirs, ours = fresh_pair()
    theirs.attribute()
    assert ours.prune_edge(0.1) is None  # in place, as pykan
    theirs.prune_edge(0.1, log_history=False)
    for a, b in zip(ours.act_fun, theirs.act_fun):
        assert torch.equal(a.mask, b.mask.to(a.mask.dtype))
    assert any(bool((layer.mask == 0).any()) for layer in ours.act_fun)


@pytest.mark.parametrize("active_inputs", [None, [0, 2]], ids=["auto", "manual"])
def test_prune_input_matches_multkan(multkan, float64_default, active_inputs):
    theirs, ours = _pair(multkan, [3, [2, 1], 1], 2, weaken=[(0, 1)])
    x = _inputs(120, 3, seed=10)
    theirs(x)
    ours(x)
    pruned_theirs = theirs.prune_input(active_inputs=active_inputs, log_history=False)
    pruned_ours = ours.prune_input(active_inputs=active_inputs)
    assert pruned_ours.input_id.tolist() == pruned_theirs.input_id.tolist() == [0, 2]
    _assert_same_model(pruned_ours, pruned_theirs, x)  # called on the full-width data
    assert torch.equal(pruned_ours.cache_data, x[:, [0, 2]])
    pruned_ours.attribute()  # on cache_data, whose columns are already selected
    assert pruned_ours.node_scores[0].shape == (2,)
    with torch.no_grad():
        before = pruned_ours(x)
    finer = pruned_ours.refine(6)  # fitted on cache_data, without selecting columns again
    with torch.no_grad():
        assert _max_rel(finer(x), before) <= 5e-2
    twice = pruned_ours.prune_input(active_inputs=[1])  # indices of the current inputs
    assert twice.input_id.tolist() == [2]
    with torch.no_grad():
        assert twice(x).shape == (120, 1)


def test_pruned_model_trains_refines_saves(tmp_path, float64_default):
    """A pruned model with per-node arities is an ordinary KAN: refine, save/load, fit."""
    model = pf.KAN([3, [3, 2], [1, 1], 1], grid=4, seed=2, mult_arity=[[], [2, 3], [2], []],
                   noise_scale=1.0)
    _weaken(model, WEAK)
    x = _inputs(100, 3, seed=11)
    model(x)
    pruned = model.prune()
    assert pruned.mult_arity == [[], [2], [2], []] and pruned.width[1] == [2, 1]
    with torch.no_grad():
        before = pruned(x)
    finer = pruned.refine(8)
    with torch.no_grad():
        assert _max_rel(finer(x), before) <= 5e-2
    pruned.save(tmp_path / "p.pt")
    loaded = pf.KAN.load(tmp_path / "p.pt")
    with torch.no_grad():
        assert torch.equal(loaded(x), before)
    data = {"train_input": x, "train_label": x[:, :1] * x[:, 1:2],
            "test_input": x, "test_label": x[:, :1] * x[:, 1:2]}
    history = pruned.fit(data, steps=2, progress=False)
    assert math.isfinite(history["train_loss"][-1])


def test_prune_errors(float64_default):
    model = pf.KAN([2, 3, 1], seed=0)
    model(_inputs(30, 2, seed=12))
    with pytest.raises(ValueError, match="threshold"):
        model.prune_node(1e9)
    with pytest.raises(ValueError, match="threshold"):
        model.prune_input(1e9)
    with pytest.raises(ValueError, match="mode"):
        model.prune_node(mode="both")
    with pytest.raises(ValueError, match="active_neurons_id"):
        model.prune_node(active_neurons_id=[[0], [1]])
    with pytest.raises(ValueError, match="active_neurons_id"):
        model.prune_node(active_neurons_id=[[3]])
    with pytest.raises(ValueError, match="active_inputs"):
        model.prune_input(active_inputs=[2])


# ---- plot --------------------------------------------------------------------------


def _edge_alphas(fig) -> dict:
    """{gid: set of alphas} over every artist carrying an ``edge_l_i_j`` gid."""
    found = {}
    for artist in fig.findobj(lambda a: (a.get_gid() or "").startswith("edge_")):
        found.setdefault(artist.get_gid(), set()).add(artist.get_alpha())
    return found


def test_plot_writes_png_with_score_alphas(tmp_path, float64_default):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    model = pf.KAN([2, [2, 1], 1], grid=4, seed=1, noise_scale=1.0)
    x = _inputs(80, 2, seed=13)
    model(x)
    with torch.no_grad():
        model.act_fun[0].mask[1, 0] = 0.0  # a masked-out edge is invisible
    model.fix_symbolic(0, 0, 2, "sin", fit_params_bool=False, verbose=False, log_history=False)
    model(x)
    path = tmp_path / "net.png"
    fig = model.plot(path=str(path), beta=3, in_vars=["x", "y"], out_vars=["f"], title="t")
    assert path.stat().st_size > 1000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    model.attribute()
    alphas = _edge_alphas(fig)
    assert len(alphas) == sum(model.width_in[l] * model.width_out[l + 1] for l in range(model.depth))
    for l in range(model.depth):
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                want = math.tanh(3 * model.edge_scores[l][j, i].item())
                if l == 0 and (i, j) == (1, 0):
                    want = 0.0
                got = alphas[f"edge_{l}_{i}_{j}"]
                assert len(got) == 1 and abs(got.pop() - want) <= 1e-12, (l, i, j)
    colors = {a.get_color() for a in fig.findobj(lambda a: a.get_gid() == "edge_0_0_2")}
    assert colors == {"red"}  # symbolic only
    texts = {t.get_text() for t in fig.findobj(matplotlib.text.Text)}
    assert {"x", "y", "f", "t", "×"} <= texts


def test_plot_labels_fixed_functions_and_explains_colours(float64_default):
    """label_functions names each visible fixed edge's function beside its panel (and no
    spline edge); legend keys the three edge colours."""
    pytest.importorskip("matplotlib")
    model = pf.KAN([2, 3, 1], grid=4, seed=1, noise_scale=1.0)
    x = _inputs(60, 2, seed=15)
    model(x)
    model.fix_symbolic(0, 0, 2, "sin", fit_params_bool=False, verbose=False, log_history=False)
    model.fix_symbolic(1, 1, 0, "x^2", fit_params_bool=False, verbose=False, log_history=False)
    model(x)
    plain = model.plot()
    assert not plain.findobj(lambda a: (a.get_gid() or "").startswith("fun_"))
    fig = model.plot(label_functions=True, legend=True)
    labels = {a.get_gid(): a.get_text()
              for a in fig.findobj(lambda a: (a.get_gid() or "").startswith("fun_"))}
    assert labels == {"fun_edge_0_0_2": "sin", "fun_edge_1_1_0": "x^2"}
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "spline", "symbolic (fixed function)", "spline and symbolic"]
    assert [h.get_color() for h in legend.legend_handles] == ["black", "red", "purple"]


def test_plot_metrics_and_folder(tmp_path, float64_default):
    pytest.importorskip("matplotlib")
    model = pf.KAN([2, 3, 1], grid=4, seed=2)
    model(_inputs(50, 2, seed=14))
    scales = activation_scales(model)
    for metric, scores in (("forward_u", scales["edge_actscale"]), ("forward_n", scales["acts_scale"])):
        fig = model.plot(folder=str(tmp_path / metric), metric=metric, beta=2, tick=True, sample=True)
        assert (tmp_path / metric / "kan.png").stat().st_size > 1000
        alphas = _edge_alphas(fig)
        assert abs(alphas["edge_1_2_0"].pop() - math.tanh(2 * scores[1][0, 2].item())) <= 1e-12
    with pytest.raises(ValueError, match="metric"):
        model.plot(metric="sideways")
    with pytest.raises(ValueError, match="in_vars"):
        model.plot(in_vars=["x"])
    with pytest.raises(ValueError, match="model"):
        pf.KAN([2, 3, 1]).plot()


def _edge_files(model):
    return sorted(f"sp_{l}_{i}_{j}.png" for l in range(model.depth)
                  for i in range(model.width_in[l]) for j in range(model.width_out[l + 1]))


@pytest.mark.parametrize("tick,sample", [(False, False), (True, True)])
def test_kan_plot_writes_pykans_edge_images(multkan, float64_default, tmp_path, tick, sample):
    """pykan_fast.kan's plot writes folder/sp_<l>_<i>_<j>.png for every edge (masked
    ones too) with the same pixels as pykan 0.2.8's plot of the same model."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pykan_fast.kan import MultKAN

    theirs = multkan([2, 3, 1], grid=4, k=3, seed=3, noise_scale=1.0, symbolic_enabled=True)
    ours = MultKAN.from_pykan(theirs)
    x = _inputs(60, 2, seed=23)
    for model in (theirs, ours):
        model(x)
        model.fix_symbolic(0, 1, 2, "sin", fit_params_bool=False, verbose=False, log_history=False)
        with torch.no_grad():
            model.act_fun[1].mask[0, 0] = 0.0  # a masked-out edge: a white image
        model(x)
        model.plot(folder=str(tmp_path / type(model).__module__), tick=tick, sample=sample)
        plt.close("all")
    mine, want = tmp_path / "pykan_fast.kan.MultKAN", tmp_path / "kan.MultKAN"
    assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in want.iterdir()) == _edge_files(ours)
    for name in _edge_files(ours):
        a, b = plt.imread(mine / name), plt.imread(want / name)
        assert a.shape == b.shape and np.abs(a - b).max() <= 2 / 255, name


def test_kan_plot_edge_images_follow_the_edges(tmp_path, monkeypatch, float64_default):
    """Behaviour: the default folder is ./figures; each file is a 2-inch 400-dpi panel; a
    masked-out edge's image is blank, a symbolic edge's is drawn in red; folder=None
    writes nothing; the native plot writes no per-edge files."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from pykan_fast.kan import MultKAN

    monkeypatch.chdir(tmp_path)
    model = MultKAN(width=[2, 2, 1], grid=3, seed=0)
    model(_inputs(40, 2, seed=24))
    model.fix_symbolic(0, 0, 1, "x^2", fit_params_bool=False, verbose=False, log_history=False)
    with torch.no_grad():
        model.act_fun[0].mask[1, 0] = 0.0
    model.plot()
    files = tmp_path / "figures"
    assert sorted(p.name for p in files.iterdir()) == _edge_files(model)
    blank = plt.imread(files / "sp_0_1_0.png")
    assert 600 <= blank.shape[0] <= 800 and np.all(blank[..., :3] == 1.0)
    red = plt.imread(files / "sp_0_0_1.png")[..., :3]
    assert np.any((red[..., 0] > 0.9) & (red[..., 1] < 0.1) & (red[..., 2] < 0.1))
    black = plt.imread(files / "sp_1_0_0.png")[..., :3]
    assert np.any(black.sum(axis=-1) < 0.1) and not np.any((black[..., 0] > 0.9) & (black[..., 1] < 0.1))
    model.plot(folder=None)
    pf.KAN.plot(model, folder=str(tmp_path / "native"))
    assert [p.name for p in (tmp_path / "native").iterdir()] == ["kan.png"]
    plt.close("all")

