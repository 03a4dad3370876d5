"""Network Lipschitz bounds against the dense Jacobian of the torch model (brute force).

At every point the spectral norm of the Jacobian is at most the Lipschitz constant, so
``lower <= ||J(x0)||_2 <= upper`` must hold for random networks; for a single linear layer
whose constant the library computes exactly, ``upper == ||J||_2`` (tolerance 1e-9 relative).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convalgebra import ConvAlgebraError
from convalgebra.lipschitz import lipschitz_bound
from convalgebra.network.graph import LayerGraph
from convalgebra.network.layers import Activation, Conv, LayerNorm

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn = torch.nn

TOL = 1e-9
FEW = settings(max_examples=min(settings.default.max_examples, 15))


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class Cat(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def jacobian_norm(net, shape, x0=None, seed=0) -> float:
    model = net.double().eval()
    if x0 is None:
        x0 = torch.randn(
            (1, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
    jac = torch.autograd.functional.jacobian(model, x0, vectorize=True)
    n_in = int(np.prod(shape))
    return float(np.linalg.norm(jac.reshape(-1, n_in).numpy(), 2))


@st.composite
def convs(draw, c_in, same=False):
    groups = draw(st.sampled_from([1, c_in])) if c_in > 1 else 1
    c_out = c_in if same else groups * draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    if same:
        k = draw(st.sampled_from([1, 3]))
        return nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, padding_mode=mode)
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    if draw(st.integers(0, 3)) == 0:
        return nn.ConvTranspose2d(
            c_in, c_out, k, stride=s, padding=draw(st.integers(0, 1)), dilation=d, groups=groups
        )
    return nn.Conv2d(
        c_in,
        c_out,
        k,
        stride=s,
        padding=draw(st.integers(0, 1)),
        dilation=d,
        groups=groups,
        padding_mode=mode,
    )


def activation(draw):
    return draw(
        st.sampled_from(
            [
                nn.ReLU(),
                nn.Tanh(),
                nn.Sigmoid(),
                nn.GELU(),
                nn.SiLU(),
                nn.Hardswish(),
                nn.Mish(),
                nn.LeakyReLU(draw(st.floats(0.0, 2.0))),
                nn.ELU(draw(st.floats(0.1, 2.0))),
            ]
        )
    )


def batch_norm(draw, c):
    bn = nn.BatchNorm2d(c)
    rng = np.random.default_rng(draw(st.integers(0, 999)))
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor(rng.uniform(0.1, 2.0, c)))
        bn.running_mean.copy_(torch.tensor(rng.standard_normal(c)))
        bn.weight.copy_(torch.tensor(rng.standard_normal(c)))
    return bn


@st.composite
def networks(draw):
    """Random small CNNs: (transposed) convs, batch norm, activations, pooling, residual and
    concat blocks, padding layers, a linear head."""
    torch.manual_seed(draw(st.integers(0, 2**16)))
    c, size = draw(st.integers(1, 2)), draw(st.integers(6, 8))
    layers, shape = [], (c, size, size)
    for _ in range(draw(st.integers(1, 4))):
        block = draw(st.sampled_from(["conv", "bn", "act", "pool", "res", "cat", "pad"]))
        if block == "conv":
            layer = draw(convs(shape[0]))
        elif block == "bn":
            layer = batch_norm(draw, shape[0])
        elif block == "act":
            layer = activation(draw)
        elif block == "pool":
            ceil = draw(st.booleans())
            layer = draw(
                st.sampled_from(
                    [
                        nn.MaxPool2d(2, 1, ceil_mode=ceil),
                        nn.MaxPool2d(3, 2, 1, ceil_mode=ceil),
                        nn.AvgPool2d(2, ceil_mode=ceil),
                        nn.AvgPool2d(
                            3, 2, 1, ceil_mode=ceil, count_include_pad=draw(st.booleans())
                        ),
                    ]
                )
            )
        elif block == "res":
            layer = Residual(nn.Sequential(draw(convs(shape[0], same=True)), activation(draw)))
        elif block == "cat":
            layer = Cat(draw(convs(shape[0], same=True)), draw(convs(shape[0], same=True)))
        else:
            layer = draw(
                st.sampled_from(
                    [
                        nn.ReflectionPad2d(1),
                        nn.ReplicationPad2d((1, 0, 2, 1)),
                        nn.ZeroPad2d(1),
                        nn.CircularPad2d(1),
                    ]
                )
            )
        probe = nn.Sequential(*layers, layer)
        try:
            out = probe(torch.zeros((1, c, size, size)))
        except RuntimeError:
            continue
        if min(out.shape[2:]) < 1:
            continue
        layers.append(layer)
        shape = tuple(out.shape[1:])
    if draw(st.booleans()):
        layers += [nn.Flatten(), nn.Linear(int(np.prod(shape)), 3)]
    return nn.Sequential(*layers).double().eval(), (c, size, size)


@FEW
@given(networks(), st.integers(0, 99))
def test_network_bounds_bracket_the_jacobian_norm(net_shape, seed):
    net, shape = net_shape
    bound = lipschitz_bound(net, shape, seed=seed, iterations=10)
    at_x0 = jacobian_norm(net, shape, seed=seed)
    elsewhere = jacobian_norm(net, shape, seed=seed + 1000)
    assert bound.lower is not None
    assert bound.lower <= at_x0 * (1 + TOL) + 1e-12
    assert at_x0 <= bound.upper * (1 + TOL)
    assert elsewhere <= bound.upper * (1 + TOL)
    assert bound.nodes[-1].bound == bound.upper


EXACT_LAYERS = {
    "avg_pool": lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg_pool_pad": lambda: nn.AvgPool2d(3, 2, 1),
    "adaptive_avg": lambda: nn.AdaptiveAvgPool2d((3, 2)),
    "reflect_pad": lambda: nn.ReflectionPad2d((2, 1, 0, 3)),
    "replicate_pad": lambda: nn.ReplicationPad2d(2),
    "upsample": lambda: nn.Upsample(scale_factor=2),
    "linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(98, 5)),
    "circular_conv": lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular")),
    "circular_conv_stride": lambda: nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=7, padding=1, padding_mode="circular")
    ),
    "batch_norm": lambda: nn.BatchNorm2d(2),
}


@pytest.mark.parametrize("make", EXACT_LAYERS.values(), ids=EXACT_LAYERS.keys())
def test_exact_layer_constants_equal_the_jacobian_norm(make):
    torch.manual_seed(3)
    net = nn.Sequential(make()).double().eval()
    if isinstance(net[0], nn.BatchNorm2d):
        with torch.no_grad():
            net[0].running_var.uniform_(0.2, 2.0)
            net[0].weight.normal_()
    bound = lipschitz_bound(net, (2, 7, 7))
    brute = jacobian_norm(net, (2, 7, 7))
    assert abs(bound.upper - brute) <= TOL * brute


def test_residual_block_is_one_plus_the_branch():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", bias=False)
    net = Residual(nn.Sequential(conv))
    bound = lipschitz_bound(net, (2, 5, 5))
    branch = jacobian_norm(conv, (2, 5, 5))
    assert abs(bound.upper - (1 + branch)) <= TOL * (1 + branch)
    assert bound.lower <= bound.upper


def test_graph_with_weight_table_and_concat():
    g = LayerGraph()
    g.add_input("x", (1, 6))
    g.add("a", Conv(1, 3, padding=1, padding_mode="circular", bias=False), "x")
    g.add("b", Activation("sigmoid"), "x")
    from convalgebra.network.layers import Concat

    g.add("cat", Concat(), ["a", "b"])
    bound = lipschitz_bound(g, weights={"a": {"weight": [[[1.0, 2.0, 1.0]]]}})
    assert bound.lower is None
    assert bound.node("a").layer == pytest.approx(4.0, rel=TOL)
    assert bound.upper == pytest.approx(np.hypot(4.0, 0.25), rel=TOL)
    assert "cat" in bound.table()


def test_unsupported_node_and_missing_weight_are_refused():
    g = LayerGraph.sequential((4, 3), [LayerNorm((3,))])
    with pytest.raises(ConvAlgebraError, match="no certified Lipschitz"):
        lipschitz_bound(g)
    g = LayerGraph.sequential((1, 6), [Conv(1, 3)])
    with pytest.raises(ConvAlgebraError, match="no weight"):
        lipschitz_bound(g)
    with pytest.raises(TypeError, match="graph_or_module"):
        lipschitz_bound(object())
    with pytest.raises(ConvAlgebraError, match="input_shape"):
        lipschitz_bound(nn.ReLU())


# ------------------------------------------------------------------ budgets and options
@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"iterations": 2**61}, ConvAlgebraError, r"iterations must be an integer in \[0, 10000\]"),
        ({"iterations": -1}, ConvAlgebraError, "iterations must be"),
        ({"iterations": 2.5}, TypeError, "iterations must be"),
        ({"tol": 2.0}, ConvAlgebraError, "tol must be"),
        ({"max_flops": 0}, ConvAlgebraError, "max_flops must be"),
        ({"max_flops": 10**6}, ConvAlgebraError, "lower bound.*max_flops.*iterations=0"),
        ({"max_bytes": 1000}, ConvAlgebraError, "lower bound.*max_bytes.*iterations=0"),
    ],
    ids=["2**61", "negative", "float", "tol", "zero-flops", "lower-flops", "lower-bytes"],
)
def test_bad_options_and_budgets_refused(options, error, match):
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
    with pytest.raises(error, match=match):
        lipschitz_bound(net, (2, 8, 8), **options)


def test_large_input_lower_bound_refused_in_milliseconds():
    import time

    net = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.ReLU(), nn.Conv2d(64, 64, 3))
    start = time.perf_counter()
    with pytest.raises(ConvAlgebraError, match="power steps.*iterations=0"):
        lipschitz_bound(net, (3, 2000, 2000))
    assert time.perf_counter() - start < 2.0


def test_circulant_over_budget_falls_back_to_the_taps_bound():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1)).double().eval()
    full = lipschitz_bound(net, (2, 6, 6), iterations=0)
    cheap = lipschitz_bound(net, (2, 6, 6), iterations=0, max_flops=1000)
    brute = jacobian_norm(net, (2, 6, 6))
    assert "circulant bound" in full.nodes[1].how and "over max_flops" in cheap.nodes[1].how
    assert brute <= full.upper * (1 + 1e-14) and full.upper <= cheap.upper * (1 + 1e-14)
    assert full.lower is None


def test_progress_callback_and_early_stop():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Conv2d(3, 2, 3))
    seen = []
    bound = lipschitz_bound(net, (2, 7, 7), tol=0.5, callback=lambda *a: seen.append(a))
    nodes = [s for s in seen if s[0] != "power iteration"]
    steps = [s for s in seen if s[0] == "power iteration"]
    assert [s[1] for s in nodes] == list(range(1, len(bound.nodes) + 1))
    assert 1 <= len(steps) < 50 and bound.lower <= bound.upper


@FEW
@given(networks(), st.integers(0, 99))
def test_float32_networks_bounds_still_hold(net_shape, seed):
    net, shape = net_shape
    net32 = net.float()
    bound = lipschitz_bound(net32, shape, seed=seed, iterations=0)
    # the float32 weights, exactly, in float64: the network the bound is about
    at_x0 = jacobian_norm(net32.double(), shape, seed=seed)
    assert at_x0 <= bound.upper * (1 + 1e-12)


def test_non_finite_conv_weight_is_refused():
    net = nn.Sequential(nn.Conv2d(1, 1, 3))
    with torch.no_grad():
        net[0].weight[0, 0, 1, 1] = float("nan")
    with pytest.raises(ConvAlgebraError, match="weight must be finite"):
        lipschitz_bound(net, (1, 6, 6), iterations=0)
