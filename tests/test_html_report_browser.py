"""The interactive report in a real browser: headless Chromium driven by selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` and selenium from PyPI (the ``browser``
extra); skipped with the reason when one is missing. The boxes the page draws are held
against the library's own numbers (``unit_receptive_field``, ``receptive_field``), in
screen pixels, and the heatmap's cells against ``effective_receptive_field`` (resnet18 at
3x224x224).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, console_problems, png_size
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

import convalgebra as ca
from convalgebra.network import zoo
from convalgebra.network.htmlreport import canvas_scale

NODES = ("conv1", "maxpool", "layer1.0.conv2", "layer2.0.downsample.0", "layer4.1.add")
#: (node, unit) picked by clicking the input grid: centres, corners, a downsampling branch
CLICKS = (
    ("conv1", (5, 100)),
    ("maxpool", (0, 55)),
    ("layer1.0.add", (28, 28)),
    ("layer2.0.downsample.0", (27, 0)),
    ("layer3.1.conv2", (3, 11)),
    ("layer4.1.add", (0, 6)),
)


@pytest.fixture(scope="module")
def graph():
    return zoo.resnet18()


@pytest.fixture(scope="module")
def page(graph, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    path = folder / "resnet18.html"
    graph.to_html(path)
    with chromium(folder) as driver:
        driver.get(path.as_uri())
        yield driver


def _hover(driver, node: str) -> None:
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-node="{node}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    ActionChains(driver).move_to_element(row).perform()


def _pixels(driver, element_id: str) -> dict:
    return driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return {left: r.left, top: r.top, width: r.width, height: r.height};",
        element_id,
    )


def _origin(driver) -> tuple[float, float]:
    """Screen position of the input grid's (0, 0) corner (inside the border)."""
    return tuple(
        driver.execute_script(
            "const s = document.getElementById('grid'); const r = s.getBoundingClientRect();"
            "return [r.left + s.clientLeft, r.top + s.clientTop];"
        )
    )


def _expected(box, origin, scale) -> dict:
    (r0, r1), (c0, c1) = box
    return {
        "left": origin[0] + c0 * scale,
        "top": origin[1] + r0 * scale,
        "width": (c1 - c0 + 1) * scale,
        "height": (r1 - r0 + 1) * scale,
    }


def _close(got: dict, want: dict) -> bool:
    return all(abs(got[k] - want[k]) < 0.51 for k in want)


def test_page_loads_with_no_console_error(page):
    assert console_problems(page) == []
    assert page.find_element(By.ID, "summary").text.startswith("70 nodes, input 3x224x224")


def test_the_table_sorts_by_a_numeric_column(page, graph):
    header = page.find_element(By.XPATH, "//th[text()='params']")
    column = [th.text for th in page.find_elements(By.CSS_SELECTOR, "#layers th")].index("params")
    rows = {r["node"]: r["params"] for r in graph.table().rows if r["node"] != "total"}
    for direction, reverse in (("ascending", False), ("descending", True)):
        header.click()
        assert header.get_attribute("aria-sort") == direction
        cells = page.find_elements(By.CSS_SELECTOR, f"#layers tbody td:nth-child({column + 1})")
        shown = [int(c.text.replace(",", "")) for c in cells]
        assert shown == sorted(rows.values(), reverse=reverse)
    name = page.find_element(By.XPATH, "//th[text()='node']")
    name.click()
    nodes = [c.text for c in page.find_elements(By.CSS_SELECTOR, "#layers tbody td:first-child")]
    assert nodes == sorted(rows)


@pytest.mark.parametrize("node", NODES)
def test_hovering_a_row_draws_the_central_units_box(page, graph, node):
    scale = canvas_scale(graph.extent)
    _hover(page, node)
    unit = ca.unit_receptive_field(graph, node)
    got = _pixels(page, "box")
    assert _close(got, _expected(unit.box, _origin(page), scale)), (got, unit)


@pytest.mark.parametrize("node", NODES)
def test_the_sliders_pick_the_unit(page, graph, node):
    _hover(page, node)
    rows, cols = graph.shape(node)[1:]
    position = (rows - 1, 0)  # a corner: the padding clips the field
    for axis, value in enumerate(position):
        page.execute_script(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
            "s.dispatchEvent(new Event('input'));",
            f"unit-{axis}",
            str(value),
        )
    unit = ca.unit_receptive_field(graph, node, position)
    got = _pixels(page, "box")
    assert _close(got, _expected(unit.box, _origin(page), canvas_scale(graph.extent))), got
    # the dashed box: the unclipped field from the recurrences (size, jump, start)
    fields = ca.receptive_field(graph, node)
    firsts = [f.start + p * f.jump - (f.size - 1) / 2 for f, p in zip(fields, position)]
    theory = page.find_element(By.ID, "theory")
    assert [float(theory.get_attribute(a)) for a in ("y", "x", "height", "width")] == [
        *firsts,
        *(f.size for f in fields),
    ]


def _field(driver) -> dict:
    """What the heatmap holds: its data attributes and the values it drew."""
    return driver.execute_script(
        "const h = document.getElementById('heat');"
        "return {state: h.dataset.state, node: h.dataset.node, unit: h.dataset.unit,"
        " peak: h.dataset.peak, values: h.values ? Array.from(h.values) : null,"
        " alpha: Array.from(h.getContext('2d').getImageData(0, 0, h.width, h.height).data"
        "   .filter((_, k) => k % 4 === 3))};"
    )


