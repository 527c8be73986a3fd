"""The explain page and the playground in a real browser: headless Chromium driven by Playwright.

Chromium comes from the system's package manager (Debian: ``apt-get install chromium``)
and Playwright from pip; Playwright's own browser download is never used. Without a
browser these tests skip with one line saying how to get one, except in CI
(``CI`` set), where they fail: CI must run them. One browser serves the module.

Set ``CHAINRULE_SCREENSHOTS=1`` to write the screenshots of the run into ``docs/img/``
(the docs show them); otherwise they go to pytest's temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainrule.cli import main

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples" / "mazur.json"
HOW = (
    "no headless Chromium for the browser tests: install it with `apt-get install chromium` "
    "(Debian/Ubuntu) and `pip install playwright` (never `playwright install`)"
)
SOFTMAX_BATCH = {
    "title": "A batch of three through a softmax output",
    "layers": [
        {"weights": [[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1]], "bias": [0.1, -0.1, 0.0], "activation": "tanh"},
        {"weights": [[0.3, -0.2, 0.5], [-0.4, 0.6, 0.1], [0.2, 0.2, -0.3]], "activation": "softmax"},
    ],
    "input": [[1.0, 2.0], [0.5, -1.0], [-0.3, 0.7]],
    "target": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "loss": "cross_entropy",
    "learning_rate": 0.1,
}
WIDE, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(HOW)
    path = _chromium()
    if path is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(HOW)
    with sync_playwright() as p:
        # --no-sandbox: Chromium refuses to start as root (CI runs as root) with its sandbox
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("CHAINRULE_SCREENSHOTS"):
        return ROOT / "docs" / "img"
    return tmp_path_factory.mktemp("screenshots")


def resolve(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def check_numbers(page: Any, data: dict[str, Any], digits: int | None = 4) -> set[str]:
    """Every number on the page is the JSON's number at its key; shown to ``digits`` significant digits."""
    nums = page.eval_on_selector_all(
        ".crx-num", "els => els.map(e => [e.dataset.key, e.dataset.full, e.textContent])"
    )
    assert nums
    for key, full, text in nums:
        value = resolve(data, key)
        assert float(full) == float(value), (key, full, value)  # exact: the page shows the JSON's double
        if digits is None:
            assert text == full
        elif math.isfinite(float(value)) and value != 0:
            assert float(text) == pytest.approx(float(value), rel=0.6 * 10 ** (1 - digits)), (
                key,
                text,
                value,
            )
    return {key for key, _, _ in nums}


def explain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, Any]]:
    spec = tmp_path / "batch.json"
    spec.write_text(json.dumps(SOFTMAX_BATCH))
    page = tmp_path / "batch.html"
    assert main(["explain", str(spec), "--format", "html", "--output", str(page)]) == 0
    weights = [
        f"{layer}:{j},{k}"
        for layer, (n, p) in ((1, (3, 2)), (2, (3, 3)))
        for j in range(1, n + 1)
        for k in range(1, p + 1)
    ]
    argv = ["explain", str(spec), "--format", "json"]
    for w in weights:
        argv += ["--weight", w]
    capsys.readouterr()
    assert main(argv) == 0
    return page, json.loads(capsys.readouterr().out)


def test_explain_page_steps_and_shows_the_json_numbers(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], shots: Path
) -> None:
    path, data = explain_files(tmp_path, capsys)
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    status = page.locator(".crx-status")
    assert status.text_content() == "Step 1 of 7: Input"
    seen: dict[str, set[str]] = {}
    names = [
        "Input",
        "Forward, layer 1",
        "Forward, layer 2",
        "Loss",
        "Backward, layer 2",
        "Backward, layer 1",
        "Update",
    ]
    for i, name in enumerate(names):
        assert status.text_content() == f"Step {i + 1} of 7: {name}"
        for example in (0, 2):  # the first example, and the last (an off-by-one would show)
            page.select_option(".crx-example", index=example)
            page.click("[data-pick='2,1']")  # a softmax neuron
            keys = check_numbers(page, data)
            page.click("[data-pick='1,2,0']")  # the weight w_31[1]
            keys |= check_numbers(page, data)
            page.focus("[data-pick='2,1,2']")  # the weight w_23[2], by keyboard (its middle is a crossing)
            page.keyboard.press("Enter")
            keys |= check_numbers(page, data)
            seen.setdefault(name, set()).update(keys)
        page.click("button[data-act='next']")
    # forward shows z and a but no delta yet; the backward pass adds delta, the Jacobian and the gradients
    assert "layers.0.z.2.1" in seen["Forward, layer 1"] and not any(
        ".delta" in k for k in seen["Forward, layer 2"]
    )
    assert "loss" in seen["Loss"]
    assert {"layers.1.softmax_jacobian.2.1.0", "layers.1.delta.2.1"} <= seen["Backward, layer 2"]
    assert {"layers.1.grad_weights.1.2", "layers.1.grad_bias.1"} - seen["Backward, layer 2"] == {
        "layers.1.grad_bias.1"
    }
    # chains: w_31[1] is weight_chains[4] (layer 1, row 3, column 1), w_23[2] is weight_chains[6 + 5]
    assert not any(k.startswith("weight_chains.4.") for k in seen["Backward, layer 2"])
    assert {"weight_chains.4.examples.0.product", "weight_chains.4.examples.2.terms.1.1"} <= seen[
        "Backward, layer 1"
    ]
    assert {
        "weight_chains.11.examples.0.a",
        "weight_chains.11.examples.2.y",
        "weight_chains.11.examples.1.product",
    } <= seen["Backward, layer 2"]
    assert "layers.0.weights_after.2.0" in seen["Update"] and "layers.1.weights_after.2.2" in seen["Update"]
    page.screenshot(path=str(shots / "explain_page_1280x800.png"))
    # keyboard: Home, arrows and End step; a focused weight opens with Enter
    page.keyboard.press("Home")
    assert status.text_content() == "Step 1 of 7: Input"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert status.text_content() == "Step 3 of 7: Forward, layer 2"
    page.keyboard.press("End")
    assert status.text_content() == "Step 7 of 7: Update"
    page.focus("[data-pick='2,0,1']")
    page.keyboard.press("Enter")
    assert "From neuron 2 of layer 1 to neuron 1 of layer 2." in page.locator(".crx-detail").text_content()
    page.select_option(".crx-precision", value="full")
    check_numbers(page, data, digits=None)
    assert [r for r in requests if r != path.as_uri()] == []  # the page asked for nothing
    assert errors == []
    context.close()


