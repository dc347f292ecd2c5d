// vsplab teaching view: live updates by polling the server's JSON; no libraries, no build step.
"use strict";

async function json(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

// Topology: redraw when the server says something it draws has changed (containers, BGP, VSC state).
function liveTopology(wrap) {
  let version = wrap.dataset.version;
  setInterval(async () => {
    try {
      const v = await json("/api/version");
      if (v.version === version) return;
      const r = await fetch(wrap.dataset.live, { cache: "no-store" });
      if (!r.ok) return;
      wrap.innerHTML = await r.text();
      version = v.version;
      const counts = document.getElementById("counts");
      if (counts) counts.textContent = counts.textContent.replace(/\d+ hosts, \d+ containers/,
        v.hosts + " hosts, " + v.containers + " containers");
    } catch (e) { /* the lab may be busy; try again next tick */ }
  }, 2000);
}

const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#7f7f7f"];

// A line chart of series {name: [values]} against times t, in an SVG of 800 x 260.
function chart(svg, t, series) {
  const W = 800, H = 260, L = 60, B = 30, T = 10, R = 130;
  const tmax = Math.max(1e-9, ...t), vmax = Math.max(1, ...Object.values(series).flat());
  const x = s => L + (W - L - R) * s / tmax, y = v => H - B - (H - B - T) * v / vmax;
  let out = `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/>` +
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#999"/>` +
    `<text x="${L - 5}" y="${T + 10}" text-anchor="end">${vmax}</text>` +
    `<text x="${L - 5}" y="${H - B}" text-anchor="end">0</text>` +
    `<text x="${W - R}" y="${H - 8}" text-anchor="end">${tmax.toFixed(1)} s</text>`;
  Object.entries(series).forEach(([name, vs], i) => {
    const c = COLOURS[i % COLOURS.length];
    out += `<polyline stroke="${c}" points="${vs.map((v, j) => x(t[j]).toFixed(1) + "," + y(v).toFixed(1)).join(" ")}"/>`;
    if (i < 12) out += `<text x="${W - R + 6}" y="${T + 12 + 13 * i}" style="fill:${c}">${name}</text>`;
  });
  svg.innerHTML = out;
}

function liveRollout() {
  const state = document.getElementById("rollout-state");
  setInterval(async () => {
    try {
      const r = await json("/api/rollout");
      if (!r || !r.t) { state.textContent = "this lab is not a rollout: run `vsplab bench nfd8 --ui` to chart one"; return; }
      state.textContent = `${r.phase}: ${r.containers_up[r.containers_up.length - 1]} of ${r.containers} containers up`;
      chart(document.getElementById("chart-containers"), r.t, { "containers up": r.containers_up });
      chart(document.getElementById("chart-flows"), r.t, r.flows);
    } catch (e) { state.textContent = "no answer from the lab: " + e.message; }
  }, 1000);
}

const wrap = document.getElementById("topology-wrap");
if (wrap) liveTopology(wrap);
if (document.getElementById("chart-containers")) liveRollout();
