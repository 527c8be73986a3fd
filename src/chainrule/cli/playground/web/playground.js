/* chainrule playground: this tab's session, its controls, and the drawings of what arrives.
 *
 * On load the page creates its own session (POST /api/sessions) and opens its
 * stream (WebSocket /api/sessions/ID/stream). Every control is a request to the
 * server; every drawing is redrawn from the server's messages:
 *   state   the whole session (config, data points, history, picture)
 *   update  one chunk of steps: steps, batch losses, end times, metrics, gradient norms, maybe a picture
 *   paused  the run ended;  error  a message to show
 * window.playground exposes the session and the received updates, for tests and the curious.
 */
(function () {
  "use strict";
  var OPT = window.PLAYGROUND_OPTIONS;
  var COLORS = [[31, 95, 191], [194, 65, 12], [21, 128, 61], [124, 58, 237], [180, 83, 9]];
  var $ = function (id) { return document.getElementById(id); };
  var pg = { id: null, state: null, history: [], running: false, updates: 0, latencies: [], ws: null };
  window.playground = pg;

  function fmt(x, p) {
    if (x === undefined || x === null) return "\u2013";
    return Number(x).toPrecision(p || 4);
  }

  function showError(msg) {
    var el = $("error");
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  function api(method, path, body) {
    var init = { method: method, headers: {} };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    return fetch(path, init).then(function (r) {
      var type = r.headers.get("Content-Type") || "";
      var parse = type.indexOf("json") >= 0 ? r.json() : r.text();
      return parse.then(function (data) {
        if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
        return data;
      });
    });
  }

  function fillSelect(id, values, chosen) {
    var sel = $(id);
    sel.innerHTML = values.map(function (v) {
      return '<option value="' + v + '"' + (v === chosen ? " selected" : "") + ">" + v.replace(/_/g, " ") + "</option>";
    }).join("");
  }

  function taskOf(dataset) { return dataset === "regression" ? "regression" : "classification"; }

  function syncLosses() {
    var task = taskOf($("dataset").value), cur = $("loss").value;
    var list = OPT.losses[task];
    fillSelect("loss", list, list.indexOf(cur) >= 0 ? cur : list[0]);
  }

  /* The form as a config object; the server checks every field and names a bad one. */
  function readConfig() {
    var f = $("settings"), cfg = {};
    ["dataset", "activation", "loss", "optimizer"].forEach(function (k) { cfg[k] = f.elements[k].value; });
    ["noise", "lr", "l2", "dropout"].forEach(function (k) { cfg[k] = Number(f.elements[k].value); });
    ["n_train", "n_val", "batch_size", "seed"].forEach(function (k) { cfg[k] = Math.round(Number(f.elements[k].value)); });
    var text = f.elements.hidden.value.trim();
    cfg.hidden = text ? text.split(/[ ,]+/).filter(Boolean).map(Number) : [];
    return cfg;
  }

  function writeConfig(cfg) {
    var f = $("settings");
    Object.keys(cfg).forEach(function (k) {
      if (!f.elements[k]) return;
      f.elements[k].value = k === "hidden" ? cfg.hidden.join(",") : cfg[k];
    });
  }

  /* ------------------------------------------------------------------ session */
  function start() {
    fillSelect("dataset", OPT.datasets, "moons");
    fillSelect("activation", OPT.activations, "tanh");
    fillSelect("optimizer", OPT.optimizers, "adam");
    syncLosses();
    $("dataset").addEventListener("change", syncLosses);
    api("POST", "/api/sessions", readConfig()).then(function (state) {
      pg.id = state.id;
      setState(state);
      exportLinks();
      connect();
    }).catch(function (e) { showError(e.message); $("connection").textContent = "no session"; });
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + "/api/sessions/" + pg.id + "/stream");
    pg.ws = ws;
    ws.onopen = function () { $("connection").textContent = "connected"; pg.connected = true; };
    ws.onclose = function () { $("connection").textContent = "disconnected: reload the page"; pg.connected = false; setRunning(false); };
    ws.onmessage = function (ev) {
      var now = Date.now() / 1000;
      var msg = JSON.parse(ev.data);
      if (msg.type === "update") onUpdate(msg, now);
      else if (msg.type === "state") setState(msg.state);
      else if (msg.type === "paused") setRunning(false);
      else if (msg.type === "error") { showError(msg.message); setRunning(false); }
    };
    setInterval(function () { if (ws.readyState === 1) ws.send("ping"); }, 20000);
  }

  function setState(state) {
    pg.state = state;
    pg.history = state.history.slice();
    writeConfig(state.config);
    syncLosses();
    $("loss").value = state.config.loss;
    $("acc-box").hidden = state.task !== "classification";
    $("summary").textContent = state.summary;
    $("boundary-caption").textContent = state.task === "classification"
      ? "Decision boundary: colour = predicted class, paler = less sure; dots: training data, rings: validation."
      : "Regression: the network's curve (line); dots: training data, rings: validation.";
    pg.picture = state.picture;
    showMetrics(pg.history[pg.history.length - 1]);
    drawPicture();
    drawLosses();
    drawNorms(state.grad_norms);
    setRunning(false);
    showError("");
  }

  function onUpdate(msg, now) {
    pg.updates += 1;
    for (var i = 0; i < msg.ended.length; i++) pg.latencies.push(now - msg.ended[i]);
    if (pg.latencies.length > 5000) pg.latencies.splice(0, pg.latencies.length - 5000);
    pg.history.push(msg.metrics);
    if (pg.history.length > 4000) pg.history.splice(1, 2000);
    showMetrics(msg.metrics);
    drawNorms(msg.grad_norms);
    if (msg.picture) { pg.picture = msg.picture; drawPicture(); }
    drawLosses();
  }

  function showMetrics(m) {
    if (!m) return;
    $("metric-step").textContent = m.step;
    $("metric-train-loss").textContent = fmt(m.train_loss);
    $("metric-train-loss").title = String(m.train_loss);
    $("metric-val-loss").textContent = fmt(m.val_loss);
    $("metric-val-loss").title = String(m.val_loss);
    $("metric-train-acc").textContent = m.train_accuracy === undefined ? "\u2013" : (100 * m.train_accuracy).toFixed(1) + "%";
    $("metric-val-acc").textContent = m.val_accuracy === undefined ? "\u2013" : (100 * m.val_accuracy).toFixed(1) + "%";
  }

  function setRunning(on) {
    pg.running = on;
    $("play").textContent = on ? "Pause" : "Play";
    $("play").setAttribute("aria-pressed", on ? "true" : "false");
  }

  function train(steps) {
    showError("");
    var body = { speed: Number($("speed").value) };
    if (steps) body.steps = steps;
    setRunning(true);
    return api("POST", "/api/sessions/" + pg.id + "/train", body).catch(function (e) { showError(e.message); setRunning(false); });
  }

  function pause() { return api("POST", "/api/sessions/" + pg.id + "/pause").then(function () { setRunning(false); }); }

  /* ------------------------------------------------------------------ drawing */
  function scaler(state, w, h) {
    var b = state.bounds, pad = 6;
    if (state.task === "regression") {
      var ys = state.points.y.map(function (r) { return r[0]; }).concat(state.points.y_val.map(function (r) { return r[0]; }));
      var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys), m = 0.15 * (hi - lo) + 0.1;
      return function (x, y) { return [pad + (x - b[0]) / (b[1] - b[0]) * (w - 2 * pad), h - pad - (y - lo + m) / (hi - lo + 2 * m) * (h - 2 * pad)]; };
    }
    return function (x, y) { return [(x - b[0]) / (b[1] - b[0]) * w, (b[3] - y) / (b[3] - b[2]) * h]; };
  }

  function bytes(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function drawPicture() {
    var state = pg.state, pic = pg.picture, cv = $("boundary"), ctx = cv.getContext("2d");
    var w = cv.width, h = cv.height, at = scaler(state, w, h);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    if (pic && pic.kind === "grid") {
      var n = pic.size, cls = bytes(pic.classes), conf = bytes(pic.confidence);
      var img = ctx.createImageData(n, n);
      for (var i = 0; i < n * n; i++) {
        var c = COLORS[cls[i] % COLORS.length], t = 0.15 + 0.55 * conf[i] / 255;
        img.data[4 * i] = Math.round(255 + (c[0] - 255) * t);
        img.data[4 * i + 1] = Math.round(255 + (c[1] - 255) * t);
        img.data[4 * i + 2] = Math.round(255 + (c[2] - 255) * t);
        img.data[4 * i + 3] = 255;
      }
      var off = document.createElement("canvas");
      off.width = n; off.height = n;
      off.getContext("2d").putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(off, 0, 0, w, h);
    }
    var P = state.points;
    function dots(xs, ys, ring) {
      for (var i = 0; i < xs.length; i++) {
        var x = xs[i], y = state.task === "regression" ? ys[i][0] : ys[i];
        var p = state.task === "regression" ? at(x[0], y) : at(x[0], x[1]);
        var c = state.task === "regression" ? [40, 40, 40] : COLORS[y % COLORS.length];
        ctx.beginPath();
        ctx.arc(p[0], p[1], ring ? 3.2 : 2.6, 0, 2 * Math.PI);
        ctx.strokeStyle = ring ? "rgb(" + c + ")" : "#fff";
        ctx.lineWidth = ring ? 1.4 : 0.8;
        if (!ring) { ctx.fillStyle = "rgb(" + c + ")"; ctx.fill(); }
        ctx.stroke();
      }
    }
    dots(P.x, P.y, false);
    dots(P.x_val, P.y_val, true);
    if (pic && pic.kind === "curve") {
      ctx.beginPath();
      for (var k = 0; k < pic.x.length; k++) {
        var q = at(pic.x[k], pic.y[k]);
        if (k === 0) ctx.moveTo(q[0], q[1]); else ctx.lineTo(q[0], q[1]);
      }
      ctx.strokeStyle = "rgb(194, 65, 12)";
      ctx.lineWidth = 2.5;
      ctx.stroke();
    }
  }

  function drawLosses() {
    var cv = $("losses"), ctx = cv.getContext("2d"), w = cv.width, h = cv.height, H = pg.history;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    var vals = [];
    H.forEach(function (m) { vals.push(m.train_loss, m.val_loss); });
    vals = vals.filter(function (v) { return v > 0 && isFinite(v); });
    if (!vals.length) return;
    var lo = Math.log10(Math.min.apply(null, vals)), hi = Math.log10(Math.max.apply(null, vals));
    if (hi - lo < 0.3) { lo -= 0.15; hi += 0.15; }
    var last = Math.max(1, H[H.length - 1].step), left = 44, bottom = 22;
    function X(step) { return left + (w - left - 8) * step / last; }
    function Y(v) { return 8 + (h - bottom - 8) * (hi - Math.log10(v)) / (hi - lo); }
    ctx.fillStyle = "#56606e";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(fmt(Math.pow(10, hi), 2), 2, 14);
    ctx.fillText(fmt(Math.pow(10, lo), 2), 2, h - bottom);
    ctx.fillText("step " + last, w - 70, h - 6);
    [["train_loss", "#1f5fbf"], ["val_loss", "#c2410c"]].forEach(function (pair) {
      ctx.beginPath();
      H.forEach(function (m, i) {
        var v = m[pair[0]];
        if (!(v > 0)) return;
        if (i === 0) ctx.moveTo(X(m.step), Y(v)); else ctx.lineTo(X(m.step), Y(v));
      });
      ctx.strokeStyle = pair[1];
      ctx.lineWidth = 2;
      ctx.stroke();
    });
  }

  function drawNorms(norms) {
    var cv = $("norms"), ctx = cv.getContext("2d"), w = cv.width, h = cv.height;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    if (!norms || !norms.length) return;
    var top = Math.max.apply(null, norms) || 1, bw = (w - 20) / norms.length;
    ctx.font = "11px system-ui, sans-serif";
    norms.forEach(function (v, i) {
      var bh = (h - 34) * v / top;
      ctx.fillStyle = "#7c3aed";
      ctx.fillRect(10 + i * bw + 6, h - 18 - bh, bw - 12, bh);
      ctx.fillStyle = "#1b2430";
      ctx.fillText("W[" + (i + 1) + "] " + fmt(v, 3), 10 + i * bw + 6, h - 4);
    });
  }

  /* ------------------------------------------------------------------ controls */
  function exportLinks() {
    var q = "?split=" + $("ex-split").value + "&example=" + Math.max(0, Math.round(Number($("ex-index").value) || 0));
    $("export-model").href = "/api/sessions/" + pg.id + "/export/model";
    $("export-spec").href = "/api/sessions/" + pg.id + "/export/spec" + q;
    return q;
  }

  $("play").addEventListener("click", function () { if (pg.running) pause(); else train(0); });
  $("run").addEventListener("click", function () { train(Math.max(1, Math.round(Number($("run-steps").value) || 1))); });
  $("step").addEventListener("click", function () {
    api("POST", "/api/sessions/" + pg.id + "/step").catch(function (e) { showError(e.message); });
  });
  $("reset").addEventListener("click", function () {
    api("PUT", "/api/sessions/" + pg.id + "/config", pg.state.config).catch(function (e) { showError(e.message); });
  });
  $("settings").addEventListener("submit", function (ev) {
    ev.preventDefault();
    api("PUT", "/api/sessions/" + pg.id + "/config", readConfig()).catch(function (e) { showError(e.message); });
  });
  $("explain").addEventListener("click", function () {
    var q = exportLinks(), frame = $("explain-frame");
    pause().then(function () {
      return api("GET", "/api/sessions/" + pg.id + "/explain" + q);
    }).then(function (page) {
      frame.hidden = false;
      frame.srcdoc = page;
    }).catch(function (e) { showError(e.message); });
  });
  ["ex-split", "ex-index"].forEach(function (id) { $(id).addEventListener("change", exportLinks); });
  $("export-model").addEventListener("focus", exportLinks);
  $("export-spec").addEventListener("focus", exportLinks);
  $("export-model").addEventListener("mousedown", exportLinks);
  $("export-spec").addEventListener("mousedown", exportLinks);
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea" || tag === "button" || tag === "a") return;
    if (ev.key === " ") { ev.preventDefault(); $("play").click(); }
    if (ev.key === "s") $("step").click();
  });
  window.addEventListener("pagehide", function () {
    if (pg.id && navigator.sendBeacon) navigator.sendBeacon("/api/sessions/" + pg.id + "/close");
  });
  start();
})();