def test_explain_page_on_a_phone(browser: Any, tmp_path: Path, shots: Path) -> None:
    out = tmp_path / "mazur.html"
    assert main(["explain", str(MAZUR), "--format", "html", "--output", str(out)]) == 0
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(out.as_uri())
    page.click("button[data-act='last']")
    page.tap("[data-pick='2,0,0']")
    w5 = float(page.locator(".crx-detail .crx-num").last.get_attribute("data-full"))
    assert w5 == pytest.approx(0.35891648, abs=5e-9)  # Mazur's published w5+
    # readable: the page does not scroll sideways, and the drawing's numbers stay at least 9 px tall
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    heights = page.eval_on_selector_all(
        "svg .crx-nval", "els => els.map(e => e.getBoundingClientRect().height)"
    )
    assert min(heights) >= 9
    font = page.eval_on_selector(".crx-panel .crx-num", "e => getComputedStyle(e).fontFamily")
    assert "mono" in font.lower()
    page.screenshot(path=str(shots / "explain_page_phone.png"), full_page=True)
    context.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "playground", "--port", "0", "--max-sessions", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def canvas(page: Any) -> str:
    return page.eval_on_selector("#boundary", "c => c.toDataURL()")


def test_playground_trains_moons_while_you_watch(browser: Any, server: str, shots: Path) -> None:
    # NOTE: bypass_csp lets Playwright's wait_for_function evaluate its predicate; the page itself
    # runs under its policy in the other tests' checks (served header, no eval needed)
    context = browser.new_context(viewport=WIDE, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_function("window.playground && window.playground.connected")
    assert page.text_content("#metric-step") == "0" and page.input_value("#dataset") == "moons"
    loss0 = float(page.get_attribute("#metric-train-loss", "title"))
    picture0 = canvas(page)
    page.fill("#run-steps", "100")
    page.click("#run")
    page.wait_for_function(
        "document.getElementById('metric-step').textContent === '100' && !window.playground.running",
        timeout=30_000,
    )
    loss100 = float(page.get_attribute("#metric-train-loss", "title"))
    assert loss100 < 0.8 * loss0
    assert canvas(page) != picture0  # the boundary was redrawn
    assert page.evaluate("window.playground.latencies.length") == 100  # one update per step reached the page
    page.screenshot(path=str(shots / "playground_1280x800.png"))

    # a second tab has its own network; closing it leaves the first one alone
    other = context.new_page()
    other.goto(server)
    other.wait_for_function("window.playground && window.playground.connected")
    assert other.text_content("#metric-step") == "0"
    assert other.evaluate("window.playground.id") != page.evaluate("window.playground.id")
    other.close()
    page.click("#step")
    page.wait_for_function("document.getElementById('metric-step').textContent === '101'")

    # pause and explain one example of the current network
    page.fill("#ex-index", "7")
    page.click("#explain")
    frame_el = page.wait_for_selector("#explain-frame:not([hidden])")
    frame = frame_el.content_frame()
    frame.wait_for_selector(".crx-status")
    assert "step 101, train example 7" in frame.text_content("h1")
    frame.click("button[data-act='last']")
    assert frame.text_content(".crx-status") == "Step 9 of 9: Update"  # 2-8-8-2: 2 L + 3 stages
    assert errors == []
    context.close()


def test_playground_on_a_phone(browser: Any, server: str, shots: Path) -> None:
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, bypass_csp=True
    )
    page = context.new_page()
    page.goto(server)
    page.wait_for_function("window.playground && window.playground.connected")
    page.select_option("#dataset", "regression")
    page.fill("#hidden", "16,16")
    page.click("#apply")
    page.wait_for_function("window.playground.state && window.playground.state.task === 'regression'")
    page.fill("#run-steps", "300")
    page.click("#run")
    page.wait_for_function(
        "document.getElementById('metric-step').textContent === '300' && !window.playground.running",
        timeout=30_000,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.is_hidden("#acc-box")  # no accuracy for a regression
    page.locator("#h-out").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "playground_phone.png"))
    context.close()
    time.sleep(0.1)
