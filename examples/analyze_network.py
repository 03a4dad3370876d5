"""
Analyse networks statically
===========================

Shapes, receptive fields, parameters and MACs per layer::

    python examples/analyze_network.py [--plot rf_growth.png]

First the CIFAR-10 pipeline of the cs231n notes, built in Python; then ResNet-18 from the zoo
(parameter count equal to torchvision's), and the exact input box one of its units reads.
"""

import argparse

import convalgebra as ca
from convalgebra.network.layers import Activation, Conv, Flatten, Linear, MaxPool

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="Analyse networks statically.")
parser.add_argument("--plot", help="draw ResNet-18's receptive-field growth to this PNG")
args = parser.parse_args()
# sphinx_gallery_end_ignore

# %%
# A small pipeline, layer by layer
# --------------------------------
# INPUT 32x32x3 -> CONV 12 "same" -> RELU -> POOL -> FC 10 (seed example 5)
cifar = ca.LayerGraph.sequential(
    (3, 32, 32),
    [
        ("conv", Conv(12, 3, padding="same")),
        ("relu", Activation("relu")),
        ("pool", MaxPool(2)),
        ("flatten", Flatten()),
        ("fc", Linear(10)),
    ],
    name="cifar",
)
print(cifar.table())
print()

# %%
# ResNet-18 from the zoo
# ----------------------
net = ca.zoo.get("resnet18")
print(f"resnet18: {ca.param_count(net):,} parameters, {ca.macs(net):,} MACs (FLOPs = 2 x MACs)")
for node in ("conv1", "maxpool", "layer2.0.add", "features"):
    fields = ca.receptive_field(net, node)
    print(
        f"  {node:<14} output {net.shape(node)}, receptive field "
        + " x ".join(f"{f.size} (jump {f.jump})" for f in fields)
    )
unit = net.unit_receptive_field("features", (0, 0))
print(
    f"  unit (0, 0) of 'features' reads input rows/cols {unit.box} "
    f"(clipped to the 224x224 image; unclipped it would be 435 wide)"
)

# %%
# How the receptive field grows
# -----------------------------
# Size and jump of the field along the main path (needs matplotlib).
try:
    from convalgebra.plot import plot_rf_growth, to_png

    growth = plot_rf_growth(net, title="resnet18")
except ca.MissingExtraError as missing:
    growth = None
    print(missing)
# sphinx_gallery_start_ignore
if args.plot and growth is not None:
    with open(args.plot, "wb") as stream:
        stream.write(to_png(growth))
    print(f"wrote {args.plot}")
# sphinx_gallery_end_ignore
