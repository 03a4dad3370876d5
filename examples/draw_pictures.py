"""
Draw the pictures of a lecture
==============================

The pictures of a lecture on convolution as linear algebra (needs matplotlib)::

    python examples/draw_pictures.py [OUTPUT_FOLDER]

==========================  ==============================================================
``matrix_circulant.png``    the doubly block circulant matrix of a 2-D circular convolution
``matrix_reflect.png``      reflect padding: border entries sum several kernel entries
``rf_unit.png``             the pixels one output unit of a strided layer reads
``rf_growth.png``           receptive-field size and jump along ResNet-18
``rf_unit_resnet18.png``    the box one unit of ResNet-18's layer2 reads, clipped to the image
==========================  ==============================================================

Without ``OUTPUT_FOLDER`` the figures are drawn and nothing is written.
"""

import sys
from pathlib import Path

import convalgebra as ca
from convalgebra import plot

# sphinx_gallery_start_ignore
folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
# sphinx_gallery_end_ignore

# %%
# The figures
# -----------
net = ca.zoo.get("resnet18")
figures = {
    "matrix_circulant.png": plot.plot_matrix(
        ca.ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular")
    ),
    "matrix_reflect.png": plot.plot_matrix(
        ca.ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="reflect")
    ),
    "rf_unit.png": plot.plot_receptive_field(
        ca.ConvSpec((1, 7, 7), 1, 3, stride=2, padding=1), (0, 1)
    ),
    "rf_growth.png": plot.plot_rf_growth(net, title="resnet18"),
    "rf_unit_resnet18.png": plot.plot_unit_field(net, "layer2.1.relu", (2, 20), title="resnet18"),
}
# sphinx_gallery_start_ignore
if folder is not None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        (folder / name).write_bytes(plot.to_png(figure))
        print(f"wrote {folder / name}")
# sphinx_gallery_end_ignore