def _click_input(driver, row: int, col: int, scale: float) -> None:
    """A real click on the input grid at the centre of input pixel (row, col)."""
    grid = driver.find_element(By.ID, "grid")
    x0, y0 = _origin(driver)
    rect = _pixels(driver, "grid")
    dx = x0 + (col + 0.5) * scale - (rect["left"] + rect["width"] / 2)
    dy = y0 + (row + 0.5) * scale - (rect["top"] + rect["height"] / 2)
    ActionChains(driver).move_to_element_with_offset(grid, round(dx), round(dy)).click().perform()


def _assert_field(driver, graph, node: str, position: tuple[int, ...]) -> None:
    field = ca.effective_receptive_field(graph, node, position)
    got = _field(driver)
    assert (got["state"], got["node"], json.loads(got["unit"])) == ("drawn", node, list(position))
    values = np.array(got["values"]).reshape(field.weights.shape)
    # the page's float64 sums run in another order: equal to the last bits
    np.testing.assert_allclose(values, field.weights, rtol=1e-12, atol=1e-300)
    assert float(got["peak"]) == values.max()
    alpha = np.array(got["alpha"]).reshape(field.weights.shape)
    assert alpha.ravel()[field.weights.argmax()] == 255  # the peak drawn opaque
    assert (alpha[field.weights == 0] == 0).all()  # nothing where the unit reads nothing
    assert ((alpha > 0) == (np.round(255 * np.sqrt(values / values.max())) > 0)).all()


@pytest.mark.parametrize(("node", "position"), CLICKS)
def test_clicking_the_input_grid_draws_the_units_box_and_effective_field(
    page, graph, node, position
):
    scale = canvas_scale(graph.extent)
    _hover(page, node)
    page.find_element(By.CSS_SELECTOR, f'tr[data-node="{node}"]').click()  # pin the row
    fields = ca.receptive_field(graph, node)
    # the input pixel under the unit's centre (start + p * jump), clicked for real
    centre = [
        min(int(f.start + p * f.jump), e - 1) for f, p, e in zip(fields, position, graph.extent)
    ]
    page.execute_script("document.getElementById('grid').scrollIntoView({block: 'center'})")
    _click_input(page, *centre, scale)
    sliders = [int(page.find_element(By.ID, f"unit-{a}").get_attribute("value")) for a in (0, 1)]
    assert tuple(sliders) == position
    unit = ca.unit_receptive_field(graph, node, position)
    got = _pixels(page, "box")
    assert _close(got, _expected(unit.box, _origin(page), scale)), (got, unit)
    _assert_field(page, graph, node, position)
    assert "exact effective field" in page.find_element(By.ID, "field-label").text


@pytest.mark.parametrize("node", NODES[::2])
def test_the_sliders_redraw_the_effective_field(page, graph, node):
    _hover(page, node)
    rows, cols = graph.shape(node)[1:]
    for position in [(rows - 1, 0), (rows // 3, cols - 1)]:
        for axis, value in enumerate(position):
            page.execute_script(
                "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
                "s.dispatchEvent(new Event('input'));",
                f"unit-{axis}",
                str(value),
            )
        _assert_field(page, graph, node, position)


def test_a_node_without_spatial_axes_draws_no_field(page):
    _hover(page, "fc")
    got = _field(page)
    assert got["state"] == "none" and got["values"] is None and max(got["alpha"]) == 0


def test_the_page_says_when_the_fields_are_over_the_budget(page, tmp_path):
    g = zoo.lenet5()
    path = tmp_path / "lenet.html"
    g.to_html(path, max_field_entries=10)
    here = page.current_url
    try:
        page.get(path.as_uri())
        _hover(page, "conv2")
        assert _field(page)["state"] == "omitted"
        label = page.find_element(By.ID, "field-label").text
        assert label.startswith("effective field not drawn: the effective fields of the report")
        assert "more than max_field_entries=10" in label
    finally:
        page.get(here)


def test_csv_download_holds_the_table(page, graph):
    href = page.find_element(By.ID, "csv").get_attribute("href")
    prefix = "data:text/csv;charset=utf-8,"
    assert href.startswith(prefix)
    lines = urllib.parse.unquote(href[len(prefix) :]).splitlines()
    header = lines[0].split(",")
    assert header[:6] == ["node", "kind", "output", "size H", "jump H", "start H"]
    by_node = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    for row in graph.table().rows[:-1]:
        fields = ca.receptive_field(graph, row["node"])
        values = by_node[row["node"]]
        assert int(values[header.index("params")]) == row["params"]
        assert int(values[header.index("MACs")]) == row["MACs"]
        assert int(values[header.index("size W")]) == fields[1].size


def test_a_screenshot_is_produced(page, graph, tmp_path):
    _hover(page, "layer2.0.conv1")
    page.find_element(By.CSS_SELECTOR, 'tr[data-node="layer2.0.conv1"]').click()
    page.execute_script("document.getElementById('grid').scrollIntoView({block: 'center'})")
    _click_input(page, 60, 150, canvas_scale(graph.extent))
    assert _field(page)["state"] == "drawn"
    shot = Path(os.environ.get("CONVALGEBRA_SCREENSHOT_DIR", tmp_path)) / "report.png"
    assert page.save_screenshot(str(shot))
    data = shot.read_bytes()
    width, height = png_size(data)
    assert (width, height) == (1400, 1000) or width >= 800
    assert len(data) > 20_000  # a blank page compresses to a few kilobytes
