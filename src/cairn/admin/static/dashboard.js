// Cairn dashboard: reads the admin API with the tab's token and fills the page.
// Plain JavaScript, no dependencies. Every value goes in with textContent, never as markup
// (see cairn/admin/dashboard.py for why: the token lives in this tab's sessionStorage).
"use strict";

(function () {
  const TOKEN_KEY = "cairn-admin-token";
  const POLL_MS = 1000;
  const HISTORY_EVERY = 2;
  const MAX_EVENTS = 300;
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"];

  const state = {
    token: null,
    role: null,
    lastSeq: 0,
    eventsLoaded: false,
    status: null,
    histories: null, // node id -> that node's /v1/history (asked through this node)
    nodeIds: [],
    polls: 0,
    timer: null,
    generation: 0,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function num(n, digits) {
    if (n === null || n === undefined) return "–";
    return digits === undefined ? String(n) : Number(n).toFixed(digits);
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, method, body) {
    const init = {
      method: method || "GET",
      headers: { Authorization: "Bearer " + state.token },
      cache: "no-store",
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "the node does not answer (" + err.message + ")");
    }
    let doc = null;
    try { doc = await res.json(); } catch (err) { doc = null; }
    if (!res.ok) {
      const message = doc && doc.error ? doc.error.message : res.status + " " + res.statusText;
      throw new ApiError(res.status, message);
    }
    return doc;
  }

  // -- login ------------------------------------------------------------------------

  function showLogin(message) {
    stopPolling();
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("main").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("who").textContent = "";
    // nothing read with the previous token stays on the page
    for (const id of ["nodes", "regions"]) $(id).tBodies[0].replaceChildren();
    for (const id of ["events", "operators", "keymap"]) $(id).replaceChildren();
    state.lastSeq = 0;
    state.eventsLoaded = false;
    state.status = null;
    state.histories = null;
    state.nodeIds = [];
  }

  async function open(token) {
    state.token = token;
    try {
      const session = await api("/v1/session");
      state.role = session.role;
      $("who").textContent = "token " + session.token_id + " (" + session.name + "), " +
        session.role;
    } catch (err) {
      showLogin(err.status === 401 ? "This token is unknown or revoked." : err.message);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = false;
    startPolling();
  }

  // -- polling ----------------------------------------------------------------------

  function startPolling() {
    stopPolling();
    const generation = state.generation;
    const loop = async () => {
      await poll();
      // a loop whose login ended stops here (another may run for the next login)
      if (generation === state.generation) state.timer = setTimeout(loop, POLL_MS);
    };
    loop();
  }

  function stopPolling() {
    state.generation += 1;
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
  }

  async function poll() {
    const withHistory = state.polls % HISTORY_EVERY === 0;
    const token = state.token;
    state.polls += 1;
    const histories = withHistory ? fetchHistories() : Promise.resolve(state.histories);
    try {
      const [status, nodes, regions, events] = await Promise.all([
        api("/v1/status"),
        api("/v1/nodes"),
        api("/v1/regions"),
        api("/v1/events?since=" + state.lastSeq + "&limit=" + (state.eventsLoaded ? 1000 : 200)),
      ]);
      const byNode = await histories;
      if (state.token !== token) return; // logged out meanwhile: show nothing of it
      state.status = status;
      state.histories = byNode;
      state.nodeIds = nodes.nodes.filter((n) => n.status === "up" || n.status === "draining")
        .map((n) => n.id);
      banner(null);
      renderStatus(status);
      renderNodes(nodes.nodes, byNode);
      renderRegions(regions.regions, byNode);
      renderEvents(events);
    } catch (err) {
      if (state.token !== token) return;
      if (err.status === 401) { showLogin("The token was refused: " + err.message); return; }
      banner(err.status === 503 ? err.message + " (this page keeps trying)" : err.message);
    }
    const byNode = await histories;
    if (withHistory && state.token === token) {
      state.histories = byNode;
      renderHistory(byNode);
    }
  }

  // Every node's history, asked through this node in one request
  // (/v1/histories?nodes=...): the nodes of the last view that are not down or removed,
  // or this node's own before the first view. A node up that does not answer this time
  // (a busy machine) keeps its previous history until the next round, so the charts do
  // not flicker; a node down is left out.
  async function fetchHistories() {
    if (!state.nodeIds.length) {
      const own = await api("/v1/history").catch(() => null);
      return own ? { [own.node_id]: own } : {};
    }
    const ids = state.nodeIds;
    const doc = await api("/v1/histories?nodes=" + ids.join(",")).catch(() => null);
    const byNode = {};
    for (const h of doc ? doc.histories : []) byNode[h.node_id] = h;
    const before = state.histories || {};
    for (const id of ids) if (!byNode[id] && before[id]) byNode[id] = before[id];
    return byNode;
  }

  function banner(message) {
    $("banner").hidden = message === null;
    $("banner").textContent = message || "";
  }

  // -- rendering --------------------------------------------------------------------

  function renderStatus(s) {
    $("cluster").textContent = "cluster " + s.cluster_id + ", answered by node " +
      s.answered_by + ", " + s.regions + " regions, " + s.operators_running + " operators";
    const health = $("health");
    health.textContent = s.health + (s.problems.length ? ": " + s.problems.join("; ") : "");
    health.className = "badge health-" + s.health;
    health.dataset.health = s.health;
    const rules = s.rules;
    $("rules").textContent = rules
      ? rules.replicas + " replicas, spread over '" + rules.location_label + "', " +
        rules.ranges.length + " range rules"
      : "no placement driver: the layout is static";
    const input = $("replicas");
    if (rules && document.activeElement !== input && !input.dataset.touched) {
      input.value = rules.replicas;
    }
    const allowed = state.role === "admin" && s.placement_running;
    input.disabled = !allowed;
    $("replicas-set").disabled = !allowed;
    $("replicas-set").title = allowed ? "" : actionRefusal(s);
  }

  function actionRefusal(s) {
    if (state.role !== "admin") return "needs a token of role admin";
    if (!s || !s.placement_running) return "the placement driver is not running";
    return "";
  }

  function lastSample(histories, id) {
    const doc = histories ? histories[id] : undefined;
    return doc && doc.samples.length ? doc.samples[doc.samples.length - 1] : null;
  }

  function renderNodes(nodes, histories) {
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    for (const n of nodes) {
      const row = el("tr");
      row.dataset.nodeId = n.id;
      row.dataset.status = n.status;
      row.append(el("td", "node " + n.id), el("td", n.labels.zone || "–"));
      row.append(el("td", n.status, "state state-" + n.status));
      row.append(el("td", n.regions), el("td", n.leaders));
      const own = lastSample(histories, n.id);
      row.append(el("td", diskText(n, own)));
      row.append(el("td", own ? bytes(own.rss_bytes) : "–"), el("td", n.client_address || "–"));
      const cell = el("td");
      const drain = el("button", "Drain");
      drain.type = "button";
      drain.disabled = state.role !== "admin" || n.status !== "up" ||
        !(state.status && state.status.placement_running);
      drain.title = drain.disabled ? actionRefusal(state.status) || "the node is not up" : "";
      drain.addEventListener("click", () => drainNode(n.id));
      cell.append(drain);
      row.append(cell);
      body.append(row);
    }
  }

  // Disk: what the placement driver knows of the node, else the node's own last sample.
  function diskText(node, sample) {
    if (node.capacity_bytes !== null) {
      return bytes(node.used_bytes) + " / " + bytes(node.capacity_bytes);
    }
    if (sample && sample.disk) {
      return bytes(sample.disk.data) + " data, " + bytes(sample.disk.free) + " free";
    }
    return "–";
  }

  // A region's write rate: as its leader's history says (every replica applies the
  // same writes), else the highest any node reports.
  function regionWrites(histories, region) {
    if (!histories) return undefined;
    const key = String(region.id);
    const lead = histories[region.leader];
    if (lead && lead.region_writes_per_s[key] !== undefined) return lead.region_writes_per_s[key];
    const seen = Object.values(histories).map((h) => h.region_writes_per_s[key])
      .filter((w) => w !== undefined);
    return seen.length ? Math.max(...seen) : undefined;
  }

  function renderRegions(regions, histories) {
    const map = $("keymap");
    const body = $("regions").tBodies[0];
    map.replaceChildren();
    body.replaceChildren();
    const operators = $("operators");
    operators.replaceChildren();
    for (const r of regions) {
      const span = r.slots ? r.slots[1] - r.slots[0] + 1 : 0;
      const block = el("div", "r" + r.id, "region health-" + r.health);
      block.style.flexGrow = String(Math.max(span, 1));
      block.title = "region " + r.id + " " + r.range + ", leader node " + (r.leader ?? "none") +
        ", " + r.health + (r.operator ? ", " + r.operator : "");
      map.append(block);
      const voters = r.peers.filter((p) => p.role === "voter").map((p) => p.node_id);
      const learners = r.peers.filter((p) => p.role === "learner").map((p) => p.node_id);
      const writes = regionWrites(histories, r);
      const row = el("tr");
      row.dataset.regionId = r.id;
      row.append(
        el("td", "r" + r.id),
        el("td", r.slots ? r.slots[0] + "-" + r.slots[1] : "–"),
        el("td", r.health, "state health-" + r.health),
        el("td", bytes(r.approximate_size)),
        el("td", num(r.approximate_keys)),
        el("td", writes === undefined ? "–" : num(writes, 1)),
        el("td", r.leader === null ? "none" : "node " + r.leader),
        el("td", voters.join(", ") || "–"),
        el("td", learners.join(", ") || "–"),
        el("td", r.operator || ""),
      );
      body.append(row);
      if (r.operator) operators.append(el("li", "region " + r.id + ": " + r.operator));
    }
    if (!operators.children.length) operators.append(el("li", "none", "muted"));
  }

  function renderEvents(page) {
    state.eventsLoaded = true;
    const list = $("events");
    for (const e of page.events) {
      if (e.seq <= state.lastSeq) continue;
      const item = el("li", null, "event kind-" + e.kind);
      item.dataset.kind = e.kind;
      item.dataset.seq = e.seq;
      const when = placementTime(e.time_ms);
      const where = [e.node_id !== null ? "node " + e.node_id : null,
        e.region_id !== null ? "region " + e.region_id : null,
        e.operator_id !== null ? "op " + e.operator_id : null].filter(Boolean).join(" ");
      item.append(el("span", when, "muted"), el("b", e.kind), el("span", where),
        el("span", e.reason, "reason"));
      list.prepend(item);
    }
    state.lastSeq = Math.max(state.lastSeq, page.last_seq);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    if (!page.placement_running && !list.children.length) {
      list.append(el("li", "no placement driver runs here: no events", "muted"));
    }
  }

  // Events carry placement time: milliseconds the placement group has run since the
  // cluster began (not the wall clock), shown as h:mm:ss.s.
  function placementTime(ms) {
    const tenths = Math.floor(ms / 100);
    const seconds = Math.floor(tenths / 10);
    const pad = (n) => String(n).padStart(2, "0");
    return "t " + Math.floor(seconds / 3600) + ":" + pad(Math.floor(seconds / 60) % 60) + ":" +
      pad(seconds % 60) + "." + (tenths % 10);
  }

  // -- charts -----------------------------------------------------------------------

  function color(id) { return PALETTE[(Number(id) - 1) % PALETTE.length]; }

  // One line per node: its throughput and p99 latency from its own history; its commit
  // lag as the leaders of its regions see it (the highest any node reports for it in
  // the same second).
  function renderHistory(histories) {
    const ids = Object.keys(histories || {}).map(Number).sort((a, b) => a - b);
    if (!ids.length) {
      $("history-node").textContent = "(no history answered)";
      return;
    }
    $("history-node").textContent = "(nodes " + ids.join(", ") + ")";
    const line = (id, pick) => ({
      name: "node " + id, color: color(id),
      points: histories[id].samples.map((x) => [x.time_ms, pick(x)]).filter((p) => p[1] !== null),
    });
    lineChart($("chart-ops"), ids.map((id) => line(id, (x) => x.ops_per_s)));
    lineChart($("chart-latency"), ids.map((id) => line(id, (x) => x.latency_us["p99"] ?? null)));
    const lag = {}; // node -> second -> [time_ms, entries]
    for (const id of ids) {
      for (const x of histories[id].samples) {
        const second = Math.floor(x.time_ms / 1000);
        for (const [node, entries] of Object.entries(x.commit_lag)) {
          const at = (lag[node] ??= {});
          if (!at[second] || at[second][1] < entries) at[second] = [x.time_ms, entries];
        }
      }
    }
    lineChart($("chart-lag"), Object.keys(lag).map(Number).sort((a, b) => a - b).map((n) => ({
      name: "node " + n, color: color(n),
      points: Object.values(lag[n]).sort((a, b) => a[0] - b[0]),
    })));
  }

  function lineChart(svg, series) {
    const W = 400, H = 140, L = 44, R = 8, T = 8, B = 20;
    svg.replaceChildren();
    const all = series.flatMap((x) => x.points);
    if (!all.length) {
      svg.append(text(W / 2, H / 2, "no samples yet", "middle"));
      return;
    }
    const t0 = Math.min(...all.map((p) => p[0]));
    const t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
    const top = Math.max(...all.map((p) => p[1]), 1) * 1.1;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (v) => H - B - v / top * (H - T - B);
    svg.append(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    svg.append(svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    svg.append(text(L - 4, T + 8, short(top), "end"), text(L - 4, H - B, "0", "end"));
    svg.append(text(L, H - 4, Math.round((t1 - t0) / 1000) + " s ago", "start"));
    svg.append(text(W - R, H - 4, "now", "end"));
    series.forEach((sr, i) => {
      if (!sr.points.length) return;
      const d = sr.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
      svg.append(svgEl("polyline", { points: d, fill: "none", stroke: sr.color,
        "stroke-width": 1.5 }));
      const label = text(W - R - 4, T + 10 + i * 12, sr.name, "end");
      label.setAttribute("fill", sr.color);
      svg.append(label);
    });
  }

  function text(x, y, content, anchor) {
    const node = svgEl("text", { x, y, "text-anchor": anchor, class: "chart-text" });
    node.textContent = content;
    return node;
  }

  function short(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return v >= 10 ? String(Math.round(v)) : v.toFixed(1);
  }

  // -- actions ----------------------------------------------------------------------

  async function act(what, path, body) {
    const out = $("action-result");
    try {
      const answer = await api(path, "POST", body);
      out.textContent = what + ": " + answer.message;
      out.className = "ok";
    } catch (err) {
      out.textContent = what + " refused: " + (err.status === 403
        ? err.message + " (use a token of role admin)" : err.message);
      out.className = "error";
    }
  }

  function drainNode(id) {
    if (!window.confirm("Drain node " + id + "? Its replicas and leaders move elsewhere.")) {
      return;
    }
    act("drain node " + id, "/v1/nodes/" + id + "/drain", { reason: "dashboard" });
  }

  function setReplicas(event) {
    event.preventDefault();
    const rules = state.status && state.status.rules;
    const replicas = Number($("replicas").value);
    if (!rules || !Number.isInteger(replicas) || replicas < 1) {
      $("action-result").textContent = "replicas: a positive whole number";
      return;
    }
    $("replicas").dataset.touched = "";
    act("replicas " + replicas, "/v1/placement",
      { replicas, location_label: rules.location_label, ranges: rules.ranges });
  }

  // -- start ------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (token) open(token);
    });
    $("logout").addEventListener("click", () => showLogin("Token forgotten."));
    $("replicas").addEventListener("input", () => { $("replicas").dataset.touched = "1"; });
    $("replicas-form").addEventListener("submit", setReplicas);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) open(saved); else showLogin("");
  });
})();
