"""Tests of chainrule.explain.html without a browser: one self-contained page, its embedded JSON, errors.

The browser tests (tests/test_browser.py) step through the page and read its numbers.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.explain import explain, render
from chainrule.explain.html import MAX_CHAINS, fragment, page_data

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples" / "mazur.json"


def embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" class="crx-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def every_weight(sizes: list[int]) -> list[str]:
    return [
        f"{layer}:{j},{k}"
        for layer in range(1, len(sizes))
        for j in range(1, sizes[layer] + 1)
        for k in range(1, sizes[layer - 1] + 1)
    ]


def test_page_is_self_contained() -> None:
    page = str(render(explain(MAZUR), "html"))
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch: no external script, style sheet, image, font or frame
    assert not re.search(r"<(script|img|iframe|link)[^>]*\s(src|href)=", page)
    assert (
        "url(" not in page
        and "@import" not in page
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    assert "https://" not in page
    assert "default-src 'none'" in page  # and the browser is told to refuse any request
    assert "chainruleExplain.mount(" in page


def test_embedded_json_is_the_json_output_with_every_chain(capsys: pytest.CaptureFixture[str]) -> None:
    page = str(render(explain(MAZUR), "html"))
    data = embedded(page)
    weights = every_weight([2, 2, 2])
    argv = ["explain", str(MAZUR), "--format", "json"]
    for w in weights:
        argv += ["--weight", w]
    assert main(argv) == 0
    assert data == json.loads(capsys.readouterr().out)
    assert len(data["weight_chains"]) == 8


def test_large_networks_keep_only_asked_chains() -> None:
    spec = {
        "layers": [{"sizes": [16, 16], "seed": 0}, {"sizes": 16, "seed": 1}, {"sizes": 16, "seed": 2}],
        "input": [0.1] * 16,
        "target": [0.0] * 16,
    }
    expl = explain(spec, weight="2:3,4")
    assert 16 * 16 * 3 > MAX_CHAINS
    assert [(c["layer"], c["row"], c["column"]) for c in page_data(expl)["weight_chains"]] == [(2, 3, 4)]


def test_cli_writes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    assert main(["explain", str(MAZUR), "--format", "html", "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<title>Matt Mazur&#x27;s step-by-step backpropagation example</title>" in text
    assert embedded(text)["loss"] == pytest.approx(0.298371109, abs=1e-9)


def test_title_cannot_break_out_of_the_page() -> None:
    spec = json.loads(MAZUR.read_text())
    spec["title"] = "</script><script>alert(1)</script> & <b>"
    page = str(render(explain(spec), "html"))
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in page


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_non_finite_numbers_are_strings_the_page_can_show() -> None:
    spec = {
        "layers": [{"weights": [[1.0, -1.0]], "activation": "sigmoid"}],
        "input": [800.0, -800.0],
        "target": [0.0],
        "loss": "binary_cross_entropy",
    }
    expl = explain(spec)
    assert not np.isfinite(expl.dCda).all()  # a[L] rounds to 1: dC/da = 1 / (1 - a) is inf
    data = embedded(str(render(expl, "html")))
    assert "Infinity" in json.dumps(data["dC_da_L"])


def test_notebook_fragment() -> None:
    expl = explain(MAZUR)
    first, second = expl._repr_html_(), fragment(expl)
    ids = [re.search(r'<div class="crx" id="(crx-[0-9a-f]+)"', f).group(1) for f in (first, second)]  # type: ignore[union-attr]
    assert ids[0] != ids[1]  # two outputs in one notebook do not share an element
    assert not first.startswith("<!DOCTYPE") and '"standalone": false' in first
    meta = json.loads(html.unescape(re.search(r'data-meta="([^"]*)"', first).group(1)))  # type: ignore[union-attr]
    assert meta["C"] == "1/2 sum_j (a_j[L] - y_j)^2" and meta["phi"] == ["{a} (1 - {a})"] * 2


def test_too_large_to_draw() -> None:
    spec = {"layers": [{"sizes": [2, 17], "seed": 0}], "input": [1.0, 2.0], "target": [0.0] * 17}
    expl = explain(spec)
    with pytest.raises(ConfigError, match=r"html: the network is too large to draw \(layer 1 has 17 neurons"):
        render(expl, "html")
    assert expl._repr_html_() is None  # a notebook shows the text repr instead
