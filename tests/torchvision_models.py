"""torchvision's classification and segmentation models for the from_torch tests.

torchvision's compiled ops do not match the CPU torch build; its Python model code imports
once ``torchvision._meta_registrations`` is stubbed, which
:func:`convalgebra.interop.import_torchvision` does (the one place that knows it). Without
torchvision, :func:`load` skips the calling test with the extra to install.
``CI_MODELS`` is the representative subset run by default; the full list runs with
``CONVALGEBRA_TORCHVISION=all``.
"""

from __future__ import annotations

import pytest

from convalgebra.errors import MissingExtraError
from convalgebra.interop import import_torchvision

# name -> (input shape, checked by the gradient probe); the smallest inputs the models take
CLASSIFICATION = {
    "alexnet": (3, 64, 64),
    "vgg11": (3, 32, 32),
    "vgg11_bn": (3, 32, 32),
    "vgg13": (3, 32, 32),
    "vgg13_bn": (3, 32, 32),
    "vgg16": (3, 32, 32),
    "vgg16_bn": (3, 32, 32),
    "vgg19": (3, 32, 32),
    "vgg19_bn": (3, 32, 32),
    "resnet18": (3, 64, 64),
    "resnet34": (3, 64, 64),
    "resnet50": (3, 64, 64),
    "resnet101": (3, 64, 64),
    "resnet152": (3, 64, 64),
    "resnext50_32x4d": (3, 64, 64),
    "resnext101_32x8d": (3, 64, 64),
    "resnext101_64x4d": (3, 64, 64),
    "wide_resnet50_2": (3, 64, 64),
    "wide_resnet101_2": (3, 64, 64),
    "densenet121": (3, 64, 64),
    "densenet161": (3, 64, 64),
    "densenet169": (3, 64, 64),
    "densenet201": (3, 64, 64),
    "googlenet": (3, 64, 64),
    "inception_v3": (3, 80, 80),
    "squeezenet1_0": (3, 64, 64),
    "squeezenet1_1": (3, 64, 64),
    "shufflenet_v2_x0_5": (3, 64, 64),
    "shufflenet_v2_x1_0": (3, 64, 64),
    "shufflenet_v2_x1_5": (3, 64, 64),
    "shufflenet_v2_x2_0": (3, 64, 64),
    "mobilenet_v2": (3, 64, 64),
    "mobilenet_v3_large": (3, 64, 64),
    "mobilenet_v3_small": (3, 64, 64),
    "mnasnet0_5": (3, 64, 64),
    "mnasnet0_75": (3, 64, 64),
    "mnasnet1_0": (3, 64, 64),
    "mnasnet1_3": (3, 64, 64),
    **{f"efficientnet_b{i}": (3, 64, 64) for i in range(8)},
    "efficientnet_v2_s": (3, 64, 64),
    "efficientnet_v2_m": (3, 64, 64),
    "efficientnet_v2_l": (3, 64, 64),
    **{
        f"regnet_{k}_{s}": (3, 64, 64)
        for k in "xy"
        for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")
    },  # y_128gf: 644 M params
    "convnext_tiny": (3, 64, 64),
    "convnext_small": (3, 64, 64),
    "convnext_base": (3, 64, 64),
    "convnext_large": (3, 64, 64),
    "vit_b_16": (3, 224, 224),
    "vit_b_32": (3, 224, 224),
    "vit_l_16": (3, 224, 224),
    "vit_l_32": (3, 224, 224),
    "vit_h_14": (3, 224, 224),
    "swin_t": (3, 64, 64),
    "swin_s": (3, 64, 64),
    "swin_b": (3, 64, 64),
    "swin_v2_t": (3, 64, 64),
    "swin_v2_s": (3, 64, 64),
    "swin_v2_b": (3, 64, 64),
    "maxvit_t": (3, 224, 224),
}
SEGMENTATION = {
    "fcn_resnet50": (3, 64, 64),
    "fcn_resnet101": (3, 64, 64),
    "deeplabv3_resnet50": (3, 64, 64),
    "deeplabv3_resnet101": (3, 64, 64),
    "deeplabv3_mobilenet_v3_large": (3, 64, 64),
    "lraspp_mobilenet_v3_large": (3, 64, 64),
}
ALL = {**CLASSIFICATION, **SEGMENTATION}
CI_MODELS = [
    "resnet18",
    "shufflenet_v2_x0_5",
    "convnext_tiny",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_y_400mf",
    "googlenet",
    "squeezenet1_1",
    "lraspp_mobilenet_v3_large",
    "vit_b_32",
]


def small(name: str) -> tuple:
    """A smaller input for the gradient probe in CI (32 x 32 where the model takes it)."""
    shape = ALL[name]
    return shape if shape[1] != 64 or name.startswith(("alexnet", "swin")) else (3, 32, 32)


def load():
    """torchvision, or a skip naming the extra (``pip install '.[test]'`` installs it)."""
    try:
        return import_torchvision()
    except MissingExtraError as exc:
        pytest.skip(f"torchvision not installed ({exc})", allow_module_level=True)


def build(name: str):
    """The model, randomly initialised (no download), in eval mode."""
    tv = load()
    if name in SEGMENTATION:
        return getattr(tv.models.segmentation, name)(weights=None, weights_backbone=None).eval()
    kwargs = (
        {"aux_logits": False, "init_weights": False}
        if name in ("googlenet", "inception_v3")
        else {}
    )
    return getattr(tv.models, name)(weights=None, **kwargs).eval()
