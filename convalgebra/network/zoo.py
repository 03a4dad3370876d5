"""Real architectures as layer graphs, built from their published definitions.

The ImageNet models follow torchvision's definitions (node names follow torchvision's
module names, so parameter keys read like its ``state_dict``); their parameter counts equal
torchvision's published numbers. torchvision's ResNets put the stride of a downsampling
block in its first unit, in the 3x3 convolution ("ResNet v1.5"); TF-Slim puts it in the last
unit. The zoo follows torchvision. In every model ``"features"`` names the last spatial
feature map (before global pooling or the classifier): a node, a module path (MobileNetV2's
``features``) or an alias (the ResNets' ``layer4.<last>.relu``).

Node names are the ones :func:`~convalgebra.interop.torch.from_torch` gives the torchvision
model (ResNets, MobileNetV2): a module path names the output of the module's last call, its
earlier calls are ``path#1``, ``path#2``... (the ResNet block's one ReLU module runs after
each convolution but the last: ``layer1.0.relu#1``, then ``layer1.0.relu``, the block's
output).

Examples
--------
>>> from convalgebra import zoo, param_count
>>> param_count(zoo.resnet18())
11689512
>>> zoo.resnet18().receptive_field("features")[0].size
435
>>> zoo.names()[:3]
['alexnet', 'inception_v3', 'lenet5']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConvAlgebraError, shown
from .graph import LayerGraph
from .layers import (
    Activation,
    AdaptivePool,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Crop,
    Dropout,
    Flatten,
    Linear,
    MaxPool,
)

__all__ = [
    "names",
    "get",
    "lenet5",
    "alexnet",
    "vgg16",
    "resnet18",
    "resnet50",
    "resnet152",
    "mobilenet_v2",
    "inception_v3",
    "unet",
]

Shape = Sequence[int]
IMAGENET = (3, 224, 224)


class _Net:
    """A LayerGraph with a cursor (the last node) and shorthands for common blocks."""

    def __init__(self, name: str, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        if len(shape) != 3:  # every zoo model is a 2-D image network
            raise ConvAlgebraError(
                f"{name} takes an image input (C, H, W): input_shape must have 3 entries "
                f"(2 spatial axes), got {shape} ({len(shape) - 1} spatial axes)"
            )
        self.g = LayerGraph(name)
        self.last = self.g.add_input("input", shape)

    def add(self, name: str, layer, inputs=None) -> str:
        self.last = self.g.add(name, layer, self.last if inputs is None else inputs)
        return self.last

    def conv_bn(
        self,
        name: str,
        out: int,
        k,
        *,
        act: str | None = "relu",
        bn: str = "bn",
        src: str | None = None,
        eps_kw: dict | None = None,
        **conv,
    ) -> str:
        """``name.conv`` -> ``name.bn`` -> activation (torchvision's BasicConv2d/ConvBNAct)."""
        self.add(
            f"{name}.conv" if bn == "bn" else f"{name}.0", Conv(out, k, bias=False, **conv), src
        )
        self.add(f"{name}.bn" if bn == "bn" else f"{name}.1", BatchNorm(**(eps_kw or {})))
        if act:
            self.add(f"{name}.{act}" if bn == "bn" else f"{name}.2", Activation(act))
        return self.last

    def head(self, fc_in_name: str = "fc", classes: int = 1000) -> LayerGraph:
        self.add("avgpool", AdaptivePool(1))
        self.add("flatten", Flatten())
        self.add(fc_in_name, Linear(classes))
        return self.g


# ---------------------------------------------------------------------------- LeNet
def lenet5(input_shape: Shape = (1, 28, 28)) -> LayerGraph:
    """LeNet as in d2l.ai (sigmoid, average pooling, padding 2 on the first conv): 61,706 params.

    Examples
    --------
    >>> g = lenet5()
    >>> [g.shape(n) for n in ("conv1", "pool1", "conv2", "features", "fc1")]
    [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120,)]
    """
    net = _Net("lenet5", input_shape)
    net.add("conv1", Conv(6, 5, padding=2))
    net.add("sigmoid1", Activation("sigmoid"))
    net.add("pool1", AvgPool(2, 2))
    net.add("conv2", Conv(16, 5))
    net.add("sigmoid2", Activation("sigmoid"))
    net.add("features", AvgPool(2, 2))
    net.add("flatten", Flatten())
    for i, width in enumerate((120, 84), start=1):
        net.add(f"fc{i}", Linear(width))
        net.add(f"sigmoid{i + 2}", Activation("sigmoid"))
    net.add("fc3", Linear(10))
    return net.g


# --------------------------------------------------------------------- AlexNet, VGG
def _classifier(net: _Net, widths: Sequence[int], dropout_first: bool) -> None:
    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        if dropout_first and not last:
            net.add(f"classifier.dropout{i}", Dropout())
        net.add(f"classifier.fc{i}", Linear(width))
        if not last:
            net.add(f"classifier.relu{i}", Activation("relu"))
            if not dropout_first:
                net.add(f"classifier.dropout{i}", Dropout())


def alexnet(input_shape: Shape = IMAGENET) -> LayerGraph:
    """AlexNet as torchvision defines it (one GPU stream, 64-192-384-256-256): 61,100,840."""
    net = _Net("alexnet", input_shape)
    plan = [
        (64, 11, 4, 2, True),
        (192, 5, 1, 2, True),
        (384, 3, 1, 1, False),
        (256, 3, 1, 1, False),
        (256, 3, 1, 1, True),
    ]
    for i, (out, k, s, p, pool) in enumerate(plan, start=1):
        net.add(f"conv{i}", Conv(out, k, stride=s, padding=p))
        net.add(f"relu{i}", Activation("relu"))
        if pool:
            net.add("features" if i == 5 else f"pool{i}", MaxPool(3, 2))
    net.add("avgpool", AdaptivePool((6, 6)))
    net.add("flatten", Flatten())
    _classifier(net, (4096, 4096, 1000), dropout_first=True)
    return net.g


def vgg16(input_shape: Shape = IMAGENET) -> LayerGraph:
    """VGG-16 (configuration D, no batch norm) as torchvision defines it: 138,357,544."""
    net = _Net("vgg16", input_shape)
    for stage, (width, reps) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for r in range(1, reps + 1):
            net.add(f"conv{stage}_{r}", Conv(width, 3, padding=1))
            net.add(f"relu{stage}_{r}", Activation("relu"))
        net.add("features" if stage == 5 else f"pool{stage}", MaxPool(2, 2))
    net.add("avgpool", AdaptivePool((7, 7)))
    net.add("flatten", Flatten())
    _classifier(net, (4096, 4096, 1000), dropout_first=False)
    return net.g


# -------------------------------------------------------------------------- ResNets
def _resnet_block(net: _Net, name: str, width: int, stride: int, bottleneck: bool) -> None:
    src = net.last
    in_ch = net.g.shape(src)[0]
    expansion = 4 if bottleneck else 1
    plan = (
        [(width, 1, 1, 0), (width, 3, stride, 1), (width * 4, 1, 1, 0)]
        if bottleneck
        else [(width, 3, stride, 1), (width, 3, 1, 1)]
    )
    for i, (out, k, s, p) in enumerate(plan, start=1):
        net.add(f"{name}.conv{i}", Conv(out, k, stride=s, padding=p, bias=False))
        net.add(f"{name}.bn{i}", BatchNorm())
        if i < len(plan):  # the block's one ReLU module, called once per unit
            net.add(f"{name}.relu#{i}", Activation("relu"))
    main = net.last
    if stride != 1 or in_ch != width * expansion:
        net.add(f"{name}.downsample.0", Conv(width * expansion, 1, stride=stride, bias=False), src)
        src = net.add(f"{name}.downsample.1", BatchNorm())
    net.add(f"{name}.add", Add(), [main, src])
    net.add(f"{name}.relu", Activation("relu"))


def _resnet(name: str, blocks: Sequence[int], bottleneck: bool, input_shape: Shape) -> LayerGraph:
    net = _Net(name, input_shape)
    net.add("conv1", Conv(64, 7, stride=2, padding=3, bias=False))
    net.add("bn1", BatchNorm())
    net.add("relu", Activation("relu"))
    net.add("maxpool", MaxPool(3, 2, padding=1))
    for stage, count in enumerate(blocks, start=1):
        width = 64 * 2 ** (stage - 1)
        for b in range(count):
            stride = 2 if stage > 1 and b == 0 else 1
            _resnet_block(net, f"layer{stage}.{b}", width, stride, bottleneck)
    net.g.alias("features", net.last)
    return net.head()


def resnet18(input_shape: Shape = IMAGENET) -> LayerGraph:
    """ResNet-18 (torchvision): 11,689,512 parameters, 1.814 GMACs at 224x224."""
    return _resnet("resnet18", (2, 2, 2, 2), False, input_shape)


def resnet50(input_shape: Shape = IMAGENET) -> LayerGraph:
    """ResNet-50 (torchvision, stride in the 3x3 conv): 25,557,032 parameters, 4.089 GMACs."""
    return _resnet("resnet50", (3, 4, 6, 3), True, input_shape)


def resnet152(input_shape: Shape = IMAGENET) -> LayerGraph:
    """ResNet-152 (torchvision): 60,192,808 parameters, 11.514 GMACs at 224x224."""
    return _resnet("resnet152", (3, 8, 36, 3), True, input_shape)


# ---------------------------------------------------------------------- MobileNetV2
def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v2(input_shape: Shape = IMAGENET) -> LayerGraph:
    """MobileNetV2 (torchvision, width 1.0): 3,504,872 parameters, 0.301 GMACs."""
    net = _Net("mobilenet_v2", input_shape)
    net.conv_bn("features.0", 32, 3, act="relu6", bn="idx", stride=2, padding=1)
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    index = 1
    for t, c, n, s in settings:
        for i in range(n):
            _inverted_residual(net, f"features.{index}", _make_divisible(c), s if i == 0 else 1, t)
            index += 1
    net.conv_bn(f"features.{index}", 1280, 1, act="relu6", bn="idx")
    net.add("adaptive_avg_pool2d", AdaptivePool(1))
    net.add("flatten", Flatten())
    net.add("classifier.0", Dropout(0.2))
    net.add("classifier.1", Linear(1000))
    return net.g


def _inverted_residual(net: _Net, name: str, out: int, stride: int, expand: int) -> None:
    src = net.last
    cin = net.g.shape(src)[0]
    hidden = int(round(cin * expand))
    i = 0
    if expand != 1:
        net.conv_bn(f"{name}.conv.{i}", hidden, 1, act="relu6", bn="idx")
        i += 1
    net.conv_bn(
        f"{name}.conv.{i}",
        hidden,
        3,
        act="relu6",
        bn="idx",
        stride=stride,
        padding=1,
        groups=hidden,
    )
    net.add(f"{name}.conv.{i + 1}", Conv(out, 1, bias=False))
    net.add(f"{name}.conv.{i + 2}", BatchNorm())
    if stride == 1 and cin == out:
        net.add(f"{name}.add", Add(), [net.last, src])


# ---------------------------------------------------------------------- Inception v3
def _basic(net: _Net, name: str, out: int, k, src: str, **conv) -> str:
    return net.conv_bn(name, out, k, src=src, eps_kw={"eps": 0.001}, **conv)


def _branches(net: _Net, name: str, src: str, plans: list) -> str:
    """Each plan: list of (suffix, out, kernel, kwargs) or a pool layer, run from ``src``."""
    ends = []
    for plan in plans:
        last = src
        for step in plan:
            if len(step) == 4:
                suffix, out, k, kw = step
                last = _basic(net, f"{name}.{suffix}", out, k, last, **kw)
            else:
                last = net.add(f"{name}.{step[0]}", step[1], last)
        ends.append(last)
    return net.add(f"{name}.cat", Concat(), ends)


def _pool3(name: str):
    return (name, AvgPool(3, 1, padding=1, count_include_pad=True))


P = {"padding": 1}
H7, V7 = {"padding": (0, 3)}, {"padding": (3, 0)}
H3, V3 = {"padding": (0, 1)}, {"padding": (1, 0)}


def _inception_a(net: _Net, name: str, pool_features: int) -> str:
    return _branches(
        net,
        name,
        net.last,
        [
            [("branch1x1", 64, 1, {})],
            [("branch5x5_1", 48, 1, {}), ("branch5x5_2", 64, 5, {"padding": 2})],
            [
                ("branch3x3dbl_1", 64, 1, {}),
                ("branch3x3dbl_2", 96, 3, P),
                ("branch3x3dbl_3", 96, 3, P),
            ],
            [_pool3("branch_pool.avg"), ("branch_pool", pool_features, 1, {})],
        ],
    )


def _inception_c(net: _Net, name: str, c7: int) -> str:
    return _branches(
        net,
        name,
        net.last,
        [
            [("branch1x1", 192, 1, {})],
            [
                ("branch7x7_1", c7, 1, {}),
                ("branch7x7_2", c7, (1, 7), H7),
                ("branch7x7_3", 192, (7, 1), V7),
            ],
            [
                ("branch7x7dbl_1", c7, 1, {}),
                ("branch7x7dbl_2", c7, (7, 1), V7),
                ("branch7x7dbl_3", c7, (1, 7), H7),
                ("branch7x7dbl_4", c7, (7, 1), V7),
                ("branch7x7dbl_5", 192, (1, 7), H7),
            ],
            [_pool3("branch_pool.avg"), ("branch_pool", 192, 1, {})],
        ],
    )


def _inception_e(net: _Net, name: str) -> str:
    src = net.last
    b1 = _basic(net, f"{name}.branch1x1", 320, 1, src)
    t = _basic(net, f"{name}.branch3x3_1", 384, 1, src)
    a = _basic(net, f"{name}.branch3x3_2a", 384, (1, 3), t, **H3)
    b = _basic(net, f"{name}.branch3x3_2b", 384, (3, 1), t, **V3)
    b3 = net.add(f"{name}.branch3x3.cat", Concat(), [a, b])
    t = _basic(net, f"{name}.branch3x3dbl_1", 448, 1, src)
    t = _basic(net, f"{name}.branch3x3dbl_2", 384, 3, t, **P)
    a = _basic(net, f"{name}.branch3x3dbl_3a", 384, (1, 3), t, **H3)
    b = _basic(net, f"{name}.branch3x3dbl_3b", 384, (3, 1), t, **V3)
    bd = net.add(f"{name}.branch3x3dbl.cat", Concat(), [a, b])
    p = net.add(f"{name}.branch_pool.avg", _pool3("")[1], src)
    bp = _basic(net, f"{name}.branch_pool", 192, 1, p)
    return net.add(f"{name}.cat", Concat(), [b1, b3, bd, bp])


def inception_v3(input_shape: Shape = (3, 299, 299), aux_logits: bool = True) -> LayerGraph:
    """Inception v3 with its auxiliary classifier, as torchvision counts it: 27,161,264.

    The auxiliary head (``AuxLogits.*``, reading ``Mixed_6e``) is an extra output of the
    graph; it needs inputs of about 299x299, so ``aux_logits=False`` drops it for small inputs
    (as torchvision's argument of the same name). torchvision's 5.713 GFLOPS are measured
    without it (5.719 GMACs with it).
    """
    net = _Net("inception_v3", input_shape)
    stem: list[str | tuple[str, int, int, dict[str, int]]] = [
        ("Conv2d_1a_3x3", 32, 3, {"stride": 2}),
        ("Conv2d_2a_3x3", 32, 3, {}),
        ("Conv2d_2b_3x3", 64, 3, P),
        "maxpool1",
        ("Conv2d_3b_1x1", 80, 1, {}),
        ("Conv2d_4a_3x3", 192, 3, {}),
        "maxpool2",
    ]
    for step in stem:
        if isinstance(step, str):
            net.add(step, MaxPool(3, 2))
        else:
            _basic(net, step[0], step[1], step[2], net.last, **step[3])
    for name, pf in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        _inception_a(net, name, pf)
    _branches(
        net,
        "Mixed_6a",
        net.last,
        [
            [("branch3x3", 384, 3, {"stride": 2})],
            [
                ("branch3x3dbl_1", 64, 1, {}),
                ("branch3x3dbl_2", 96, 3, P),
                ("branch3x3dbl_3", 96, 3, {"stride": 2}),
            ],
            [("branch_pool", MaxPool(3, 2))],
        ],
    )
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        _inception_c(net, name, c7)
    mixed_6e = net.last
    if aux_logits:
        net.add("AuxLogits.avg", AvgPool(5, 3), mixed_6e)
        _basic(net, "AuxLogits.conv0", 128, 1, net.last)
        _basic(net, "AuxLogits.conv1", 768, 5, net.last)
        net.add("AuxLogits.avgpool", AdaptivePool(1))
        net.add("AuxLogits.flatten", Flatten())
        net.add("AuxLogits.fc", Linear(1000))
        net.last = mixed_6e
    _branches(
        net,
        "Mixed_7a",
        net.last,
        [
            [("branch3x3_1", 192, 1, {}), ("branch3x3_2", 320, 3, {"stride": 2})],
            [
                ("branch7x7x3_1", 192, 1, {}),
                ("branch7x7x3_2", 192, (1, 7), H7),
                ("branch7x7x3_3", 192, (7, 1), V7),
                ("branch7x7x3_4", 192, 3, {"stride": 2}),
            ],
            [("branch_pool", MaxPool(3, 2))],
        ],
    )
    _inception_e(net, "Mixed_7b")
    _inception_e(net, "Mixed_7c")
    net.add("features", Dropout(0.0))
    net.add("avgpool", AdaptivePool(1))
    net.add("dropout", Dropout(0.5))
    net.add("flatten", Flatten())
    net.add("fc", Linear(1000))
    return net.g


# ----------------------------------------------------------------------------- U-Net
def unet(input_shape: Shape = (1, 572, 572), classes: int = 2, width: int = 64) -> LayerGraph:
    """U-Net as in Ronneberger et al. (2015): valid 3x3 convs, 2x2 up-convs, cropped skips.

    572x572 in, 388x388x2 out; 31,030,658 parameters (with biases, one input channel).
    ``width`` is the number of channels of the first level (doubled at each level).

    Examples
    --------
    >>> g = unet()
    >>> g.shape("head"), g.receptive_field("head", exact=True)[0].size
    ((2, 388, 388), 204)
    """
    net = _Net("unet", input_shape)
    skips = []
    for level, width in enumerate([width * 2**i for i in range(5)]):
        if level:
            net.add(f"down{level}.pool", MaxPool(2, 2))
        for i in (1, 2):
            net.add(f"down{level}.conv{i}", Conv(width, 3))
            net.add(f"down{level}.relu{i}", Activation("relu"))
        skips.append(net.last)
    for level in (3, 2, 1, 0):
        width = net.g.shape(skips[level])[0]
        up = net.add(f"up{level}.upconv", Conv(width, 2, stride=2, transposed=True))
        crop = net.add(f"up{level}.crop", Crop(net.g.shape(up)[1:]), skips[level])
        net.add(f"up{level}.cat", Concat(), [crop, up])
        for i in (1, 2):
            net.add(f"up{level}.conv{i}", Conv(width, 3))
            net.add(
                "features" if level == 0 and i == 2 else f"up{level}.relu{i}", Activation("relu")
            )
    net.add("head", Conv(classes, 1))
    return net.g


# ---------------------------------------------------------------------------- lookup
_MODELS: dict[str, Callable[..., LayerGraph]] = {
    f.__name__: f
    for f in (
        lenet5,
        alexnet,
        vgg16,
        resnet18,
        resnet50,
        resnet152,
        mobilenet_v2,
        inception_v3,
        unet,
    )
}


def names() -> list[str]:
    """The models of the zoo, sorted."""
    return sorted(_MODELS)


def get(name: str, input_shape: Shape | None = None) -> LayerGraph:
    """The model ``name`` as a LayerGraph, at ``input_shape`` (default: its published size).

    Examples
    --------
    >>> get("lenet5").shape("fc3")
    (10,)
    """
    if name not in _MODELS:
        raise ConvAlgebraError(f"unknown model {shown(name)}; the zoo has: {', '.join(names())}")
    return _MODELS[name]() if input_shape is None else _MODELS[name](tuple(input_shape))
