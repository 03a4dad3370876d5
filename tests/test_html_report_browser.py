"""The interactive report in a real browser: headless Chromium driven by selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` and selenium from PyPI (the ``browser``
extra); skipped with the reason when one is missing. The boxes the page draws are held
against the library's own numbers (``unit_receptive_field``, ``receptive_field``), in
screen pixels.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from browser import chromium, console_problems, png_size
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

import convalgebra as ca
from convalgebra.network import zoo
from convalgebra.network.htmlreport import canvas_scale

NODES = ("conv1", "maxpool", "layer1.0.conv2", "layer2.0.downsample.0", "layer4.1.add")


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


def test_a_screenshot_is_produced(page, tmp_path):
    _hover(page, "layer2.0.conv1")
    shot = Path(os.environ.get("CONVALGEBRA_SCREENSHOT_DIR", tmp_path)) / "report.png"
    assert page.save_screenshot(str(shot))
    data = shot.read_bytes()
    width, height = png_size(data)
    assert (width, height) == (1400, 1000) or width >= 800
    assert len(data) > 20_000  # a blank page compresses to a few kilobytes
