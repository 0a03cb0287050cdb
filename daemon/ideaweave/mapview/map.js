// The idea map's page: draws the notes (points coloured by broad topic, placed in their topic's disc) and the
// topic names on one canvas; hover shows a note's title and summary, the search box lights up matching notes,
// a click opens the note (inside the Obsidian plugin) or copies its obsidian:// link (anywhere else).
// Plain canvas: a few thousand static points need one path per colour, not a graph library.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const search = document.getElementById("search");
  const found = document.getElementById("found");
  const tip = document.getElementById("tip");
  const status = document.getElementById("status");
  const notes = data.notes;
  const count = notes.x.length;
  const fine = data.topics.filter((t) => t.level === 1);
  const broad = data.topics.filter((t) => t.level === 0);
  const discs = fine.length ? fine : broad;
  const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  const embedded = window.parent !== window; // inside the plugin's view: it opens the note
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#17becf", "#8c564b"];
  const colourOf = (i) => i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.508) % 360}, 55%, 52%)`;
  // Lower-cased once: the search runs on every key press.
  const haystack = notes.title.map((t, i) => notes.path[i] === null ? null : (t + " " + notes.path[i]).toLowerCase());
  const byColour = new Map();
  for (let i = 0; i < count; i++) {
    if (!byColour.has(notes.colour[i])) byColour.set(notes.colour[i], []);
    byColour.get(notes.colour[i]).push(i);
  }
  let matched = null; // Uint8Array while a search is active
  let hovered = -1;
  let view = { scale: 1, ox: 0, oy: 0 };
  let width = 0, height = 0, pending = false;

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    width = canvas.clientWidth; height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  function bounds(indices) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    if (indices) {
      for (const i of indices) {
        x0 = Math.min(x0, notes.x[i] - 2); x1 = Math.max(x1, notes.x[i] + 2);
        y0 = Math.min(y0, notes.y[i] - 2); y1 = Math.max(y1, notes.y[i] + 2);
      }
    } else {
      for (const t of discs) {
        x0 = Math.min(x0, t.x - t.r); x1 = Math.max(x1, t.x + t.r);
        y0 = Math.min(y0, t.y - t.r); y1 = Math.max(y1, t.y + t.r);
      }
    }
    return isFinite(x0) ? [x0, y0, x1, y1] : [-1, -1, 1, 1];
  }

  function fit(box) {
    const [x0, y0, x1, y1] = box;
    const top = 50; // the search bar
    const scale = Math.min(width / Math.max(x1 - x0, 1e-6), (height - top) / Math.max(y1 - y0, 1e-6)) * 0.94;
    view = { scale, ox: width / 2 - scale * (x0 + x1) / 2, oy: top + (height - top) / 2 - scale * (y0 + y1) / 2 };
  }

  const sx = (x) => x * view.scale + view.ox;
  const sy = (y) => y * view.scale + view.oy;
  const pointRadius = () => Math.max(1.6, Math.min(6, 0.36 * view.scale));

  // Names already drawn this frame: a name that would cover one moves up or down by a line, or is left out.
  let placed = [];

  function label(text, x, y, size, weight, always) {
    ctx.font = `${weight} ${size}px system-ui, -apple-system, "Segoe UI", sans-serif`;
    const w = ctx.measureText(text).width + 8, h = size + 4;
    const clear = (cy) => placed.every((b) => x + w / 2 < b.x0 || x - w / 2 > b.x1 || cy + h / 2 < b.y0 || cy - h / 2 > b.y1);
    const at = [0, h, -h, 2 * h, -2 * h].map((d) => y + d).find(clear);
    if (at === undefined && !always) return;
    const cy = at === undefined ? y : at;
    placed.push({ x0: x - w / 2, x1: x + w / 2, y0: cy - h / 2, y1: cy + h / 2 });
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.lineWidth = 4; ctx.lineJoin = "round";
    ctx.strokeStyle = dark ? "rgba(30,30,30,.85)" : "rgba(251,250,247,.9)";
    ctx.strokeText(text, x, cy);
    ctx.fillStyle = dark ? "#eee" : "#1d1d1d";
    ctx.fillText(text, x, cy);
  }

  function shorten(text, most) {
    return text.length > most ? text.slice(0, most - 1) + "…" : text;
  }

  function draw() {
    pending = false;
    ctx.clearRect(0, 0, width, height);
    for (const t of discs) {
      ctx.beginPath();
      ctx.arc(sx(t.x), sy(t.y), t.r * view.scale, 0, 2 * Math.PI);
      ctx.fillStyle = colourOf(t.colour);
      ctx.globalAlpha = 0.07;
      ctx.fill();
    }
    const r = pointRadius();
    for (const [colour, members] of byColour) {
      ctx.fillStyle = colourOf(colour);
      ctx.globalAlpha = matched ? 0.18 : 0.85;
      ctx.beginPath();
      for (const i of members) {
        const x = sx(notes.x[i]), y = sy(notes.y[i]);
        if (x < -r || y < -r || x > width + r || y > height + r) continue;
        ctx.moveTo(x + r, y);
        ctx.arc(x, y, r, 0, 2 * Math.PI);
      }
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (matched) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = dark ? "#fff" : "#111";
      for (let i = 0; i < count; i++) {
        if (!matched[i]) continue;
        ctx.beginPath();
        ctx.arc(sx(notes.x[i]), sy(notes.y[i]), r + 2.5, 0, 2 * Math.PI);
        ctx.fillStyle = colourOf(notes.colour[i]);
        ctx.fill(); ctx.stroke();
      }
    }
    if (hovered >= 0) {
      ctx.beginPath();
      ctx.arc(sx(notes.x[hovered]), sy(notes.y[hovered]), r + 4, 0, 2 * Math.PI);
      ctx.lineWidth = 2; ctx.strokeStyle = dark ? "#fff" : "#000";
      ctx.stroke();
    }
    // Broad topics are always named (largest first); fine topics once their disc is big enough to hold the
    // name, and only where it covers no other name.
    placed = [];
    for (const t of broad) label(shorten(t.name, 48), sx(t.x), sy(t.y), 16, 700, true);
    for (const t of fine) {
      const radius = t.r * view.scale;
      if (radius > 45 || !broad.length) label(shorten(t.name, 40), sx(t.x), sy(t.y - t.r) - 8, 12, 500, !broad.length);
    }
    window.ideaweaveMap.draws += 1;
  }

  function redraw() {
    if (!pending) { pending = true; requestAnimationFrame(draw); }
  }

  function nearest(px, py) {
    const reach = Math.max(pointRadius() + 3, 7);
    let best = -1, bestDistance = reach * reach;
    for (let i = 0; i < count; i++) {
      const dx = sx(notes.x[i]) - px, dy = sy(notes.y[i]) - py;
      const d = dx * dx + dy * dy;
      if (d <= bestDistance) { best = i; bestDistance = d; }
    }
    return best;
  }

  function showTip(i, px, py) {
    if (i < 0 || notes.path[i] === null) { tip.style.display = "none"; return; }
    tip.querySelector(".title").textContent = notes.title[i] || notes.path[i];
    tip.querySelector(".topic").textContent = (discs[notes.topic[i]] || {}).name || "";
    tip.querySelector(".summary").textContent = notes.summary[i];
    tip.style.display = "block";
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(px + 14, width - w - 6) + "px";
    tip.style.top = (py + 14 + h > height ? py - h - 10 : py + 14) + "px";
  }

  function linkTo(path) {
    return "obsidian://open?vault=" + encodeURIComponent(data.vault) + "&file=" + encodeURIComponent(path.replace(/\.md$/, ""));
  }

  async function open(i) {
    const path = notes.path[i];
    if (path === null) return;
    if (embedded) {
      window.parent.postMessage({ type: "ideaweave-map:open", path }, "*");
      return;
    }
    const link = linkTo(path);
    window.ideaweaveMap.lastLink = link;
    let copied = false;
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch (err) {
      // A page opened from a file may not use the clipboard API: the older way still copies a selection.
      const field = document.createElement("textarea");
      field.value = link; document.body.appendChild(field); field.select();
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      field.remove();
    }
    status.textContent = (copied ? "Copied: " : "Link (copy it by hand): ") + link;
  }

  function runSearch() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) { matched = null; found.textContent = ""; redraw(); return; }
    matched = new Uint8Array(count);
    let hits = 0;
    for (let i = 0; i < count; i++) {
      const text = haystack[i];
      if (text !== null && words.every((w) => text.includes(w))) { matched[i] = 1; hits++; }
    }
    found.textContent = hits === 0 ? "no note matches" : hits === 1 ? "1 note" : `${hits} notes`;
    window.ideaweaveMap.matches = hits;
    redraw();
  }

  let drag = null;
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX, y: e.clientY, ox: view.ox, oy: view.oy, moved: false };
    canvas.classList.add("dragging");
  });
  window.addEventListener("mouseup", (e) => {
    canvas.classList.remove("dragging");
    const was = drag; drag = null;
    if (was && !was.moved && e.target === canvas) {
      const i = nearest(e.offsetX, e.offsetY);
      if (i >= 0) open(i);
    }
  });
  canvas.addEventListener("mousemove", (e) => {
    if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) { view.ox = drag.ox + dx; view.oy = drag.oy + dy; tip.style.display = "none"; redraw(); }
      return;
    }
    const i = nearest(e.offsetX, e.offsetY);
    canvas.style.cursor = i >= 0 && notes.path[i] !== null ? "pointer" : "";
    if (i !== hovered) { hovered = i; redraw(); }
    showTip(i, e.offsetX, e.offsetY);
  });
  canvas.addEventListener("mouseleave", () => { hovered = -1; tip.style.display = "none"; redraw(); });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const factor = Math.exp(-e.deltaY * 0.0015);
    view.ox = e.offsetX - (e.offsetX - view.ox) * factor;
    view.oy = e.offsetY - (e.offsetY - view.oy) * factor;
    view.scale *= factor;
    tip.style.display = "none";
    redraw();
  }, { passive: false });
  search.addEventListener("input", runSearch);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && matched) {
      const hits = []; for (let i = 0; i < count; i++) if (matched[i]) hits.push(i);
      if (hits.length) { fit(bounds(hits)); view.scale = Math.min(view.scale, 40); redraw(); }
    } else if (e.key === "Escape") { search.value = ""; runSearch(); }
  });
  window.addEventListener("resize", () => { resize(); fit(bounds(null)); redraw(); });

  // For whoever drives the page (tests, the benchmark): where a note is drawn, and when the map was first drawn.
  window.ideaweaveMap = {
    notes: count, topics: data.topics.length, draws: 0, matches: 0, lastLink: null, drawnAt: null,
    screenOf(path) {
      const i = notes.path.indexOf(path);
      return i < 0 ? null : { x: sx(notes.x[i]), y: sy(notes.y[i]) };
    },
  };
  resize();
  fit(bounds(null));
  draw();
  // The next frame is the first one showing the map.
  requestAnimationFrame(() => {
    window.ideaweaveMap.drawnAt = performance.now();
    document.documentElement.dataset.drawn = "true";
  });
})();
