// sparky-assets preview page: renders a preview document (see sparky_assets/preview/document.py).
//
// Two ways in, one page: opened from disk (`build --report`) the document is in data.js
// (window.SPARKY_PREVIEW); served (`preview`, `watch --preview`) it arrives over
// Server-Sent Events from /events — a "snapshot" on connect, then an "update" after every
// build carrying only the entries whose hash changed. Large images (a diffusion sprite's
// raw model renders) are files next to the page (assets/<hash>.png); the page never
// fetches anything else. Pixels are drawn nearest-neighbour only (imageSmoothingEnabled = false, CSS
// image-rendering: pixelated). Animation players run on `clock`, which a test can take
// over (sparkyPreview.clock.takeOver() / advance(ms)) to step frames deterministically.
"use strict";
(() => {
  const COLLECTIONS = ["atlases", "sprites", "palettes", "tilesets"];
  const players = new Map(); // "sprite/animation" -> Player
  const clock = {
    manual: false,
    t: 0,
    now() {
      return this.manual ? this.t : performance.now();
    },
    /** Stop real time: from now on frames advance only through advance(ms). */
    takeOver() {
      this.manual = true;
      this.t = 0;
      for (const p of players.values()) p.restart(0);
      for (const m of tileMaps.values()) m.restart(0);
    },
    advance(ms) {
      this.t += ms;
      tickAll();
    },
  };
  const tokenMeta = document.querySelector('meta[name="sparky-token"]');
  const state = {
    served: tokenMeta !== null,
    token: tokenMeta ? tokenMeta.content : null,
    doc: null,
    entries: Object.fromEntries(COLLECTIONS.map((c) => [c, new Map()])),
    updates: 0,
    pending: [],
  };

  // ------------------------------------------------------------------ helpers

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const images = new Map(); // data URI -> Promise<HTMLImageElement>
  function loadImage(uri) {
    if (!images.has(uri)) {
      const img = new Image();
      img.src = uri;
      const loaded = img.decode().then(() => img);
      images.set(uri, loaded);
      state.pending.push(loaded);
    }
    return images.get(uri);
  }

  function autoZoom(w, h, target) {
    return Math.max(1, Math.min(8, Math.floor(target / Math.max(w, h))));
  }

  function crispCanvas(w, h, cls) {
    const canvas = el("canvas", { class: cls, width: w, height: h });
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    return [canvas, ctx];
  }

  /** An <img> shown `zoom` times its size, nearest-neighbour. */
  function zoomedImage(uri, w, h, zoom, alt) {
    const img = el("img", { class: "px checker", src: uri, alt: alt, width: w * zoom, height: h * zoom });
    loadImage(uri);
    return img;
  }

  const tooltip = document.getElementById("tooltip");
  function showTooltip(text, x, y) {
    tooltip.textContent = text;
    tooltip.hidden = false;
    tooltip.style.left = `${x + 14}px`;
    tooltip.style.top = `${y + 14}px`;
  }
  function hideTooltip() {
    tooltip.hidden = true;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  // ------------------------------------------------------------------ build summary

  function errorItem(e) {
    let where = e.file || "";
    if (e.file && e.line != null) where += `:${e.line}` + (e.column != null ? `:${e.column}` : "");
    const loc = e.href ? el("a", { class: "loc", href: e.href, text: where }) : el("span", { class: "loc", text: where });
    const what = [e.key, e.message].filter(Boolean).join(": ");
    const extra = [e.sprite && `sprite ${e.sprite}`, e.stage && `stage ${e.stage}`].filter(Boolean).join(", ");
    return el("li", { class: "error" }, where ? loc : null, where ? " " : null, what, extra ? el("span", { class: "dim", text: ` (${extra})` }) : null);
  }

  function renderBuild(build, shown) {
    const body = document.querySelector("#build .body");
    const status = document.getElementById("status");
    body.replaceChildren();
    if (!build) {
      status.textContent = "no build recorded";
      status.className = "status";
      body.append(el("p", { class: "dim", text: "No build summary yet: run `sparky-assets build`." }));
      return;
    }
    if (!build.ok) {
      status.textContent = "build failed";
      status.className = "status failed";
      body.append(
        el("div", { class: "errors", id: "build-errors" },
          el("strong", { text: `Build failed — ${plural(build.errors.length, "problem")}.` }),
          shown ? el("span", { class: "dim", text: " Showing the last good build." }) : null,
          el("ul", {}, build.errors.map(errorItem))),
      );
      return;
    }
    status.textContent = `built in ${build.duration_s.toFixed(2)} s`;
    status.className = "status ok";
    const stages = ["plan", "generate", "process", "pack", "export", "write"];
    const rows = stages.map((s) => {
      const ran = (build.ran && build.ran[s]) || [];
      const cached = build.cached && build.cached[s] != null ? build.cached[s] : "";
      const secs = build.stage_s && build.stage_s[s] != null ? `${(build.stage_s[s] * 1000).toFixed(1)} ms` : "";
      return el("tr", {},
        el("td", { text: s }),
        el("td", { text: s === "plan" || s === "write" ? "" : String(ran.length), title: ran.join(", ") }),
        el("td", { text: String(cached) }),
        el("td", { text: secs }));
    });
    const f = build.files || {};
    body.append(
      el("table", { class: "stages" },
        el("tr", {}, el("th", { text: "stage" }), el("th", { text: "ran" }), el("th", { text: "from cache" }), el("th", { text: "time" })),
        rows),
      el("p", { id: "build-files", text: `files: ${f.added || 0} added, ${f.modified || 0} modified, ${f.removed || 0} removed, ${f.unchanged || 0} unchanged` }),
    );
    for (const s of ["generate", "process", "pack"]) {
      const ran = (build.ran && build.ran[s]) || [];
      if (ran.length) body.append(el("p", { class: "dim", text: `${s} ran: ${ran.join(", ")}` }));
    }
    for (const [name, stats] of Object.entries(build.generator_stats || {})) {
      body.append(el("p", { class: "dim", text: `${name}: ${Object.entries(stats).map(([k, v]) => `${k} ${v}`).join(", ")}` }));
    }
    if (build.warnings && build.warnings.length) {
      body.append(el("ul", { class: "warnings" }, build.warnings.map((w) => el("li", { text: `warning: ${w}` }))));
    }
  }

  // ------------------------------------------------------------------ atlases

  function regionText(r) {
    const trim = r.trim ? `trimmed: offset ${r.trim[0]},${r.trim[1]} in ${r.trim[2]}×${r.trim[3]}` : "not trimmed";
    return `${r.names.join("\n")}\n${r.w}×${r.h} px at ${r.x},${r.y}\n${trim}`;
  }

  function renderAtlas(atlas) {
    const box = el("div", { class: "atlas", "data-key": atlas.key }, el("h3", { text: atlas.name }));
    for (const page of atlas.pages) {
      const zoom = autoZoom(page.width, page.height, 640);
      const [canvas, ctx] = crispCanvas(page.width * zoom, page.height * zoom, "zoomed px checker");
      canvas.dataset.zoom = zoom;
      const [overlay, octx] = crispCanvas(page.width * zoom, page.height * zoom, "overlay");
      const stage = el("div", { class: "zoom-stage" }, canvas, overlay);
      let hovered = null;
      const outline = () => {
        octx.clearRect(0, 0, overlay.width, overlay.height);
        for (const r of page.regions) {
          const on = r === hovered;
          octx.strokeStyle = on ? "#ffcc4d" : "rgba(255, 204, 77, 0.45)";
          octx.lineWidth = on ? 2 : 1;
          octx.strokeRect(r.x * zoom - 0.5, r.y * zoom - 0.5, r.w * zoom + 1, r.h * zoom + 1);
        }
      };
      loadImage(page.image).then((img) => {
        ctx.drawImage(img, 0, 0, page.width * zoom, page.height * zoom);
        outline();
      });
      stage.addEventListener("mousemove", (event) => {
        const rect = canvas.getBoundingClientRect();
        const x = (event.clientX - rect.left) / zoom;
        const y = (event.clientY - rect.top) / zoom;
        const found = page.regions.find((r) => x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) || null;
        if (found !== hovered) {
          hovered = found;
          outline();
        }
        if (found) showTooltip(regionText(found), event.clientX, event.clientY);
        else hideTooltip();
      });
      stage.addEventListener("mouseleave", () => {
        hovered = null;
        outline();
        hideTooltip();
      });
      box.append(
        el("figure", { class: "page", "data-page": page.name },
          el("figcaption", { text: `${page.name} — ${page.width}×${page.height}, ${plural(page.regions.length, "region")}; true size, then ×${zoom}` }),
          el("div", { class: "views" },
            el("img", { class: "true-size checker", src: page.image, width: page.width, height: page.height, alt: `${page.name} at true size` }),
            stage)),
      );
    }
    return box;
  }

  // ------------------------------------------------------------------ animations

  class Player {
    constructor(sprite, animation) {
      this.key = `${sprite.name}/${animation.name}`;
      this.sprite = sprite;
      this.frames = animation.frames;
      this.durations = animation.durations_ms;
      this.loop = animation.loop;
      this.fps = animation.fps;
      this.zoom = autoZoom(sprite.width, sprite.height, 96);
      this.index = 0;
      this.playing = true;
      this.onion = false;
      this.start = clock.now();
      this.shown = [0];
      this.img = null;
      [this.canvas, this.ctx] = crispCanvas(sprite.width * this.zoom, sprite.height * this.zoom, "px checker");
      this.label = el("span", { class: "label" });
      this.playButton = el("button", { type: "button", class: "play", title: "play / pause", onclick: () => this.toggle() });
      const onion = el("input", { type: "checkbox", onchange: (e) => { this.onion = e.target.checked; this.draw(); } });
      this.node = el("div", { class: "player", "data-player": this.key },
        el("strong", { text: animation.name }),
        this.canvas,
        el("div", { class: "controls" },
          el("button", { type: "button", title: "previous frame", text: "◀", onclick: () => this.step(-1) }),
          this.playButton,
          el("button", { type: "button", title: "next frame", text: "▶", onclick: () => this.step(1) }),
          el("label", { title: "onion skin: the previous frame faintly under this one" }, onion, " onion")),
        this.label);
      loadImage(sprite.locked).then((img) => {
        this.img = img;
        this.draw();
      });
      this.draw();
    }

    restart(now) {
      this.index = 0;
      this.start = now;
      this.shown = [0];
      this.playing = true;
      this.draw();
    }

    tick(now) {
      while (this.playing && now - this.start >= this.durations[this.index]) {
        this.start += this.durations[this.index];
        this.advance();
      }
    }

    advance() {
      if (this.index + 1 >= this.frames.length) {
        if (!this.loop) {
          this.playing = false; // a one-shot animation stops on its last frame
          this.draw();
          return;
        }
        this.index = 0;
      } else {
        this.index += 1;
      }
      this.shown.push(this.index);
      this.draw();
    }

    step(delta) {
      this.playing = false;
      this.index = (this.index + delta + this.frames.length) % this.frames.length;
      this.shown.push(this.index);
      this.draw();
    }

    toggle() {
      this.playing = !this.playing;
      if (this.playing) {
        if (!this.loop && this.index === this.frames.length - 1) {
          this.index = 0;
          this.shown.push(0);
        }
        this.start = clock.now();
      }
      this.draw();
    }

    drawFrame(i) {
      const w = this.sprite.width;
      const h = this.sprite.height;
      this.ctx.drawImage(this.img, this.frames[i] * w, 0, w, h, 0, 0, w * this.zoom, h * this.zoom);
    }

    draw() {
      this.playButton.textContent = this.playing ? "pause" : "play";
      this.canvas.dataset.frame = this.index;
      this.label.textContent = `frame ${this.index + 1}/${this.frames.length} · ${this.durations[this.index]} ms · ${this.fps} fps${this.loop ? "" : " · once"}`;
      if (!this.img) return;
      this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      const previous = this.index > 0 ? this.index - 1 : this.loop ? this.frames.length - 1 : -1;
      if (this.onion && previous >= 0 && this.frames.length > 1) {
        this.ctx.globalAlpha = 0.35;
        this.drawFrame(previous);
        this.ctx.globalAlpha = 1;
      }
      this.drawFrame(this.index);
    }
  }

  function tickAll() {
    const now = clock.now();
    for (const p of players.values()) p.tick(now);
    for (const m of tileMaps.values()) m.tick(now);
  }
  function frameLoop() {
    tickAll();
    requestAnimationFrame(frameLoop);
  }

  function renderAnimations(sprite) {
    const card = el("div", { class: "card", "data-key": sprite.key },
      el("h3", { text: sprite.name, title: `${sprite.width}×${sprite.height}, atlas ${sprite.atlas}` }));
    for (const animation of sprite.animations) {
      const player = new Player(sprite, animation);
      players.set(player.key, player);
      card.append(player.node);
    }
    return card;
  }

  function dropPlayers(spriteKey) {
    for (const key of [...players.keys()]) if (key.startsWith(`${spriteKey}/`)) players.delete(key);
  }

  // ------------------------------------------------------------------ stills, lock, palettes, tilesets

  function renderStill(sprite) {
    const zoom = autoZoom(sprite.width, sprite.height, 64);
    return el("div", { class: "card", "data-key": sprite.key },
      zoomedImage(sprite.locked, sprite.width, sprite.height, zoom, sprite.name),
      el("div", { text: sprite.name }),
      el("div", { class: "dim", text: `${sprite.width}×${sprite.height}` }));
  }

  function reroll(sprite, button, status) {
    button.disabled = true;
    status.textContent = " rerolling…";
    fetch("api/reroll", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Sparky-Token": state.token },
      body: JSON.stringify({ sprite: sprite.name }),
    })
      .then((r) => r.json().then((body) => [r.ok, body]))
      .then(([ok, body]) => {
        status.textContent = ok ? ` new seed ${body.seed}; rebuilding…` : ` reroll failed: ${body.error}`;
      })
      .catch((error) => {
        status.textContent = ` reroll failed: ${error}`;
      })
      .finally(() => {
        button.disabled = false;
      });
  }

  function renderLock(sprite) {
    const zoom = autoZoom(sprite.width, sprite.height, 48);
    const strip = (uri, frames, caption, cls) => el("figure", { class: cls },
      el("figcaption", { text: caption }),
      zoomedImage(uri, sprite.width * frames, sprite.height, zoom, `${sprite.name}: ${caption}`));
    const meta = [sprite.generator && `generator ${sprite.generator}`, sprite.rerollable && sprite.seed != null && `seed ${sprite.seed}`,
      sprite.palette && `palette ${sprite.palette}`, `${sprite.width}×${sprite.height}`, plural(sprite.frames, "frame")]
      .filter(Boolean).join(" · ");
    const title = el("h3", {}, sprite.name, el("span", { class: "meta", text: `  ${meta}` }));
    if (state.served && sprite.rerollable) {
      const status = el("span", { class: "dim reroll-status" });
      const button = el("button", { type: "button", class: "reroll", text: "reroll", title: "new seed, then rebuild" });
      button.addEventListener("click", () => reroll(sprite, button, status));
      title.append(button, status);
    }
    const row = el("div", { class: "lock-row" });
    if (sprite.before) {
      const caption = sprite.before.source === "store" ? `generated (${sprite.before.file})` : `source (${sprite.before.file})`;
      const before = el("figure", { class: "before" }, el("figcaption", { text: caption }),
        el("img", { class: "px checker", src: sprite.before.image, alt: `${sprite.name} before palette lock` }));
      loadImage(sprite.before.image).then((img) => {
        const shown = before.querySelector("img");
        shown.width = img.naturalWidth * zoom;
        shown.height = img.naturalHeight * zoom;
      });
      row.append(before);
    }
    row.append(strip(sprite.locked, sprite.frames, "palette-locked", "after"));
    const review = sprite.review ? renderReview(sprite) : null;
    const note = sprite.review_note ? el("p", { class: "notes review-note", text: sprite.review_note }) : null;
    return el("div", { class: "sprite-lock", "data-key": sprite.key }, title, row, review, note);
  }

  function gridText(g) {
    const n = (v) => v.toFixed(2);
    const drift = g.drift[0] || g.drift[1] ? `, drift ${n(g.drift[0])}/${n(g.drift[1])}` : "";
    return `grid ${g.cells[0]}×${g.cells[1]} cells of ${n(g.period[0])}×${n(g.period[1])} px, phase ${n(g.phase[0])}/${n(g.phase[1])} px${drift} (${g.source})`;
  }

  /** A generated sprite's review, one frame at a time: the model's raw image (true size,
   * or zoomed nearest-neighbour) with the detected pixel grid drawn over it, the
   * pixelized cells (before palette lock) and the locked result, and the grid's confidence. */
  function renderReview(sprite) {
    const review = sprite.review;
    const w = sprite.width;
    const h = sprite.height;
    const box = el("div", { class: "review" });
    const raw = el("img", { class: "raw px" });
    const [grid, gctx] = crispCanvas(1, 1, "grid");
    const [cells, cctx] = crispCanvas(w, h, "cells px checker");
    const [locked, lctx] = crispCanvas(w, h, "locked px checker");
    const cellsCaption = el("figcaption");
    const lockedCaption = el("figcaption");
    const caption = el("figcaption");
    const confidence = el("span", { class: "confidence" });
    const frameSelect = el("select", { class: "frame", title: "frame" },
      review.frames.map((_, i) => el("option", { value: i, text: `frame ${i + 1}/${review.frames.length}` })));
    const zoomSelect = el("select", { class: "zoom", title: "zoom of the raw image" },
      [0.25, 0.5, 1, 2, 4, 8].map((z) => el("option", { value: z, text: z === 1 ? "true size" : `×${z}`, selected: z === 1 })));
    const gridToggle = el("input", { type: "checkbox", class: "show-grid", checked: true });
    const state = { frame: 0, zoom: 1 };
    const draw = () => {
      const f = review.frames[state.frame];
      const cw = Math.round(f.width * state.zoom);
      const ch = Math.round(f.height * state.zoom);
      raw.src = f.raw;
      raw.width = cw;
      raw.height = ch;
      raw.alt = `${sprite.name}: the model's raw image, frame ${state.frame + 1}`;
      grid.width = cw;
      grid.height = ch;
      gctx.clearRect(0, 0, cw, ch);
      // lines a few pixels apart would hide the image: fainter then (zoom in to see the cells)
      const dense = Math.min(...f.grid.period) * state.zoom < 6;
      gctx.fillStyle = dense ? "rgba(0, 255, 255, 0.3)" : "rgba(0, 255, 255, 0.85)";
      // inner grid lines only (the first and last edge are the image's borders), one device pixel wide
      for (const e of f.grid.x_edges.slice(1, -1)) gctx.fillRect(Math.min(Math.round(e * state.zoom), cw - 1), 0, 1, ch);
      for (const e of f.grid.y_edges.slice(1, -1)) gctx.fillRect(0, Math.min(Math.round(e * state.zoom), ch - 1), cw, 1);
      grid.dataset.zoom = state.zoom;
      // the cells as large as the raw image is shown (whole multiples: nearest-neighbour)
      const cellZoom = Math.max(1, Math.floor(Math.min(cw / w, ch / h)));
      cellsCaption.textContent = `pixelized ${w}×${h} (before lock), ×${cellZoom}`;
      lockedCaption.textContent = `palette-locked, ×${cellZoom}`;
      grid.hidden = !gridToggle.checked;
      caption.textContent = `model output ${f.width}×${f.height}, ${state.zoom === 1 ? "true size" : `×${state.zoom}`}`;
      confidence.textContent = `${gridText(f.grid)} · confidence ${f.grid.confidence.toFixed(2)}`;
      confidence.dataset.confidence = f.grid.confidence;
      box.dataset.frame = state.frame;
      for (const [uri, ctx] of [[sprite.before && sprite.before.image, cctx], [sprite.locked, lctx]]) {
        if (!uri) continue;
        ctx.canvas.width = w * cellZoom;
        ctx.canvas.height = h * cellZoom;
        loadImage(uri).then((img) => {
          ctx.imageSmoothingEnabled = false;
          ctx.clearRect(0, 0, w * cellZoom, h * cellZoom);
          ctx.drawImage(img, state.frame * w, 0, w, h, 0, 0, w * cellZoom, h * cellZoom);
        });
      }
      loadImage(f.raw);
    };
    frameSelect.addEventListener("change", () => { state.frame = Number(frameSelect.value); draw(); });
    zoomSelect.addEventListener("change", () => { state.zoom = Number(zoomSelect.value); draw(); });
    gridToggle.addEventListener("change", draw);
    box.append(
      el("div", { class: "review-controls" },
        el("strong", { text: "generated: " }), confidence, " ",
        review.frames.length > 1 ? frameSelect : null, zoomSelect,
        el("label", {}, gridToggle, " grid")),
      el("div", { class: "lock-row" },
        el("figure", { class: "raw" }, caption, el("div", { class: "raw-stage" }, raw, grid)),
        el("figure", { class: "cells" }, cellsCaption, cells),
        el("figure", { class: "locked" }, lockedCaption, locked)));
    draw();
    return box;
  }

  function renderPalette(palette) {
    const used = palette.colors.filter((c) => c.count > 0).length;
    const pixels = palette.colors.reduce((n, c) => n + c.count, 0);
    return el("div", { class: "palette", "data-key": palette.key },
      el("h3", { text: palette.name },
        el("span", { class: "dim", text: `  ${used}/${palette.colors.length} colours used, ${pixels} px in ${plural(palette.sprites.length, "sprite")}` })),
      el("div", { class: "swatches" }, palette.colors.map((c) => {
        const chip = el("div", { class: "chip" });
        chip.style.backgroundColor = c.hex;
        return el("div", { class: c.count ? "swatch" : "swatch unused", title: `${c.hex}: ${c.count} px`, "data-hex": c.hex },
          chip, el("div", { text: c.hex }), el("div", { class: "count", text: String(c.count) }));
      })));
  }

  // The map a tileset is shown as: the same as sparky_assets/preview/tilemap.py makes
  // for the same seed (the tests compare them). The autotile rules are the build's: the
  // page is given its pick table and only computes neighbour masks.
  const MAP_COLS = 16;
  const MAP_ROWS = 10;
  const NEIGHBOURS = [[-1, 0], [-1, 1], [0, 1], [1, 1], [1, 0], [1, -1], [0, -1], [-1, -1]]; // mask bits N, NE, E … NW

  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    };
  }

  function tileMap(tileset, seed) {
    const rng = mulberry32(seed);
    const at = (g, r, c) => r >= 0 && r < MAP_ROWS && c >= 0 && c < MAP_COLS && g[r][c];
    let grid = [];
    for (let r = 0; r < MAP_ROWS; r++) {
      grid.push([]);
      for (let c = 0; c < MAP_COLS; c++) grid[r].push(rng() % 100 < 45);
    }
    for (let pass = 0; pass < 2; pass++) {
      grid = grid.map((row, r) => row.map((cell, c) => {
        const n = NEIGHBOURS.reduce((k, [dr, dc]) => k + (at(grid, r + dr, c + dc) ? 1 : 0), 0);
        return n >= 5 ? true : n <= 2 ? false : cell;
      }));
    }
    const mask = (r, c) => NEIGHBOURS.reduce((m, [dr, dc], bit) => m | (at(grid, r + dr, c + dc) ? 1 << bit : 0), 0);
    const ground = tileset.plain.length ? [tileset.plain[0].id] : [];
    const decorations = tileset.plain.slice(1).map((t) => t.id);
    const corners = tileset.set === "corners";
    const rows = corners ? MAP_ROWS - 1 : MAP_ROWS;
    const cols = corners ? MAP_COLS - 1 : MAP_COLS;
    const out = [];
    for (let r = 0; r < rows; r++) {
      const row = [];
      for (let c = 0; c < cols; c++) {
        const layers = [...ground];
        if (tileset.set === "blob" && grid[r][c]) layers.push(tileset.table[mask(r, c)]);
        else if (corners) {
          const key = (grid[r][c] ? 8 : 0) | (grid[r][c + 1] ? 4 : 0) | (grid[r + 1][c] ? 2 : 0) | (grid[r + 1][c + 1] ? 1 : 0);
          if (key) layers.push(tileset.table[key]);
        }
        if (decorations.length && !(tileset.set === "blob" && grid[r][c]) && rng() % 12 === 0) {
          layers.splice(ground.length, 0, decorations[rng() % decorations.length]);
        }
        row.push(layers);
      }
      out.push(row);
    }
    return out;
  }

  const tileMaps = new Map(); // tileset key -> {seed, layers, frames(), tick(now), restart(now)}

  /** A tileset drawn as a small random map from its own tiles, with a reroll-map button.
   * Animated tiles play on the page's clock with their frame durations. */
  function renderTileset(tileset) {
    const tw = tileset.tile_width;
    const th = tileset.tile_height;
    const zoom = autoZoom(MAP_COLS * tw, MAP_ROWS * th, 768);
    const [canvas, ctx] = crispCanvas(1, 1, "map px checker");
    canvas.dataset.zoom = zoom;
    const label = el("span", { class: "dim seed" });
    const cell = (id) => [(id % tileset.columns) * tw, Math.floor(id / tileset.columns) * th];
    const animated = tileset.plain.filter((t) => t.frames.length > 1);
    const map = { seed: 1, layers: [], start: clock.now(), shown: "", img: null };
    /** Per animated tile (by its first frame's id), the index of the frame showing at `now`. */
    const frames = (now) => Object.fromEntries(animated.map((t) => {
      const total = t.durations_ms.reduce((a, b) => a + b, 0);
      let left = (((now - map.start) % total) + total) % total;
      let i = 0;
      while (left >= t.durations_ms[i]) left -= t.durations_ms[i++];
      return [t.id, i];
    }));
    const paint = (now) => {
      const showing = frames(now);
      map.shown = JSON.stringify(showing);
      if (!map.img) return;
      const tiles = Object.fromEntries(animated.map((t) => [t.id, t.frames[showing[t.id]]]));
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      map.layers.forEach((row, r) => row.forEach((stack, c) => stack.forEach((id) => {
        const [sx, sy] = cell(id in tiles ? tiles[id] : id);
        ctx.drawImage(map.img, sx, sy, tw, th, c * tw * zoom, r * th * zoom, tw * zoom, th * zoom);
      })));
    };
    const draw = (seed) => {
      map.seed = seed;
      map.layers = tileMap(tileset, seed);
      canvas.width = map.layers[0].length * tw * zoom;
      canvas.height = map.layers.length * th * zoom;
      ctx.imageSmoothingEnabled = false;
      canvas.dataset.seed = seed;
      label.textContent = ` map seed ${seed}; ${tileset.set ? `${tileset.set} autotiles (${tileset.table.length}-entry pick table from the build)` : "no autotiles"}, ${plural(tileset.tiles.length, "tile")}${animated.length ? `, ${plural(animated.length, "animated tile")}` : ""}`;
      loadImage(tileset.image).then((img) => {
        map.img = img;
        paint(clock.now());
      });
    };
    tileMaps.set(tileset.key, {
      get seed() { return map.seed; },
      get layers() { return map.layers; },
      frames: () => frames(clock.now()),
      tick(now) {
        if (animated.length && JSON.stringify(frames(now)) !== map.shown) paint(now);
      },
      restart(now) {
        map.start = now;
        paint(now);
      },
    });
    const button = el("button", { type: "button", class: "reroll-map", text: "reroll map", title: "another random map from the same tiles" });
    button.addEventListener("click", () => draw(map.seed + 1));
    draw(1);
    return el("div", { class: "tileset", "data-key": tileset.key },
      el("h3", {}, tileset.name, button, label), canvas);
  }

  // ------------------------------------------------------------------ keyed rendering

  /** Put `entries` into `container` in order, keeping the element of every key not in
   * `changed` (so an unchanged atlas or sprite is not redrawn). */
  function reconcile(container, entries, changed, render, drop) {
    const existing = new Map([...container.children].map((node) => [node.dataset.key, node]));
    const wanted = [];
    for (const entry of entries) {
      let node = existing.get(entry.key);
      if (!node || changed.has(entry.key)) {
        if (node && drop) drop(entry.key);
        node = render(entry);
      }
      existing.delete(entry.key);
      wanted.push(node);
    }
    for (const key of existing.keys()) if (drop) drop(key);
    container.replaceChildren(...wanted);
  }

  function show(doc, changed) {
    state.doc = doc;
    document.getElementById("project").textContent = doc.project;
    document.title = `${doc.project} — sparky-assets preview`;
    const has = (build) => doc.atlases.length > 0 && build && !build.ok;
    renderBuild(doc.build, has(doc.build));
    document.querySelector("#build .notes").textContent = doc.notes.join(" ");
    const sprites = doc.sprites;
    reconcile(document.querySelector("#atlases .body"), doc.atlases, changed.atlases, renderAtlas);
    reconcile(document.querySelector("#animations .body"), sprites.filter((s) => s.animations.length), changed.sprites, renderAnimations, dropPlayers);
    reconcile(document.querySelector("#stills .body"), sprites.filter((s) => !s.animations.length), changed.sprites, renderStill);
    reconcile(document.querySelector("#lock .body"), sprites, changed.sprites, renderLock);
    reconcile(document.querySelector("#palettes .body"), doc.palettes, changed.palettes, renderPalette);
    reconcile(document.querySelector("#tilesets .body"), doc.tilesets, changed.tilesets, renderTileset, (key) => tileMaps.delete(key));
    document.getElementById("tilesets").hidden = doc.tilesets.length === 0;
    document.getElementById("tilesets-link").hidden = doc.tilesets.length === 0;
    for (const section of ["animations", "stills"]) {
      const body = document.querySelector(`#${section} .body`);
      if (!body.children.length) body.append(el("p", { class: "dim", "data-key": "", text: "none" }));
    }
  }

  function snapshot(doc) {
    for (const c of COLLECTIONS) state.entries[c] = new Map(doc[c].map((e) => [e.key, e]));
    const everything = Object.fromEntries(COLLECTIONS.map((c) => [c, new Set(doc[c].map((e) => e.key))]));
    show(doc, everything);
  }

  function update(patch) {
    const doc = {};
    const changed = {};
    for (const [k, v] of Object.entries(patch)) if (!COLLECTIONS.includes(k)) doc[k] = v;
    for (const c of COLLECTIONS) {
      for (const entry of patch[c].changed) state.entries[c].set(entry.key, entry);
      const order = new Set(patch[c].order);
      for (const key of [...state.entries[c].keys()]) if (!order.has(key)) state.entries[c].delete(key);
      doc[c] = patch[c].order.map((key) => state.entries[c].get(key));
      changed[c] = new Set(patch[c].changed.map((e) => e.key));
    }
    state.updates += 1;
    show(doc, changed);
    document.body.dataset.updates = state.updates;
  }

  function connect() {
    const status = document.getElementById("status");
    const events = new EventSource("events");
    events.addEventListener("snapshot", (e) => snapshot(JSON.parse(e.data)));
    events.addEventListener("update", (e) => update(JSON.parse(e.data)));
    events.addEventListener("error", () => {
      status.textContent = "disconnected from the preview server — retrying";
      status.className = "status failed";
    });
    state.events = events;
  }

  document.getElementById("outlines").addEventListener("change", (e) => {
    document.body.classList.toggle("no-outlines", !e.target.checked);
  });

  window.sparkyPreview = {
    clock,
    state,
    show: snapshot,
    /** The player of "sprite/animation": what it is configured with and what it showed. */
    /** The map shown for a tileset: its seed, per map cell the sheet tiles drawn there
     * (an animated tile by its first frame), and which frame each animated tile shows. */
    tileMap(key) {
      const m = tileMaps.get(key);
      return m && { seed: m.seed, layers: m.layers, frames: m.frames() };
    },
    /** The map the page would draw for `tileset` (a document entry) and `seed`. */
    tileMapOf(tileset, seed) {
      return tileMap(tileset, seed);
    },
    player(key) {
      const p = players.get(key);
      return p && { frames: p.frames, durations: p.durations, loop: p.loop, index: p.index, playing: p.playing, shown: [...p.shown] };
    },
    /** Resolves when every image the page has asked for so far is decoded and drawn. */
    ready() {
      const waiting = state.pending.splice(0);
      return Promise.all(waiting).then(() => new Promise((resolve) => requestAnimationFrame(() => resolve(true))));
    },
  };

  if (state.served) connect();
  else if (window.SPARKY_PREVIEW) snapshot(window.SPARKY_PREVIEW);
  else document.getElementById("status").textContent = "no data: data.js is missing next to this page";
  requestAnimationFrame(frameLoop);
})();
