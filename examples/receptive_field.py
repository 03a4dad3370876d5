"""
The receptive field of VGG-16
=============================

Field size, jump and start per layer, the input box one unit reads, and its exact effective
field, for VGG-16 from the zoo::

    python examples/receptive_field.py [--plot OUTPUT_FOLDER]

The theoretical field of a unit is the box of input pixels it can depend on; the effective
field weighs each pixel by how much the unit depends on it (uniform weights), and holds most
of its weight in a much smaller disc near the centre.
"""

import argparse
from pathlib import Path

import convalgebra as ca

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="The receptive field of VGG-16.")
parser.add_argument("--plot", help="write the three figures as PNG files to this folder")
args = parser.parse_args()
# sphinx_gallery_end_ignore

# %%
# Size, jump and start along the network
# --------------------------------------
# ``size`` input pixels per axis, ``jump`` pixels between neighbouring units, ``start`` the
# centre of the first unit's field.
net = ca.zoo.get("vgg16")
for node in ("conv1_1", "pool1", "pool2", "pool3", "pool4", "features"):
    rows = ca.receptive_field(net, node)[0]
    print(
        f"{node:<12} {net.shape(node)!s:<16} size {rows.size:>3}  jump {rows.jump:>2}  "
        f"start {float(rows.start)}"
    )

# %%
# The box one unit reads
# ----------------------
# Unit (0, 0) of the last feature map: its 212-pixel field overhangs the 224-pixel image.
unit = ca.unit_receptive_field(net, "features", (0, 0))
print(f"unit (0, 0) of 'features' reads rows/cols {unit.box} of the image")
centre = ca.unit_receptive_field(net, "features", (3, 3))
print(f"unit (3, 3) of 'features' reads rows/cols {centre.box}")

# %%
# The effective field of the central unit
# ---------------------------------------
field = ca.effective_receptive_field(net, "features", (3, 3))
print(
    f"theoretical box {field.box}; {field.mass:.0%} of the weight within radius "
    f"{field.radius:.1f} px of the centre"
)

# %%
# The pictures (need matplotlib)
# ------------------------------
try:
    from convalgebra import plot

    figures = {
        "vgg16_rf_growth.png": plot.plot_rf_growth(net, title="vgg16"),
        "vgg16_unit.png": plot.plot_unit_field(net, "features", (0, 0), title="vgg16"),
        "vgg16_effective.png": plot.plot_effective_field(field, title="vgg16 features (3, 3)"),
    }
except ca.MissingExtraError as missing:
    figures = {}
    print(missing)
# sphinx_gallery_start_ignore
if args.plot and figures:
    folder = Path(args.plot)
    folder.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        (folder / name).write_bytes(plot.to_png(figure))
        print(f"wrote {folder / name}")
# sphinx_gallery_end_ignore
