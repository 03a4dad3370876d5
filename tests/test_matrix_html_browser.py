"""The HTML page of a layer's matrix in a real browser (headless Chromium, selenium).

Hovering a cell prints its (output, input, weight) triples, 1-based; they are held against
PyTorch's dense matrices of one-hot kernels: the entry at (row, column) of the matrix of the
kernel ``e_w`` is non-zero exactly when ``w`` is one of the cell's weights. Skipped, naming
the missing package, without chromium, chromium-driver or selenium.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from browser import chromium, console_problems, png_size
from oracle import torch_jacobian
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By

from convalgebra import ConvSpec
from convalgebra.report import conv_matrix_html

SPECS = {
    "groups-stride": ConvSpec((2, 5, 6), 4, (3, 2), stride=(2, 1), padding=1, groups=2),
    "reflect": ConvSpec((1, 5, 5), 2, 3, padding=1, padding_mode="reflect"),
    "circular-dilated-flip": ConvSpec(
        (3, 7), 2, 3, padding=2, dilation=2, padding_mode="circular", flip=True
    ),
    "transposed": ConvSpec((2, 3, 3), 2, 2, stride=2, padding=1, transposed=True),
}
CELLS = 12  # random cells hovered per layer, half of them non-zero


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("matrix")) as chrome:
        yield chrome


def _one_hot_matrices(spec: ConvSpec) -> np.ndarray:
    """``(n_weights, n_out, n_in)``: PyTorch's matrix of each one-hot kernel."""
    n = math.prod(spec.weight_shape)
    return np.stack(
        [torch_jacobian(spec, np.eye(n)[w].reshape(spec.weight_shape)) for w in range(n)]
    )


def _multi(index: int, shape) -> str:
    return "(" + ",".join(str(i + 1) for i in np.unravel_index(index, shape)) + ")"


def _hover_cell(driver, row: int, col: int) -> str:
    """Move the real pointer onto the cell's centre (scrolled into view) and read the panel."""
    x, y = driver.execute_script(
        "const c = document.getElementById('matrix'); const k = Number(c.dataset.cell);"
        "const [x, y] = [(arguments[1] + 0.5) * k, (arguments[0] + 0.5) * k];"
        "let r = c.getBoundingClientRect();"
        "window.scrollBy(r.left + x - innerWidth / 2, r.top + y - innerHeight / 2);"
        "r = c.getBoundingClientRect(); return [r.left + x, r.top + y];",
        row,
        col,
    )
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x), int(y))
    actions.perform()
    return driver.find_element(By.ID, "cell").text


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hovering_a_cell_prints_its_triples(driver, tmp_path, name):
    spec = SPECS[name]
    path = tmp_path / "layer.html"
    conv_matrix_html(spec, path)
    driver.get(path.as_uri())
    assert console_problems(driver) == []
    brute = _one_hot_matrices(spec)
    n_out, n_in = brute.shape[1:]
    rng = np.random.default_rng(len(name))
    nonzero = np.argwhere(brute.any(axis=0))
    picks = [
        tuple(map(int, nonzero[i])) for i in rng.choice(len(nonzero), CELLS // 2, replace=False)
    ]
    picks += [(int(rng.integers(n_out)), int(rng.integers(n_in))) for _ in range(CELLS // 2)]
    shared = np.argwhere(np.count_nonzero(brute, axis=0) > 1)  # two taps on one input
    picks += [tuple(map(int, cell)) for cell in shared[:2]]
    kernel = rng.integers(-4, 5, spec.weight_shape).astype(np.float64)
    dense = torch_jacobian(spec, kernel)
    for row, col in picks:
        text = _hover_cell(driver, row, col)
        weights = np.flatnonzero(brute[:, row, col])
        head = (
            f"M[{row + 1}, {col + 1}]: row {row + 1} = output z_{_multi(row, spec.output_shape)}"
            f", column {col + 1} = input a_{_multi(col, spec.input_shape)}"
        )
        lines = text.splitlines()
        assert lines[0] == head
        printed = [tuple(map(int, t)) for t in re.findall(r"triple \((\d+), (\d+), (\d+)\)", text)]
        assert printed == [(row + 1, col + 1, w + 1) for w in weights], (row, col, text)
        names = [f"w_{_multi(w, spec.weight_shape)}" for w in weights]
        assert lines[1] == ("= " + " + ".join(names) if names else "= 0 (no triple)")
        # the entry is the sum of the weights it names (PyTorch, a random integer kernel)
        assert dense[row, col] == kernel.ravel()[[t[2] - 1 for t in printed]].sum()
    if name == "reflect":
        assert len(shared) > 0  # the page was asked about entries two weights share


def test_the_page_draws_the_nonzero_cells(driver, tmp_path):
    spec = SPECS["groups-stride"]
    path = tmp_path / "layer.html"
    conv_matrix_html(spec, path)
    driver.get(path.as_uri())
    shaded = driver.execute_script(
        "const c = document.getElementById('matrix'); const k = Number(c.dataset.cell);"
        "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const out = [];"
        "for (let r = 0; r < c.height / k; r++) for (let q = 0; q < c.width / k; q++) {"
        "  const i = 4 * ((r * k + (k >> 1)) * c.width + q * k + (k >> 1));"
        "  if (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250) out.push([r, q]); }"
        "return out;"
    )
    brute = _one_hot_matrices(spec).any(axis=0)
    assert sorted(map(tuple, shaded)) == sorted(map(tuple, np.argwhere(brute).tolist()))


def test_a_screenshot_of_the_matrix(driver, tmp_path):
    path = tmp_path / "layer.html"
    conv_matrix_html(SPECS["reflect"], path)
    driver.get(path.as_uri())
    _hover_cell(driver, 0, 1)
    shot = tmp_path / "matrix.png"
    assert driver.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert png_size(data)[0] >= 800
    assert len(data) > 10_000
