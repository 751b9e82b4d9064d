// EchoQuality review: reviewer name, gallery preview fallbacks, cine player, Grad-CAM, keyboard labelling.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const reviewer = $("#reviewer");
  if (reviewer) {
    reviewer.value = localStorage.getItem("echoReviewer") || "";
    reviewer.addEventListener("change", () => localStorage.setItem("echoReviewer", reviewer.value.trim()));
  }
  const apiKey = $("#api-key");
  if (apiKey) {
    apiKey.value = sessionStorage.getItem("echoApiKey") || "";
    apiKey.addEventListener("change", () => sessionStorage.setItem("echoApiKey", apiKey.value));
  }
  const typing = (e) => e.target && ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName);

  // Gallery: a preview that cannot be made becomes a grey box instead of a broken image.
  document.querySelectorAll("img.thumb").forEach((img) => {
    img.addEventListener("error", () => { img.classList.add("missing"); img.alt = "no preview"; });
  });
  document.querySelectorAll("#filters select").forEach((s) => s.addEventListener("change", () => $("#filters").submit()));

  const clip = $("#clip");
  if (!clip) {
    document.addEventListener("keydown", (e) => {
      if (!typing(e) && e.key === "n") { window.location = "/next"; }
    });
    return;
  }
  const clipId = clip.dataset.clipId;

  // Cine player: the film strip is one image of tiles; draw tile i at the file's frame rate.
  const canvas = $("#cine"), sprite = $("#sprite"), scrubber = $("#scrubber"), playBtn = $("#play");
  const frames = JSON.parse(clip.dataset.frames || "[]");
  const fps = parseFloat(clip.dataset.fps) || 30, cols = parseInt(clip.dataset.columns, 10) || 8;
  let current = 0, playing = true, timer = null;
  function draw() {
    if (!canvas || !sprite.complete || !sprite.naturalWidth || !frames.length) { return; }
    const rows = Math.ceil(frames.length / cols);
    const tw = sprite.naturalWidth / cols, th = sprite.naturalHeight / rows;
    if (canvas.width !== tw) { canvas.width = tw; canvas.height = th; }
    const ctx = canvas.getContext("2d");
    ctx.drawImage(sprite, (current % cols) * tw, Math.floor(current / cols) * th, tw, th, 0, 0, tw, th);
    scrubber.value = current;
    $("#frame-no").textContent = "frame " + frames[current] + " / " + frames[frames.length - 1];
  }
  function schedule() {
    clearTimeout(timer);
    if (!playing || frames.length < 2) { return; }
    const gap = current + 1 < frames.length ? frames[current + 1] - frames[current] : 1;
    timer = setTimeout(() => { current = (current + 1) % frames.length; draw(); schedule(); }, 1000 * gap / fps);
  }
  function toggle() { playing = !playing; playBtn.textContent = playing ? "Pause" : "Play"; schedule(); }
  if (canvas) {
    scrubber.max = Math.max(frames.length - 1, 0);
    sprite.addEventListener("load", () => { draw(); schedule(); });
    if (sprite.complete) { draw(); schedule(); }
    playBtn.addEventListener("click", toggle);
    scrubber.addEventListener("input", () => { current = parseInt(scrubber.value, 10) || 0; draw(); });
  }
  function step(d) { if (!frames.length) { return; } playing = true; toggle(); current = (current + d + frames.length) % frames.length; draw(); }

  // Grad-CAM on demand.
  const cam = $("#gradcam");
  function showGradcam() {
    if (!cam || cam.src) { return; }
    $("#gradcam-status").textContent = "computing…";
    cam.addEventListener("load", () => { cam.hidden = false; $("#gradcam-status").textContent = "Grad-CAM over the frames the model saw"; });
    cam.addEventListener("error", () => { $("#gradcam-status").textContent = "Grad-CAM not available (see the server log)"; });
    cam.src = cam.dataset.src;
  }
  const camBtn = $("#show-gradcam");
  if (camBtn) { camBtn.addEventListener("click", showGradcam); }

  // Labelling: POST, then go to the next most uncertain clip.
  async function label(value) {
    const who = (reviewer && reviewer.value.trim()) || "";
    const status = $("#label-status");
    if (!who) { status.textContent = "Enter your name in Reviewer first."; reviewer.focus(); return; }
    localStorage.setItem("echoReviewer", who);
    const headers = { "Content-Type": "application/json" };
    if (apiKey && apiKey.value) { headers["X-API-Key"] = apiKey.value; }
    status.textContent = "saving…";
    const resp = await fetch("/api/labels", {
      method: "POST", headers,
      body: JSON.stringify({ clip_id: clipId, label: value, reviewer: who, comment: $("#comment").value }),
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) { status.textContent = "not saved: " + (data.error || resp.status); return; }
    status.textContent = "saved: " + value;
    window.location = data.next_url;
  }
  document.querySelectorAll(".label-btn").forEach((b) => b.addEventListener("click", () => label(b.dataset.label)));
  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) { return; }
    const keys = { g: "good", p: "poor", u: "unsure" };
    if (keys[e.key]) { e.preventDefault(); label(keys[e.key]); }
    else if (e.key === "n") { window.location = "/next?after=" + clipId; }
    else if (e.key === "c") { showGradcam(); }
    else if (e.key === " " && canvas) { e.preventDefault(); toggle(); }
    else if (e.key === "ArrowRight") { step(1); }
    else if (e.key === "ArrowLeft") { step(-1); }
  });
})();
