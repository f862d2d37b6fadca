// stokerd status page: polls /v1/status and renders it. No framework and
// no build step; every value from the server is set as text, never as
// HTML (dataset URLs come from clients).
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const interval = Math.min(10000, Math.max(250, Number(params.get("interval")) || 1000));
  const historyLength = 60;
  const history = new Map(); // stream id -> {last: {t, samples, bytes}, rates: [samples/s]}
  let previous = null; // the last snapshot, for storage rates

  const $ = (id) => document.getElementById(id);

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    n = Number(n) || 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
  }
  function count(n) {
    n = Number(n) || 0;
    if (n >= 1e9) return (n / 1e9).toFixed(2) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n));
  }
  function duration(s) {
    if (s < 0 || !isFinite(s)) return "—";
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }
  function pct(x) { return (100 * x).toFixed(1) + "%"; }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
    return tr;
  }
  function cell(child, cls) {
    const td = el("td", null, cls);
    if (child instanceof Node) td.appendChild(child); else td.textContent = String(child);
    return td;
  }
  function progress(done, total) {
    const wrap = el("span");
    const bar = el("span", null, "progress");
    const fill = el("div");
    const f = total > 0 ? Math.min(1, done / total) : 0;
    fill.style.width = (100 * f).toFixed(1) + "%";
    bar.appendChild(fill);
    wrap.appendChild(bar);
    wrap.appendChild(el("span", total > 0 ? pct(f) : "—", "num"));
    return wrap;
  }
  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 160 28");
    svg.setAttribute("preserveAspectRatio", "none");
    const line = document.createElementNS(ns, "polyline");
    const top = Math.max(1, ...values);
    // Up to a minute of points, drawn from the right; a young stream's
    // few points spread over at least a sixth of the width.
    const span = Math.max(values.length, 10);
    const step = 160 / (span - 1);
    const start = span - values.length;
    const points = values.map((v, i) => ((start + i) * step).toFixed(1) + "," + (27 - (26 * v) / top).toFixed(1));
    line.setAttribute("points", points.join(" "));
    svg.appendChild(line);
    return svg;
  }
  function replace(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function renderNode(s) {
    const n = s.node;
    $("node-name").textContent = n.name;
    document.title = "stokerd · " + n.name;
    $("node-version").textContent = n.version + " · " + n.go_version;
    $("node-uptime").textContent = "up " + duration((s.time_unix_ms - n.started_unix_ms) / 1000);
    const badges = $("node-badges");
    const list = [n.gpus > 0 ? n.gpus + " GPU" : "no GPU"];
    if (n.cufile) list.push("cuFile");
    list.push(n.tls ? "TLS" : "plaintext gRPC");
    list.push(n.auth ? "token auth" : "no auth");
    badges.replaceChildren(...list.map((b) => el("span", b, "badge")));
  }

  function renderCluster(s) {
    const members = s.cluster.members || [];
    const alive = members.filter((m) => m.state === "alive").length;
    const zones = new Set(members.map((m) => m.zone).filter((z) => z));
    $("cluster-summary").textContent = s.cluster.enabled
      ? alive + " of " + members.length + " alive" + (zones.size ? " · " + zones.size + " zone" + (zones.size > 1 ? "s" : "") : "")
      : "single node";
    replace($("members"), members.map((m) => {
      const health = el("span");
      health.appendChild(el("span", null, "dot " + m.state));
      health.appendChild(el("span", m.state));
      const name = el("span", m.name + (m.self ? " (this node)" : ""));
      return row([cell(name), m.zone || "—", cell(health), m.grpc || "—", cell(bytes(m.capacity_bytes), "num")]);
    }));
  }

  function tier(prefix, t) {
    const f = t.capacity > 0 ? Math.min(1, t.bytes / t.capacity) : 0;
    $(prefix + "-bar").style.width = (100 * f).toFixed(1) + "%";
    $(prefix + "-text").textContent = t.capacity > 0
      ? bytes(t.bytes) + " of " + bytes(t.capacity) + " · " + t.entries + " shards"
      : "off";
  }

  function renderCache(s) {
    const c = s.cache;
    tier("memory", c.memory);
    tier("disk", c.disk);
    const gets = c.memory.hits + c.disk.hits + c.misses;
    $("hit-rate").textContent = gets > 0 ? "hit rate " + pct(c.hit_rate) : "no reads yet";
    $("cache-gets").textContent = count(gets) + " (memory " + count(c.memory.hits) + ", disk " + count(c.disk.hits) + ", missed " + count(c.misses) + ")";
    $("cache-evictions").textContent = count(c.memory.evictions) + " memory, " + count(c.disk.evictions) + " disk";
    $("cache-kept").textContent = pct(c.keep_fraction) + " of the active datasets";
    const p = c.pinned;
    $("cache-region").textContent = p.region_bytes > 0
      ? bytes(p.region_bytes) + (p.region_locked ? ", locked" : ", not locked") + (p.region_reason ? " (" + p.region_reason + ")" : "")
      : "Go heap";
    $("cache-leases").textContent = p.shm_leases + " shm leases, " + bytes(p.shm_leased_bytes) + " in " + p.shm_regions + " regions";
    $("cache-faults").textContent = c.corrupt + " corrupt, " + c.errors + " errors";
  }

  function renderStreams(s) {
    const streams = s.streams || [];
    const seen = new Set();
    let totalRate = 0;
    const rows = streams.map((st) => {
      seen.add(st.id);
      let h = history.get(st.id);
      if (!h) {
        h = { last: null, rates: [] };
        history.set(st.id, h);
      }
      let rate;
      if (h.last && s.time_unix_ms > h.last.t) {
        rate = (st.samples - h.last.samples) / ((s.time_unix_ms - h.last.t) / 1000);
        h.byteRate = (st.bytes - h.last.bytes) / ((s.time_unix_ms - h.last.t) / 1000);
        h.rates.push(rate);
        if (h.rates.length > historyLength) h.rates.shift();
      } else {
        const age = (s.time_unix_ms - st.started_unix_ms) / 1000;
        rate = age > 0 ? st.samples / age : 0;
        h.byteRate = age > 0 ? st.bytes / age : 0;
      }
      h.last = { t: s.time_unix_ms, samples: st.samples, bytes: st.bytes };
      totalRate += rate;
      const pos = st.total >= 0 ? progress(st.position, st.total) : el("span", String(st.position) + " (counting)");
      const posText = el("span", " " + count(st.position) + (st.total >= 0 ? " / " + count(st.total) : ""), "num muted");
      const posCell = cell(pos);
      posCell.appendChild(posText);
      const rateText = count(rate) + " samples/s" + (h.byteRate > 0 ? " · " + bytes(h.byteRate) + "/s" : "");
      const stall = cell(duration(st.stall_seconds), st.stall_seconds > 1 ? "stalled num" : "num");
      const tr = row([cell(st.dataset, "url"), cell(st.epoch, "num"), cell(st.rank + " of " + st.world_size, "num"), posCell,
        cell(rateText, "num rate"), cell(sparkline(h.rates)), stall, cell((st.client || "—") + (st.shm ? " (shm)" : ""))]);
      tr.dataset.stream = String(st.id);
      return tr;
    });
    for (const id of history.keys()) if (!seen.has(id)) history.delete(id);
    replace($("streams"), rows);
    $("no-streams").hidden = streams.length > 0;
    $("streams-summary").textContent = streams.length ? streams.length + " open · " + count(totalRate) + " samples/s" : "";
  }

  function renderHints(s) {
    const hints = s.hints || [];
    replace($("hints"), hints.map((h) => {
      const state = el("span", h.state + (h.error ? ": " + h.error : ""), "state-" + h.state);
      const prog = progress(h.bytes_done, h.bytes_total);
      prog.appendChild(el("span", " " + bytes(h.bytes_done) + " of " + bytes(h.bytes_total) + " · " + h.shards_done + "/" + h.shards_total + " shards", "muted num"));
      return row([h.id, cell(h.what, "url"), cell(state), cell(prog), cell(h.state === "running" ? duration(h.eta_seconds) : "—", "num")]);
    }));
    $("no-hints").hidden = hints.length > 0;
  }

  function renderStorage(s) {
    const st = s.storage;
    let rate = "";
    if (previous && s.time_unix_ms > previous.time_unix_ms) {
      const dt = (s.time_unix_ms - previous.time_unix_ms) / 1000;
      rate = " · " + count((st.requests - previous.storage.requests) / dt) + "/s";
      $("storage-bytes").textContent = bytes(st.bytes) + " · " + bytes((st.bytes - previous.storage.bytes) / dt) + "/s";
    } else {
      $("storage-bytes").textContent = bytes(st.bytes);
    }
    $("storage-requests").textContent = count(st.requests) + rate;
    $("storage-ranges").textContent = count(st.range_requests) + " (" + bytes(st.range_bytes) + ")";
    $("storage-latency").textContent = st.reads > 0 ? "p50 " + duration(st.read_p50_seconds) + " · p99 " + duration(st.read_p99_seconds) + " over " + count(st.reads) + " reads" : "no reads yet";
    $("storage-errors").textContent = String(st.read_errors);
    $("peer-reads").textContent = count(s.peers.reads) + " (" + count(s.peers.fallbacks) + " fell back to storage)";
    $("peer-served").textContent = count(s.peers.served) + " shards";
    const counting = s.counting || [];
    $("counting").replaceChildren(...counting.map((c) => el("p", "counting " + c.dataset + ": " + c.done + " of " + c.total + " shards", "muted")));
  }

  function render(s) {
    renderNode(s);
    renderCluster(s);
    renderCache(s);
    renderStreams(s);
    renderHints(s);
    renderStorage(s);
    previous = s;
    $("updated").textContent = "updated " + new Date(s.time_unix_ms).toLocaleTimeString();
    $("error").hidden = true;
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  }

  async function poll() {
    try {
      const r = await fetch("/v1/status", { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status + (r.status === 401 ? ": this server needs a token" : ""));
      render(await r.json());
    } catch (e) {
      $("error").textContent = "Cannot read /v1/status: " + e.message + " (retrying)";
      $("error").hidden = false;
    } finally {
      setTimeout(poll, interval);
    }
  }
  poll();
})();
