"""Notebook display: tables as objects, HTML tables read back, short reprs of results."""

from __future__ import annotations

import importlib.util
import sys
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

import convalgebra as ca
from convalgebra.display import Table, html_table, short_repr
from convalgebra.network import zoo
from convalgebra.network.graph import LayerGraph
from convalgebra.network.layers import Conv
from convalgebra.network.tabulate import format_cell, render


class _Cells(HTMLParser):
    """Header and body cells of the first table, as text (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell)
            (self.head if tag == "th" else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _read_back(markup: str) -> _Cells:
    parser = _Cells()
    parser.feed(markup)
    return parser


cells = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.text(max_size=12),
    st.tuples(st.integers(1, 300), st.integers(1, 300)),
)


@given(st.lists(st.fixed_dictionaries({"a": cells, "b<&>": cells}), max_size=6))
def test_html_table_reads_back_as_the_cells(rows):
    parsed = _read_back(html_table(rows, ["a", "b<&>"], format_cell))
    assert parsed.head == ["a", "b<&>"]
    assert parsed.rows == [[format_cell(r["a"]), format_cell(r["b<&>"])] for r in rows]


@pytest.mark.parametrize("fmt", ["text", "markdown", "csv", "json"])
def test_graph_table_is_its_text_and_holds_its_rows(fmt):
    g = zoo.lenet5()
    table = g.table(fmt)
    assert isinstance(table, str) and isinstance(table, Table)
    assert str(table) == render(table.rows, fmt=fmt)
    assert [r["node"] for r in table.rows] == [*g.nodes, "total"]
    for row in table.rows[:-1]:
        assert row["output"] == g.shape(row["node"])
        assert row["params"] == g.info(row["node"]).params
    assert table.rows[-1]["params"] == ca.param_count(g)
    assert table.to_records()[1] == tuple(table.rows[1].get(c) for c in table.columns)


def test_graph_table_in_a_notebook_is_the_html_of_its_rows():
    g = zoo.resnet18()
    table = g.table(depth=1, percent=True)
    parsed = _read_back(table._repr_html_())
    assert parsed.head == table.columns
    assert parsed.rows == [[format_cell(r.get(c)) for c in table.columns] for r in table.rows]
    whole = _read_back(g._repr_html_().split("</strong>", 1)[1])
    assert [row[0] for row in whole.rows] == [*g.nodes, "total"]
    assert f"{ca.param_count(g):,} parameters" in g._repr_html_()


def test_table_to_pandas_is_the_rows():
    pandas = pytest.importorskip("pandas")
    table = zoo.lenet5().table()
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == table.columns
    assert frame["params"].tolist()[:-1] == [r["params"] for r in table.rows[:-1]]
    assert frame.iloc[-1]["node"] == "total"


def test_table_to_pandas_without_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ca.MissingExtraError, match=r"convalgebra\[pandas\]"):
        zoo.lenet5().table().to_pandas()


@given(st.text(max_size=600))
def test_short_repr_is_one_short_line(text):
    shown = short_repr("Thing", text)
    assert "\n" not in shown and len(shown) <= 208
    assert shown.startswith("<Thing ") and shown.endswith(">")


def test_effective_field_repr_is_short():
    field = ca.effective_receptive_field(zoo.lenet5())
    assert repr(field) == f"<EffectiveField {field.describe()}>"
    assert len(repr(field)) < 300
    markup = field._repr_html_()
    assert "diameter of the disc holding 95% of the weight" in markup
    if importlib.util.find_spec("matplotlib") is not None:
        assert field._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{field.size:.2f} px" in markup


def test_effective_field_png_is_none_without_matplotlib(monkeypatch):
    from convalgebra import plot

    def missing(module, extra):
        raise ca.MissingExtraError(f"pip install 'convalgebra[{extra}]'")

    monkeypatch.setattr(plot, "require", missing)
    assert ca.effective_receptive_field(zoo.lenet5())._repr_png_() is None


def test_symbolic_backward_repr_counts_without_building():
    spec = ca.ConvSpec((2, 5, 5), 3, 2, stride=2)
    back = ca.symbolic_backward(spec)
    text = repr(back)
    assert back._built == {}  # counting left no equation built
    assert text == (
        f"<SymbolicBackward {spec.describe()}: {len(back.forward)} forward, "
        f"{len(back.weight_gradient)} weight, {len(back.input_gradient)} input, "
        f"{len(back.bias_gradient)} bias equations>"
    )
    assert len(back.forward) == 3 * 2 * 2 and len(back.input_gradient) == 50
    assert "input equations: 50" in back._repr_html_()


def test_check_result_repr_and_html():
    result = ca.check("adjoint", ca.ConvSpec((1, 6), 1, 3))
    assert repr(result) == f"<CheckResult adjoint: {result.verdict} -- {result.claim}>"
    assert result.verdict in result._repr_html_()
    assert result._repr_html_().startswith("<details>")


def test_lipschitz_bound_repr_and_html():
    lipschitz = pytest.importorskip("convalgebra.lipschitz")
    g = LayerGraph()
    g.add_input("x", (1, 6))
    g.add("a", Conv(1, 3, padding=1, padding_mode="circular", bias=False), "x")
    bound = lipschitz.lipschitz_bound(g, weights={"a": {"weight": [[[1.0, 2.0, 1.0]]]}})
    assert repr(bound) == f"<LipschitzBound upper {bound.upper:.6g}, 2 nodes>"
    parsed = _read_back(bound._repr_html_())
    assert parsed.head == ["node", "kind", "layer", "bound", "how"]
    assert [row[0] for row in parsed.rows] == ["x", "a"]
    assert parsed.rows[1][3] == f"{bound.node('a').bound:.6g}"
