"""Tests of chainrule.cli.playground without a browser: sessions, the HTTP API, the WebSocket stream, bounds.

The app runs in Starlette's TestClient (in process, no socket); the browser test in
tests/test_browser.py serves it on 127.0.0.1 and drives the page.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the playground needs the web extra: pip install 'chainrule[web]'")
from starlette.testclient import TestClient

from chainrule import serialize
from chainrule.cli import main
from chainrule.cli.playground import allowed_hosts, url_of
from chainrule.cli.playground.server import Settings, create_app
from chainrule.cli.playground.session import Session, parse_config
from chainrule.errors import ConfigError
from chainrule.explain import explain

ORIGIN = {"origin": "http://testserver"}
SMALL = {"n_train": 120, "n_val": 40, "hidden": [6], "batch_size": 16}


@pytest.fixture
def client() -> Iterator[TestClient]:
    hosts = [*allowed_hosts("127.0.0.1"), "testserver"]  # TestClient's WebSockets say Host: testserver
    app = create_app(Settings(max_sessions=4, max_run_steps=2000, idle_timeout_s=60, allowed_hosts=hosts))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def new(client: TestClient, **config: Any) -> dict[str, Any]:
    r = client.post("/api/sessions", json={**SMALL, **config})
    assert r.status_code == 201, r.text
    return r.json()


def updates_until_paused(ws: Any, limit: int = 500) -> list[dict[str, Any]]:
    got = []
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == "paused":
            return got
        assert msg["type"] == "update", msg
        got.append(msg)
    raise AssertionError("no 'paused' message")


# ----------------------------------------------------------------------------- sessions


def test_config_defaults_and_errors() -> None:
    cfg = parse_config({})
    assert cfg.dataset == "moons" and cfg.loss == "cross_entropy" and cfg.hidden == [8, 8]
    assert parse_config({"dataset": "regression"}).loss == "mse"
    assert "Config(dataset='moons'" in repr(cfg)
    cases = [
        ([], r"config: expected a JSON object, got list"),
        ({"colour": 1}, r"config: unknown field 'colour'"),
        ({"dataset": "iris"}, r"config: dataset must be one of \['moons', 'circles'"),
        (
            {"hidden": [8, 99]},
            r"config: hidden must be a list of at most 6 layer widths, each 1 to 16, got \[8, 99\]",
        ),
        ({"lr": 0}, r"config: lr must be in \[1e-06, 10.0\], got 0"),
        ({"lr": "fast"}, r"config: lr must be a number, got 'fast'"),
        ({"batch_size": 2.5}, r"config: batch_size must be an integer, got 2.5"),
        (
            {"dataset": "regression", "loss": "cross_entropy"},
            r"config: loss must be one of \['mse', 'half_sse'\]",
        ),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_config(data)


@pytest.mark.parametrize("dataset", ["moons", "circles", "spirals", "xor", "regression"])
def test_every_dataset_trains_and_draws(dataset: str) -> None:
    session = Session("t", parse_config({**SMALL, "dataset": dataset, "optimizer": "adam", "lr": 0.02}))
    before = session.metrics()
    done = session.train_for(60, budget_s=10.0)
    assert [d[0] for d in done] == list(range(1, 61))
    after = session.metrics()
    assert after["train_loss"] < before["train_loss"]
    assert len(session.grad_norms) == 2 and all(g > 0 for g in session.grad_norms)
    picture = session.picture()
    assert picture["kind"] == ("curve" if dataset == "regression" else "grid")


def test_every_optimizer_loss_and_regulariser() -> None:
    for extra in (
        {"optimizer": "sgd", "lr": 0.3},
        {"optimizer": "momentum", "lr": 0.05, "l2": 0.001},
        {"optimizer": "rmsprop", "lr": 0.01, "dropout": 0.2},
        {"optimizer": "adamw", "lr": 0.02, "loss": "mse", "activation": "relu"},
        {"loss": "half_sse", "activation": "sigmoid", "hidden": []},
    ):
        session = Session("t", parse_config({**SMALL, **extra}))
        first = session.metrics()["train_loss"]
        session.train_for(80, budget_s=10.0)
        assert session.metrics()["train_loss"] < first, extra


def test_explain_spec_and_model_of_a_session(tmp_path: Path) -> None:
    session = Session("t", parse_config({**SMALL, "dropout": 0.1}))
    session.train_for(20, budget_s=10.0)
    spec = session.spec("val", 3)
    expl = explain(spec)  # the exported spec is a valid explain spec of the current weights
    W1 = session.model.dense_layers()[0].W.data
    np.testing.assert_array_equal(np.asarray(spec["layers"][0]["weights"]), W1.astype(np.float64))
    assert spec["input"] == session.xv[3].astype(np.float64).tolist() and sum(spec["target"]) == 1.0
    assert expl.check["autodiff"] < 1e-12
    path = tmp_path / "m.safetensors"
    path.write_bytes(session.model_bytes())
    loaded = serialize.load(path)
    np.testing.assert_array_equal(loaded.dense_layers()[0].W.data, W1)
    assert serialize.load_metadata(path)["step"] == 20
    with pytest.raises(ConfigError, match=r"example: index must be 0 to 39 for the val split, got 40"):
        session.spec("val", 40)
    with pytest.raises(ConfigError, match=r"example: split must be 'train' or 'val', got 'test'"):
        session.spec("test", 0)


# ----------------------------------------------------------------------------- the HTTP API


def test_page_is_served_with_its_script_inline(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "default-src 'none'" in r.headers["content-security-policy"]
    assert "/*SCRIPT*/" not in r.text and "window.playground = pg" in r.text
    assert "<script src" not in r.text and '<link rel="stylesheet"' not in r.text
    assert client.get("/api/options").json()["datasets"] == [
        "moons",
        "circles",
        "spirals",
        "xor",
        "regression",
    ]


def test_malformed_requests_get_4xx_json(client: TestClient) -> None:
    sid = new(client)["id"]
    cases = [
        (
            client.post("/api/sessions", content=b"{bad"),
            400,
            "request body is not valid JSON at line 1, column 2",
        ),
        (client.post("/api/sessions", json={"hidden": "8,8"}), 400, "config: hidden must be a list"),
        (
            client.post("/api/sessions", content=b"x" * 70000),
            413,
            "request body of 70000 bytes; at most 65536",
        ),
        (client.get("/api/sessions/nope"), 404, "no session 'nope'"),
        (client.get("/api/nothing"), 404, "GET /api/nothing: Not Found"),
        (client.delete("/api/sessions"), 405, "DELETE /api/sessions: Method Not Allowed"),
        (
            client.post(f"/api/sessions/{sid}/train", json={"steps": -1}),
            400,
            "train: steps must be an integer",
        ),
        (client.post(f"/api/sessions/{sid}/train", json={"go": 1}), 400, 'train: expected {"steps": N'),
        (client.post(f"/api/sessions/{sid}/train", json={}), 409, "open the session's stream"),
        (
            client.get(f"/api/sessions/{sid}/explain?example=x"),
            400,
            "explain: example must be a non-negative",
        ),
        (client.get(f"/api/sessions/{sid}/explain?example=9999"), 400, "example: index must be 0 to"),
        (client.get(f"/api/sessions/{sid}/export/zip"), 404, "export: unknown export 'zip'"),
        (client.get(f"/api/sessions/{sid}/export/spec?example=-2"), 400, "export: example must be"),
        (client.put(f"/api/sessions/{sid}/config", json={"lr": 100}), 400, "config: lr must be in"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert message in response.json()["error"]
    assert client.get(f"/api/sessions/{sid}").status_code == 200  # the bad requests broke nothing


def test_too_many_sessions_and_closing(client: TestClient) -> None:
    ids = [new(client)["id"] for _ in range(4)]
    r = client.post("/api/sessions", json=SMALL)
    assert r.status_code == 429 and "4 sessions are open" in r.json()["error"]
    assert client.delete(f"/api/sessions/{ids[0]}").status_code == 204
    assert client.post(f"/api/sessions/{ids[1]}/close").status_code == 204
    assert client.get(f"/api/sessions/{ids[0]}").status_code == 404
    new(client)


def test_host_header_and_origin_are_checked(client: TestClient) -> None:
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    sid = new(client)["id"]
    with pytest.raises(Exception):  # noqa: B017  the socket is refused: starlette's WebSocketDisconnect
        with client.websocket_connect(
            f"/api/sessions/{sid}/stream", headers={"origin": "http://evil.example"}
        ) as ws:
            ws.receive_text()
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1", "[::1]"]
    assert allowed_hosts("0.0.0.0") == ["*"] and allowed_hosts("10.1.2.3")[-1] == "10.1.2.3"


def test_stream_train_pause_and_step(client: TestClient) -> None:
    state = new(client)
    sid = state["id"]
    assert state["step"] == 0 and state["picture"]["kind"] == "grid" and len(state["history"]) == 1
    with client.websocket_connect(f"/api/sessions/{sid}/stream", headers=ORIGIN) as ws:
        r = client.post(f"/api/sessions/{sid}/train", json={"steps": 100})
        assert r.status_code == 202 and r.json()["target"] == 100
        got = updates_until_paused(ws)
        steps = [s for u in got for s in u["steps"]]
        assert steps == list(range(1, 101))  # every step's update reached the client, in order
        assert got[-1]["metrics"]["train_loss"] < state["history"][0]["train_loss"]
        assert "picture" in got[-1] and got[-1]["picture"]["classes"] != state["picture"]["classes"]
        assert all(u["sent"] >= max(u["ended"]) for u in got)
        one = client.post(f"/api/sessions/{sid}/step").json()
        assert one["steps"] == [101] and ws.receive_json()["steps"] == [101]
        client.post(f"/api/sessions/{sid}/train", json={"steps": 2000, "speed": 500})
        ws.receive_json()
        assert client.post(f"/api/sessions/{sid}/pause").status_code == 200
        rest = updates_until_paused(ws)
        stopped = client.get(f"/api/sessions/{sid}").json()["step"]
        assert 101 < stopped < 2101 and (not rest or rest[-1]["steps"][-1] == stopped)
        page = client.get(f"/api/sessions/{sid}/explain?split=val&example=2")
        assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
        assert f"step {stopped}, val example 2" in page.text
        spec = client.get(f"/api/sessions/{sid}/export/spec?example=1")
        assert "attachment" in spec.headers["content-disposition"] and json.loads(spec.text)["input"]
        model = client.get(f"/api/sessions/{sid}/export/model")
        assert model.headers["content-disposition"].endswith(f'moons-step{stopped}.safetensors"')
        header_len = int.from_bytes(model.content[:8], "little")
        assert (
            json.load(io.BytesIO(model.content[8 : 8 + header_len]))["__metadata__"]["format"] == "chainrule"
        )


def test_two_tabs_do_not_disturb_each_other(client: TestClient) -> None:
    a, b = new(client), new(client, dataset="circles")
    with client.websocket_connect(f"/api/sessions/{a['id']}/stream", headers=ORIGIN) as wa:
        with client.websocket_connect(f"/api/sessions/{b['id']}/stream", headers=ORIGIN) as wb:
            client.post(f"/api/sessions/{b['id']}/train", json={"steps": 30})
            assert sum(len(u["steps"]) for u in updates_until_paused(wb)) == 30
        # tab b closed; a trains on, untouched by b's training
        assert client.get(f"/api/sessions/{a['id']}").json()["step"] == 0
        client.post(f"/api/sessions/{a['id']}/train", json={"steps": 20})
        assert sum(len(u["steps"]) for u in updates_until_paused(wa)) == 20
    assert client.get(f"/api/sessions/{b['id']}").json()["step"] == 30
    assert client.get(f"/api/sessions/{b['id']}").json()["config"]["dataset"] == "circles"


def test_closing_the_stream_stops_training(client: TestClient) -> None:
    sid = new(client)["id"]
    with client.websocket_connect(f"/api/sessions/{sid}/stream") as ws:
        client.post(f"/api/sessions/{sid}/train", json={"steps": 2000, "speed": 200})
        ws.receive_json()
    steps = [client.get(f"/api/sessions/{sid}").json()["step"]]
    for _ in range(20):  # wait until the step count stands still (the run ends after its chunk)
        time.sleep(0.3)
        steps.append(client.get(f"/api/sessions/{sid}").json()["step"])
        if steps[-1] == steps[-2]:
            break
    assert steps[-1] == steps[-2] < 2000


def test_idle_sessions_are_reaped() -> None:
    app = create_app(Settings(idle_timeout_s=0.2, allowed_hosts=["127.0.0.1", "testserver"]))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        sid = new(c)["id"]
        deadline = time.monotonic() + 5
        while c.get(f"/api/sessions/{sid}").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.3)  # NOTE: each GET also counts as use, so the waits outlast the timeout
        assert c.get(f"/api/sessions/{sid}").status_code == 404


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_a_diverging_run_says_why(client: TestClient) -> None:
    sid = new(client, dataset="regression", optimizer="sgd", lr=10.0, hidden=[16, 16], activation="relu")[
        "id"
    ]
    with client.websocket_connect(f"/api/sessions/{sid}/stream") as ws:
        client.post(f"/api/sessions/{sid}/train", json={"steps": 500})
        messages = []
        for _ in range(200):
            messages.append(ws.receive_json())
            if messages[-1]["type"] == "paused":
                break
    errors = [m["message"] for m in messages if m["type"] == "error"]
    assert errors and "training stopped: the loss became" in errors[0]


def test_cli_url_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert url_of(s, "127.0.0.1") == f"http://127.0.0.1:{s.getsockname()[1]}/"
        taken = s.getsockname()[1]
        assert main(["playground", "--port", str(taken)]) == 2
    assert "Address already in use" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["playground", "--port", "70000"])
    assert "expected a port number 0-65535, got 70000" in capsys.readouterr().err
