/* chainrule explain: the interactive view of one forward pass, backward pass and update.
 *
 * Every number comes from the JSON document embedded beside this script (the
 * output of `chainrule explain --format json`); each is shown through num(path),
 * which records the path of the value in that document (data-key) and its full
 * precision (data-full, and the hover title). Nothing is computed here but the
 * layout: the page draws, it does not do arithmetic.
 *
 * Stages: 0 input; 1..L forward through layer l; L+1 loss; L+2..2L+1 backward
 * through layer L..1 (delta[l], dC/dW[l], dC/db[l]); 2L+2 the update.
 * Keys (on the view, or the whole page when standalone): Right/Left or n/p step,
 * Home/End jump, Enter or Space on a focused neuron or weight selects it.
 */
(function () {
  "use strict";
  if (window.chainruleExplain) return;

  var SVGNS = "http://www.w3.org/2000/svg";

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* A number to p significant digits, without trailing zeros ("full": shortest exact form). */
  function fmt(v, p) {
    var x = Number(v);
    if (!isFinite(x)) return isNaN(x) ? "NaN" : (x > 0 ? "inf" : "-inf");
    if (p === "full" || x === 0) return String(x);
    return String(Number(x.toPrecision(p)));
  }

  /* Bracket notation of the notes (a_j[L], sum_j, delta, phi) as HTML. */
  function pretty(text) {
    return esc(text)
      .replace(/sum_([a-z])/g, "&Sigma;<sub>$1</sub>")
      .replace(/\bdelta\b/g, "&delta;")
      .replace(/\bphi'/g, "&phi;&prime;")
      .replace(/\balpha\b/g, "&alpha;")
      .replace(/\b([a-zA-Z&;]+?)_([a-z0-9]+)\[([^\]]+)\]/g, "<var>$1</var><sub>$2</sub><sup>[$3]</sup>")
      .replace(/\b([a-zA-Z])\[([^\]]+)\]/g, "<var>$1</var><sup>[$2]</sup>")
      .replace(/\b([ay])_([a-z0-9]+)/g, "<var>$1</var><sub>$2</sub>")
      .replace(/\^2/g, "&sup2;")
      .replace(/\^T/g, "<sup>T</sup>")
      .replace(/1\/2 /g, "&frac12; ");
  }

  /* A symbol: base, subscript, layer: sym("z", 1, 2) is z_1[2]. */
  function sym(base, sub, layer) {
    var b = { delta: "&delta;", phi: "&phi;" }[base] || "<var>" + base + "</var>";
    return b + (sub !== undefined && sub !== "" ? "<sub>" + sub + "</sub>" : "") +
      (layer !== undefined ? "<sup>[" + layer + "]</sup>" : "");
  }

  /* The four corners of a band of half-width r around the segment a-b: a weight's click target. */
  function band(a, b, r) {
    var dx = b[0] - a[0], dy = b[1] - a[1], n = Math.sqrt(dx * dx + dy * dy) || 1;
    var ox = -dy / n * r, oy = dx / n * r, sx = dx / n * 22, sy = dy / n * 22;
    var p = [[a[0] + sx + ox, a[1] + sy + oy], [b[0] - sx + ox, b[1] - sy + oy],
             [b[0] - sx - ox, b[1] - sy - oy], [a[0] + sx - ox, a[1] + sy - oy]];
    return p.map(function (q) { return q[0].toFixed(1) + "," + q[1].toFixed(1); }).join(" ");
  }

  function dfrac(top, bottom) {
    return '<span class="crx-frac"><span>&part;' + top + "</span><span>&part;" + bottom + "</span></span>";
  }

  function View(root, options) {
    this.root = root;
    this.options = options || {};
    this.D = JSON.parse(root.querySelector(".crx-data").textContent);
    this.meta = JSON.parse(root.getAttribute("data-meta") || "{}");
    this.L = this.D.layers.length;
    this.batch = Array.isArray(this.D.input[0]);
    this.m = this.D.examples;
    this.stage = 0;
    this.example = 0;
    this.precision = 4;
    this.selected = null;
    this.chainIndex = {};
    var self = this;
    (this.D.weight_chains || []).forEach(function (c, i) {
      self.chainIndex[c.layer + ":" + c.row + ":" + c.column] = i;
    });
    this.stages = [{ kind: "input", name: "Input" }];
    for (var l = 1; l <= this.L; l++) this.stages.push({ kind: "forward", l: l, name: "Forward, layer " + l });
    this.stages.push({ kind: "loss", name: "Loss" });
    for (l = this.L; l >= 1; l--) this.stages.push({ kind: "backward", l: l, name: "Backward, layer " + l });
    this.stages.push({ kind: "update", name: "Update" });
    this.build();
    this.render();
  }

  View.prototype.get = function (path) {
    var v = this.D;
    String(path).split(".").forEach(function (p) { v = v[p]; });
    return v;
  };
  /* The path of one example's entry: "layers.0.z" -> "layers.0.z.e" in a batch. */
  View.prototype.ex = function (path) { return this.batch ? path + "." + this.example : path; };

  /* One number of the JSON, by its path; factor=true puts a negative one in parentheses. */
  View.prototype.num = function (path, factor) {
    var v = this.get(path);
    var full = typeof v === "number" ? String(v) : String(v);
    var s = '<span class="crx-num" data-key="' + esc(path) + '" data-full="' + esc(full) + '" title="' +
      esc(full) + '">' + esc(fmt(v, this.precision)) + "</span>";
    return factor && Number(v) < 0 ? "(" + s + ")" : s;
  };
  View.prototype.vec = function (path) {
    var v = this.get(path), out = [];
    for (var i = 0; i < v.length; i++) out.push(this.num(path + "." + i));
    return '<span class="crx-vec">[' + out.join(", ") + "]</span>";
  };
  View.prototype.mat = function (path) {
    var M = this.get(path), rows = "";
    for (var i = 0; i < M.length; i++) {
      rows += "<tr>";
      for (var j = 0; j < M[i].length; j++) rows += "<td>" + this.num(path + "." + i + "." + j) + "</td>";
      rows += "</tr>";
    }
    return '<table class="crx-mat"><tbody>' + rows + "</tbody></table>";
  };
  View.prototype.line = function (html) { return '<div class="crx-eq">' + html + "</div>"; };

  /* ------------------------------------------------------------------ where we are */
  View.prototype.idx = function () { return this.stage; };
  View.prototype.fwd = function (l) { return this.stage >= l; };
  View.prototype.lossDone = function () { return this.stage >= this.L + 1; };
  View.prototype.back = function (l) { return this.stage >= this.L + 1 + (this.L - l + 1); };
  View.prototype.updated = function () { return this.stage === 2 * this.L + 2; };

  /* ---------------------------------------------------------------------- the shell */
  View.prototype.build = function () {
    var self = this, D = this.D, root = this.root;
    var sizes = D.sizes.join("-");
    var who = this.batch ? "a batch of m = " + this.m + " examples" : "one example";
    var exOptions = "";
    for (var e = 0; e < this.m; e++) exOptions += '<option value="' + e + '">' + (e + 1) + "</option>";
    var precOptions = [2, 3, 4, 6, 9, "full"].map(function (p) {
      return '<option value="' + p + '"' + (p === 4 ? " selected" : "") + ">" + p + "</option>";
    }).join("");
    var steps = this.stages.map(function (s, i) {
      return '<li><button type="button" class="crx-step" data-stage="' + i + '">' + esc(s.name) + "</button></li>";
    }).join("");
    var shell = document.createElement("div");
    shell.className = "crx-shell";
    shell.innerHTML =
      "<header><h1>" + esc(root.getAttribute("data-title") || "Backpropagation, step by step") + "</h1>" +
      '<p class="crx-meta">Network ' + esc(sizes) + ", " + esc(who) + ", loss <code>" + esc(D.loss_name) +
      "</code>" + (D.fused ? " (fused: <code>" + esc(D.fused) + "</code>)" : "") + ", learning rate &alpha; = " +
      this.num("learning_rate") + ".</p></header>" +
      '<div class="crx-toolbar" role="toolbar" aria-label="Steps of backpropagation">' +
      '<button type="button" data-act="first" aria-label="First step (Home)" title="First step (Home)">&laquo; First</button>' +
      '<button type="button" data-act="prev" aria-label="Previous step (Left arrow)" title="Previous step (Left arrow)">&#x25C0; Back</button>' +
      '<button type="button" data-act="next" aria-label="Next step (Right arrow)" title="Next step (Right arrow)">Next &#x25B6;</button>' +
      '<button type="button" data-act="last" aria-label="Last step (End)" title="Last step (End)">Last &raquo;</button>' +
      '<span class="crx-status" aria-live="polite"></span>' +
      '<span class="crx-choices">' +
      (this.m > 1 ? '<label>Example <select class="crx-example">' + exOptions + "</select></label>" : "") +
      '<label>Digits <select class="crx-precision">' + precOptions + "</select></label></span></div>" +
      '<ol class="crx-steps">' + steps + "</ol>" +
      '<div class="crx-main"><div class="crx-net"></div><div class="crx-panel">' +
      '<section class="crx-stage-panel" aria-live="polite"></section>' +
      '<section class="crx-detail"></section></div></div>' +
      '<footer class="crx-help">Keys: &#x2190; &#x2192; (or p, n) step, Home / End jump; Tab to a neuron or ' +
      "a weight and press Enter to see its numbers. Hover a number for its full precision. " +
      "Check: largest difference from the autodiff engine " + this.num("check.autodiff") +
      ", from central finite differences " + this.num("check.finite_differences") + ".</footer>";
    root.appendChild(shell);
    this.el = {
      status: shell.querySelector(".crx-status"),
      net: shell.querySelector(".crx-net"),
      stagePanel: shell.querySelector(".crx-stage-panel"),
      detail: shell.querySelector(".crx-detail"),
      steps: shell.querySelectorAll(".crx-step")
    };
    shell.querySelector(".crx-toolbar").addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-act]");
      if (b) self.act(b.getAttribute("data-act"));
    });
    shell.querySelector(".crx-steps").addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-stage]");
      if (b) self.go(Number(b.getAttribute("data-stage")));
    });
    var exSel = shell.querySelector(".crx-example");
    if (exSel) exSel.addEventListener("change", function () { self.example = Number(exSel.value); self.render(); });
    var prec = shell.querySelector(".crx-precision");
    prec.addEventListener("change", function () {
      self.precision = prec.value === "full" ? "full" : Number(prec.value);
      self.reformat();
    });
    var keyTarget = this.options.standalone ? document : root;
    keyTarget.addEventListener("keydown", function (ev) { self.key(ev); });
    this.el.net.addEventListener("click", function (ev) { self.pick(ev.target); });
    this.el.net.addEventListener("keydown", function (ev) {
      if ((ev.key === "Enter" || ev.key === " ") && ev.target.getAttribute("data-pick")) {
        ev.preventDefault();
        self.pick(ev.target);
      }
    });
  };

  View.prototype.key = function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "select" || tag === "input" || tag === "textarea" || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    var acts = { ArrowRight: "next", ArrowLeft: "prev", n: "next", p: "prev", Home: "first", End: "last" };
    if (acts[ev.key]) {
      ev.preventDefault();
      this.act(acts[ev.key]);
    }
  };

  View.prototype.act = function (what) {
    var last = this.stages.length - 1;
    var to = { first: 0, prev: this.stage - 1, next: this.stage + 1, last: last }[what];
    this.go(Math.max(0, Math.min(last, to)));
  };
  View.prototype.go = function (i) { this.stage = i; this.render(); };

  View.prototype.pick = function (target) {
    var el = target.closest ? target.closest("[data-pick]") : null;
    if (!el) return;
    var p = el.getAttribute("data-pick").split(",").map(Number);
    this.selected = p.length === 2 ? { kind: "neuron", l: p[0], j: p[1] } : { kind: "weight", l: p[0], j: p[1], k: p[2] };
    this.render();
    var again = this.el.net.querySelector('[data-pick="' + p.join(",") + '"]');
    if (again) again.focus();
  };

  View.prototype.reformat = function () {
    var p = this.precision;
    this.root.querySelectorAll(".crx-num").forEach(function (el) {
      el.textContent = fmt(el.getAttribute("data-full"), p);
    });
  };

  View.prototype.render = function () {
    var s = this.stages[this.stage];
    this.el.status.textContent = "Step " + (this.stage + 1) + " of " + this.stages.length + ": " + s.name;
    for (var i = 0; i < this.el.steps.length; i++) {
      var b = this.el.steps[i];
      if (i === this.stage) b.setAttribute("aria-current", "step"); else b.removeAttribute("aria-current");
      b.classList.toggle("crx-done", i < this.stage);
    }
    this.el.net.innerHTML = this.svg();
    this.el.stagePanel.innerHTML = "<h2>" + esc(s.name) + "</h2>" + this.stageHtml(s);
    this.el.detail.innerHTML = this.detailHtml();
  };

  /* ----------------------------------------------------------------------- drawing */
  View.prototype.svg = function () {
    var D = this.D, L = this.L, self = this, sizes = D.sizes;
    var gap = 200, dy = 96, top = 64, left = 70;
    var nmax = Math.max.apply(null, sizes);
    var W = left + L * gap + 150, H = top + (nmax - 1) * dy + 112;
    var pos = sizes.map(function (n, l) {
      var ys = [];
      for (var j = 0; j < n; j++) ys.push(top + ((nmax - n) / 2 + j) * dy);
      return ys.map(function (y) { return [left + l * gap, y]; });
    });
    var out = [];
    out.push('<svg xmlns="' + SVGNS + '" viewBox="0 0 ' + W + " " + H + '" role="group" aria-label="The network" style="min-width:' + Math.round(W * 0.85) + 'px">');
    var cur = this.stages[this.stage];
    if (cur.l !== undefined) {
      var cx = left + cur.l * gap;
      out.push('<rect class="crx-band crx-band-' + cur.kind + '" x="' + (cx - gap / 2 + 8) + '" y="8" width="' + (gap - 16) + '" height="' + (H - 16) + '" rx="10"/>');
    }
    var lossNow = this.lossDone();
    for (var l = 1; l <= L; l++) {
      var key = "layers." + (l - 1);
      var grads = this.back(l);
      var Wm = this.updated() ? D.layers[l - 1].weights_after : D.layers[l - 1].weights;
      var G = D.layers[l - 1].grad_weights;
      var wmax = 0, gmax = 0;
      Wm.forEach(function (r) { r.forEach(function (w) { wmax = Math.max(wmax, Math.abs(w)); }); });
      G.forEach(function (r) { r.forEach(function (g) { gmax = Math.max(gmax, Math.abs(g)); }); });
      for (var j = 0; j < sizes[l]; j++) {
        for (var k = 0; k < sizes[l - 1]; k++) {
          var a = pos[l - 1][k], b = pos[l][j], w = Wm[j][k], g = G[j][k];
          var sel = this.selected && this.selected.kind === "weight" && this.selected.l === l && this.selected.j === j && this.selected.k === k;
          var cls = "crx-edge " + (w >= 0 ? "crx-pos" : "crx-neg") + (sel ? " crx-sel" : "");
          var width = grads && !this.updated() ? 0.8 + 5 * Math.abs(g) / (gmax || 1) : 0.6 + 3.4 * Math.abs(w) / (wmax || 1);
          if (grads && !this.updated()) cls += " crx-gradedge " + (g >= 0 ? "crx-gpos" : "crx-gneg");
          var name = "w_" + (j + 1) + (k + 1) + "[" + l + "]";
          var tip = name + " = " + w + (grads ? ", dC/dw = " + g : "");
          out.push('<line class="' + cls + '" x1="' + a[0] + '" y1="' + a[1] + '" x2="' + b[0] + '" y2="' + b[1] + '" stroke-width="' + width.toFixed(2) + '"/>');
          out.push('<polygon class="crx-hit" data-pick="' + l + "," + j + "," + k + '" tabindex="0" role="button" aria-label="weight ' + name + '" points="' + band(a, b, 6) + '"><title>' + esc(tip) + "</title></polygon>");
          if (sel) {
            var t = 0.5, mx = a[0] + t * (b[0] - a[0]), my = a[1] + t * (b[1] - a[1]);
            var wk = (this.updated() ? key + ".weights_after." : key + ".weights.") + j + "." + k;
            out.push('<text class="crx-edgelabel" x="' + mx + '" y="' + (my - 6) + '" text-anchor="middle">' + name + " = " + this.svgNum(wk) + "</text>");
            if (grads) out.push('<text class="crx-edgelabel" x="' + mx + '" y="' + (my + 10) + '" text-anchor="middle">dC/dw = ' + this.svgNum(key + ".grad_weights." + j + "." + k) + "</text>");
          }
        }
      }
    }
    for (l = 0; l <= L; l++) {
      var head = l === 0 ? "input a[0] = x" : "layer " + l + ": " + D.layers[l - 1].activation;
      out.push('<text class="crx-colhead" x="' + (left + l * gap) + '" y="26" text-anchor="middle">' + esc(head) + "</text>");
      var dmax = 0;
      if (l > 0 && this.back(l)) {
        var dl = this.get(this.ex("layers." + (l - 1) + ".delta"));
        dl.forEach(function (d) { dmax = Math.max(dmax, Math.abs(d)); });
      }
      for (j = 0; j < sizes[l]; j++) {
        var p = pos[l][j], base = "layers." + (l - 1);
        var selN = this.selected && this.selected.kind === "neuron" && this.selected.l === l && this.selected.j === j;
        var fill = "crx-n0";
        var style = "";
        if (l > 0 && this.back(l)) {
          var dv = this.get(this.ex(base + ".delta"))[j];
          fill = dv >= 0 ? "crx-dpos" : "crx-dneg";
          style = ' fill-opacity="' + (0.25 + 0.75 * Math.abs(dv) / (dmax || 1)).toFixed(2) + '"';
        } else if (l === 0 || this.fwd(l)) {
          fill = "crx-n1";
        }
        var label = l === 0 ? "x" + (j + 1) : "n" + (j + 1);
        out.push('<g class="crx-neuron' + (selN ? " crx-sel" : "") + '" data-pick="' + l + "," + j + '" tabindex="0" role="button" aria-label="neuron ' + (j + 1) + " of layer " + l + '">' +
          '<rect class="crx-nhit" x="' + (p[0] - 36) + '" y="' + (p[1] - 22) + '" width="72" height="' + (26 + 14 * 3 + 10) + '"/>' +
          '<circle class="' + fill + '" cx="' + p[0] + '" cy="' + p[1] + '" r="20"' + style + "/>" +
          '<text class="crx-nlabel" x="' + p[0] + '" y="' + (p[1] + 4) + '" text-anchor="middle">' + label + "</text>");
        var lines = [];
        if (l === 0) lines.push(["x", this.ex("input") + "." + j]);
        else {
          if (this.fwd(l)) {
            lines.push(["z", this.ex(base + ".z") + "." + j]);
            lines.push(["a", this.ex(base + ".a") + "." + j]);
          }
          if (this.back(l)) lines.push(["\u03b4", this.ex(base + ".delta") + "." + j]);
        }
        for (var i = 0; i < lines.length; i++) {
          out.push('<text class="crx-nval" x="' + p[0] + '" y="' + (p[1] + 36 + 14 * i) + '" text-anchor="middle">' + lines[i][0] + " " + this.svgNum(lines[i][1]) + "</text>");
        }
        out.push("</g>");
        if (l === L && lossNow) {
          out.push('<text class="crx-nval" x="' + (p[0] + 30) + '" y="' + (p[1] + 4) + '">y ' + this.svgNum(this.ex("target") + "." + j) + "</text>");
        }
      }
    }
    if (lossNow) out.push('<text class="crx-loss" x="' + (left + L * gap + 30) + '" y="' + (H - 10) + '">C = ' + this.svgNum("loss") + "</text>");
    out.push("</svg>");
    return out.join("");
  };

  View.prototype.svgNum = function (path) {
    var v = this.get(path);
    return '<tspan class="crx-num" data-key="' + esc(path) + '" data-full="' + esc(String(v)) + '">' + esc(fmt(v, this.precision)) + "</tspan>";
  };

  /* ------------------------------------------------------------------ stage panel */
  View.prototype.stageHtml = function (s) {
    var D = this.D, L = this.L, out = [], self = this;
    var m = this.batch ? " (example " + (this.example + 1) + " of " + this.m + ")" : "";
    if (s.kind === "input") {
      out.push("<p>The input is the activation of layer 0" + esc(m) + ".</p>");
      out.push(this.line(sym("a", "", 0) + " = <var>x</var> = " + this.vec(this.ex("input"))));
      out.push(this.line("<var>y</var> = " + this.vec(this.ex("target"))));
      return out.join("");
    }
    if (s.kind === "forward") {
      var l = s.l, key = "layers." + (l - 1), layer = D.layers[l - 1];
      var prev = l === 1 ? this.ex("input") : this.ex("layers." + (l - 2) + ".a");
      out.push("<p>" + sym("z", "", l) + " = " + sym("W", "", l) + " " + sym("a", "", l - 1) +
        (layer.bias ? " + " + sym("b", "", l) : "") + ", " + sym("a", "", l) + " = " +
        esc(layer.activation) + "(" + sym("z", "", l) + ")" + esc(m) + ".</p>");
      out.push(this.line(sym("z", "", l) + " = " + this.mat(key + ".weights") + " " + this.vec(prev) +
        (layer.bias ? " + " + this.vec(key + ".bias") : "") + " = " + this.vec(this.ex(key + ".z"))));
      out.push(this.line(sym("a", "", l) + " = " + esc(layer.activation) + "(" + sym("z", "", l) + ") = " + this.vec(this.ex(key + ".a"))));
      return out.join("");
    }
    if (s.kind === "loss") {
      out.push("<p>" + sym("C", "") + " = " + pretty((this.meta.C || "").replace(/\[L\]/g, "[" + L + "]")) +
        " per example" + (this.batch ? ", averaged over the m = " + this.m + " examples" : "") + ".</p>");
      if (D.fused) out.push("<p>The library computes it as <code>" + esc(D.fused) + "</code> from " + sym("z", "", L) + ", which is stable for any logit.</p>");
      out.push(this.line(sym("C", "") + " = " + this.num("loss")));
      out.push(this.line(dfrac("C", sym("a", "", L)) + " = " + this.vec(this.ex("dC_da_L"))));
      return out.join("");
    }
    if (s.kind === "backward") return this.backwardHtml(s.l, m);
    out.push("<p>" + sym("W", "", "l") + " &larr; " + sym("W", "", "l") + " &minus; &alpha; " + dfrac("C", sym("W", "", "l")) +
      (D.update_bias ? ", " + sym("b", "", "l") + " &larr; " + sym("b", "", "l") + " &minus; &alpha; " + dfrac("C", sym("b", "", "l")) : "; the biases stay fixed") +
      ", &alpha; = " + this.num("learning_rate") + ".</p>");
    D.layers.forEach(function (layer, i) {
      var key = "layers." + i, l = i + 1;
      out.push(self.line(sym("W", "", l) + " &larr; " + self.mat(key + ".weights_after")));
      if (layer.bias && D.update_bias) out.push(self.line(sym("b", "", l) + " &larr; " + self.vec(key + ".bias_after")));
    });
    if (D.losses) {
      out.push("<p>The loss over " + (D.losses.length - 1) + " steps (before each step, and after the last):</p>");
      out.push(this.line(this.vec("losses")));
    }
    return out.join("");
  };

  View.prototype.backwardHtml = function (l, m) {
    var D = this.D, L = this.L, key = "layers." + (l - 1), layer = D.layers[l - 1], out = [];
    var phi = this.meta.phi ? this.meta.phi[l - 1] : "";
    if (l === L && D.fused) {
      out.push("<p>Output layer: " + esc(layer.activation) + " with " + esc(D.loss_name) + " is a fused pair, so the " +
        "&phi;&prime; and &part;C/&part;a factors cancel: " + sym("delta", "", L) + " = " + (this.batch ? "(1/m) " : "") +
        "(" + sym("a", "", L) + " &minus; <var>y</var>)" + esc(m) + ".</p>");
    } else if (l === L) {
      out.push("<p>Output layer: " + sym("delta", "", L) + " = " + dfrac("C", sym("a", "", L)) + " &odot; &phi;&prime;(" + sym("z", "", L) + ")" + esc(m) + ".</p>");
      out.push(this.line(dfrac("C", sym("a", "", L)) + " = " + this.vec(this.ex("dC_da_L"))));
    } else {
      out.push("<p>Hidden layer: " + sym("delta", "", l) + " = (" + sym("W", "", l + 1) + "<sup>T</sup> " + sym("delta", "", l + 1) + ") &odot; &phi;&prime;(" + sym("z", "", l) + ")" + esc(m) + ".</p>");
      out.push(this.line(sym("W", "", l + 1) + "<sup>T</sup> " + sym("delta", "", l + 1) + " = " + this.vec(this.ex(key + ".W_next_T_delta_next"))));
    }
    if (layer.phi_prime) {
      out.push(this.line("&phi;&prime;(" + sym("z", "", l) + ") = " + pretty(String(phi).replace(/\{z\}/g, "z[" + l + "]").replace(/\{a\}/g, "a[" + l + "]")) + " = " + this.vec(this.ex(key + ".phi_prime"))));
    }
    if (layer.softmax_jacobian) {
      out.push('<p class="crx-jac-title">Softmax Jacobian of layer ' + l + ", " + dfrac(sym("a", "j", l), sym("z", "i", l)) +
        " = " + sym("a", "j", l) + " (&delta;<sub>ij</sub> &minus; " + sym("a", "i", l) + ") (row <var>i</var>, column <var>j</var>)" + esc(m) + ":</p>");
      out.push('<div class="crx-jacobian">' + this.mat(this.ex(key + ".softmax_jacobian")) + "</div>");
    }
    out.push(this.line(sym("delta", "", l) + " = " + this.vec(this.ex(key + ".delta"))));
    var summed = this.batch ? ", summed over the m = " + this.m + " examples" : "";
    out.push("<p>Gradients: " + dfrac("C", sym("W", "", l)) + " = " + sym("delta", "", l) + " " + sym("a", "", l - 1) + "<sup>T</sup>" +
      (layer.bias ? ", " + dfrac("C", sym("b", "", l)) + " = " + sym("delta", "", l) : "") + esc(summed) + ".</p>");
    out.push(this.line(dfrac("C", sym("W", "", l)) + " = " + this.mat(key + ".grad_weights")));
    if (layer.bias) out.push(this.line(dfrac("C", sym("b", "", l)) + " = " + this.vec(key + ".grad_bias")));
    return out.join("");
  };

  /* ------------------------------------------------------------------ detail panel */
  View.prototype.detailHtml = function () {
    var s = this.selected;
    if (!s) return '<p class="crx-hint">Click (or Tab to and press Enter on) a neuron to see its equations, or a weight to see its gradient as a chain of factors.</p>';
    return s.kind === "neuron" ? this.neuronHtml(s.l, s.j) : this.weightHtml(s.l, s.j, s.k);
  };

  View.prototype.neuronHtml = function (l, j) {
    var D = this.D, L = this.L, out = [], J = j + 1;
    if (l === 0) {
      return "<h3>Input " + J + "</h3>" + this.line(sym("a", J, 0) + " = " + sym("x", J) + " = " + this.num(this.ex("input") + "." + j));
    }
    var key = "layers." + (l - 1), layer = D.layers[l - 1], n0 = D.sizes[l - 1];
    out.push("<h3>Neuron " + J + " of layer " + l + " (" + esc(layer.activation) + ")</h3>");
    if (!this.fwd(l)) return out.join("") + '<p class="crx-hint">Step forward to layer ' + l + " to compute it.</p>";
    var prev = l === 1 ? this.ex("input") : this.ex("layers." + (l - 2) + ".a");
    var symTerms = [], numTerms = [];
    for (var k = 0; k < n0; k++) {
      symTerms.push(sym("w", J + "" + (k + 1), l) + " " + sym("a", k + 1, l - 1));
      numTerms.push(this.num(key + ".weights." + j + "." + k, true) + " &times; " + this.num(prev + "." + k, true));
    }
    if (layer.bias) {
      symTerms.push(sym("b", J, l));
      numTerms.push(this.num(key + ".bias." + j, true));
    }
    out.push(this.line(sym("z", J, l) + " = " + symTerms.join(" + ")));
    out.push(this.line("= " + numTerms.join(" + ") + " = " + this.num(this.ex(key + ".z") + "." + j)));
    out.push(this.line(sym("a", J, l) + " = " + esc(layer.activation) + "(" + sym("z", J, l) + ") = " + this.num(this.ex(key + ".a") + "." + j)));
    if (!this.back(l)) return out.join("") + '<p class="crx-hint">Step on to the backward pass to see ' + sym("delta", J, l) + ".</p>";
    var delta = this.num(this.ex(key + ".delta") + "." + j);
    if (layer.phi_prime) out.push(this.line("&phi;&prime;(" + sym("z", J, l) + ") = " + this.num(this.ex(key + ".phi_prime") + "." + j)));
    if (l === L && D.fused) {
      out.push(this.line(sym("delta", J, L) + " = " + (this.batch ? "(1/m) " : "") + "(" + sym("a", J, L) + " &minus; " + sym("y", J) + ") = " +
        (this.batch ? "(1/" + this.num("examples") + ") " : "") + "(" + this.num(this.ex(key + ".a") + "." + j) + " &minus; " +
        this.num(this.ex("target") + "." + j, true) + ") = " + delta));
    } else {
      var g, gsym;
      if (l === L) {
        gsym = function (i) { return dfrac("C", sym("a", i, L)); };
        g = function (i) { return this.num(this.ex("dC_da_L") + "." + i, true); }.bind(this);
      } else {
        var up = "layers." + l, terms = [], nums = [];
        for (var i = 0; i < D.sizes[l + 1]; i++) {
          terms.push(sym("w", (i + 1) + "" + J, l + 1) + " " + sym("delta", i + 1, l + 1));
          nums.push(this.num(up + ".weights." + i + "." + j, true) + " &times; " + this.num(this.ex(up + ".delta") + "." + i, true));
        }
        out.push(this.line("(" + sym("W", "", l + 1) + "<sup>T</sup> " + sym("delta", "", l + 1) + ")<sub>" + J + "</sub> = " + terms.join(" + ")));
        out.push(this.line("= " + nums.join(" + ") + " = " + this.num(this.ex(key + ".W_next_T_delta_next") + "." + j)));
        gsym = function (i) { return "(" + sym("W", "", l + 1) + "<sup>T</sup> " + sym("delta", "", l + 1) + ")<sub>" + i + "</sub>"; };
        g = function (i) { return this.num(this.ex(key + ".W_next_T_delta_next") + "." + i, true); }.bind(this);
      }
      if (layer.softmax_jacobian) {
        var st = [], sn = [];
        for (var q = 0; q < D.sizes[l]; q++) {
          st.push(gsym(q + 1) + " " + dfrac(sym("a", q + 1, l), sym("z", J, l)));
          sn.push(g(q) + " &times; " + this.num(this.ex(key + ".softmax_jacobian") + "." + j + "." + q, true));
        }
        out.push(this.line(sym("delta", J, l) + " = " + st.join(" + ")));
        out.push(this.line("= " + sn.join(" + ") + " = " + delta));
      } else {
        out.push(this.line(sym("delta", J, l) + " = " + gsym(J) + " &times; &phi;&prime;(" + sym("z", J, l) + ") = " + g(j) +
          " &times; " + this.num(this.ex(key + ".phi_prime") + "." + j, true) + " = " + delta));
      }
    }
    if (layer.bias) {
      out.push(this.line(dfrac("C", sym("b", J, l)) + " = " + sym("delta", J, l) + (this.batch ? " summed over the examples" : "") +
        " = " + this.num(key + ".grad_bias." + j)));
      if (this.updated() && D.update_bias) {
        out.push(this.line(sym("b", J, l) + " &larr; " + this.num(key + ".bias." + j) + " &minus; " + this.num("learning_rate") +
          " &times; " + this.num(key + ".grad_bias." + j, true) + " = " + this.num(key + ".bias_after." + j)));
      }
    }
    return out.join("");
  };

  View.prototype.weightHtml = function (l, j, k) {
    var D = this.D, L = this.L, out = [], J = j + 1, K = k + 1, key = "layers." + (l - 1);
    var w = sym("w", J + "" + K, l);
    out.push("<h3>Weight " + w + "</h3><p>From neuron " + K + " of layer " + (l - 1) + " to neuron " + J + " of layer " + l + ".</p>");
    out.push(this.line(w + " = " + this.num(key + ".weights." + j + "." + k)));
    if (!this.back(l)) return out.join("") + '<p class="crx-hint">Step on to the backward pass through layer ' + l + " to see its gradient.</p>";
    out.push(this.line(dfrac("C", w) + " = " + dfrac("C", sym("a", J, l)) + " &middot; " + dfrac(sym("a", J, l), sym("z", J, l)) +
      " &middot; " + dfrac(sym("z", J, l), w) + " = " + sym("delta", J, l) + " " + sym("a", K, l - 1)));
    var ci = this.chainIndex[l + ":" + J + ":" + K];
    var ak = sym("a", K, l - 1);
    if (ci === undefined) {
      var prev = l === 1 ? this.ex("input") : this.ex("layers." + (l - 2) + ".a");
      out.push(this.line("= " + this.num(this.ex(key + ".delta") + "." + j, true) + " &times; " + this.num(prev + "." + k, true) + (this.batch ? " (this example)" : "")));
    } else {
      var c = "weight_chains." + ci + ".examples." + this.example, row = this.get(c);
      var end = this.num(c + ".a_prev", true) + " = " + this.num(c + ".product");
      var mm = this.batch ? "(1/m) " : "";
      if (this.batch) out.push("<p>Example " + (this.example + 1) + " of " + this.m + ":</p>");
      if (row.a !== undefined) {
        out.push(this.line("= " + mm + "(" + sym("a", J, l) + " &minus; " + sym("y", J) + ") &times; " + ak));
        out.push(this.line("= " + mm + "(" + this.num(c + ".a") + " &minus; " + this.num(c + ".y", true) + ") &times; " + end));
      } else if (row.softmax_terms) {
        var tn = row.softmax_terms.map(function (t, i) {
          return this.num(c + ".softmax_terms." + i + ".0", true) + " &times; " + this.num(c + ".softmax_terms." + i + ".1", true);
        }, this);
        out.push(this.line("= (&Sigma;<sub>i</sub> " + dfrac("C", sym("a", "i", l)) + " " + dfrac(sym("a", "i", l), sym("z", J, l)) + ") &times; " + ak));
        out.push(this.line("= (" + tn.join(" + ") + ") &times; " + end));
        out.push(this.line("= " + this.num(c + ".delta", true) + " &times; " + end));
      } else if (row.terms) {
        var ts = row.terms.map(function (t, i) { return sym("w", (i + 1) + "" + J, l + 1) + " " + sym("delta", i + 1, l + 1); });
        var tv = row.terms.map(function (t, i) {
          return this.num(c + ".terms." + i + ".0", true) + " &times; " + this.num(c + ".terms." + i + ".1", true);
        }, this);
        out.push(this.line("= (" + ts.join(" + ") + ") &times; &phi;&prime;(" + sym("z", J, l) + ") &times; " + ak));
        out.push(this.line("= (" + tv.join(" + ") + ") &times; " + this.num(c + ".phi_prime", true) + " &times; " + this.num(c + ".a_prev", true)));
        out.push(this.line("= " + this.num(c + ".back", true) + " &times; " + this.num(c + ".phi_prime", true) + " &times; " + end));
      } else {
        out.push(this.line("= " + dfrac("C", sym("a", J, l)) + " &times; &phi;&prime;(" + sym("z", J, l) + ") &times; " + ak));
        out.push(this.line("= " + this.num(c + ".dC_da", true) + " &times; " + this.num(c + ".phi_prime", true) + " &times; " + end));
      }
      if (this.batch) {
        var parts = [];
        for (var e = 0; e < this.m; e++) parts.push(this.num("weight_chains." + ci + ".examples." + e + ".product", true));
        out.push(this.line(dfrac("C", w) + " = sum over the examples = " + parts.join(" + ") + " = " + this.num(key + ".grad_weights." + j + "." + k)));
      }
    }
    if (ci === undefined || !this.batch) out.push(this.line(dfrac("C", w) + " = " + this.num(key + ".grad_weights." + j + "." + k) + (this.batch ? " (summed over the examples)" : "")));
    if (this.updated()) {
      out.push(this.line(w + " &larr; " + w + " &minus; &alpha; " + dfrac("C", w) + " = " + this.num(key + ".weights." + j + "." + k) +
        " &minus; " + this.num("learning_rate") + " &times; " + this.num(key + ".grad_weights." + j + "." + k, true) + " = " +
        this.num(key + ".weights_after." + j + "." + k)));
    } else {
      out.push('<p class="crx-hint">Step to the update to see the new value.</p>');
    }
    return out.join("");
  };

  window.chainruleExplain = {
    fmt: fmt,
    mount: function (id, options) {
      var root = document.getElementById(id);
      if (!root || root.getAttribute("data-mounted")) return null;
      root.setAttribute("data-mounted", "1");
      var view = new View(root, options);
      root.chainruleView = view;
      return view;
    }
  };
})();
