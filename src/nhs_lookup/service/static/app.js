/* NHS lookup review app: a little vanilla JavaScript on top of server-rendered pages.
   Every write goes through the JSON API (with X-API-Key when the server needs one). */
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const store = window.localStorage;

  // ---------------------------------------------------------------- settings
  const reviewerInput = $("#reviewer");
  const keyInput = $("#api-key");
  if (reviewerInput) {
    reviewerInput.value = store.getItem("nhsLookup.reviewer") || "";
    reviewerInput.addEventListener("change", () => store.setItem("nhsLookup.reviewer", reviewerInput.value.trim()));
  }
  if (keyInput) {
    keyInput.value = store.getItem("nhsLookup.apiKey") || "";
    keyInput.addEventListener("change", () => store.setItem("nhsLookup.apiKey", keyInput.value));
  }

  function reviewer() {
    const name = reviewerInput ? reviewerInput.value.trim() : "";
    if (!name) {
      toast("Enter your name as reviewer first (top right).", true);
      if (reviewerInput) reviewerInput.focus();
      throw new Error("no reviewer");
    }
    store.setItem("nhsLookup.reviewer", name);
    return name;
  }

  let toastTimer = null;
  function toast(message, isError) {
    const el = $("#toast");
    if (!el) return;
    el.textContent = message;
    el.className = "show" + (isError ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.className = isError ? "error" : ""; }, isError ? 6000 : 2500);
  }

  async function api(method, url, body) {
    const headers = {};
    const key = keyInput ? keyInput.value : "";
    if (key) headers["X-API-Key"] = key;
    let payload = body;
    if (body && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await fetch(url, { method, headers, body: payload });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new Error((data && data.error) || res.status + " " + res.statusText);
    return data;
  }

  function typing(ev) {
    const t = ev.target;
    return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  }

  // No inline handlers or style attributes: the Content-Security-Policy allows only this file.
  $$("select[data-autosubmit]").forEach((el) => el.addEventListener("change", () => el.form.submit()));
  $$("[data-width]").forEach((el) => { el.style.width = Math.max(0, Math.min(100, Number(el.dataset.width) || 0)) + "%"; });

  // ---------------------------------------------------------------- jobs page
  const uploadForm = $("#upload-form");
  if (uploadForm) {
    uploadForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = $("#upload-file").files[0];
      const status = $("#upload-status");
      if (!file) return;
      const form = new FormData();
      form.append("file", file);
      const label = $("#upload-name").value.trim();
      if (label) form.append("name", label);
      status.className = "status-line";
      status.textContent = "Uploading " + file.name + "…";
      try {
        const job = await api("POST", "/batch", form);
        status.textContent = "Job " + job.id.slice(0, 8) + " started: 0 / " + job.total +
          (job.row_errors.length ? " (" + job.row_errors.length + " row(s) not readable)" : "");
        pollJob(job.id, (j) => {
          status.textContent = "Job " + j.id.slice(0, 8) + ": " + j.status + ", " + j.processed + " / " + j.total;
          status.dataset.status = j.status;
        }, () => window.location.reload());
      } catch (err) {
        status.className = "status-line error";
        status.textContent = err.message;
      }
    });
  }

  function pollJob(id, onUpdate, onDone) {
    const tick = async () => {
      try {
        const j = await api("GET", "/jobs/" + id);
        onUpdate(j);
        if (j.status === "queued" || j.status === "running") setTimeout(tick, 400);
        else if (onDone) onDone(j);
      } catch (err) { toast(err.message, true); }
    };
    tick();
  }

  $$("#jobs tr[data-job-id]").forEach((row) => {
    if (row.dataset.status !== "queued" && row.dataset.status !== "running") return;
    pollJob(row.dataset.jobId, (j) => {
      const badge = $("[data-field=status]", row);
      badge.textContent = j.status;
      badge.className = "badge st-" + j.status;
      $("progress", row).max = j.total || 1;
      $("progress", row).value = j.processed;
      $("[data-field=count]", row).textContent = j.processed + " / " + j.total;
    });
  });

  const bulkForm = $("#bulk-form");
  if (bulkForm) {
    bulkForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = $("#bulk-status");
      try {
        const body = {
          threshold: parseFloat($("#bulk-threshold").value),
          reviewer: reviewer(),
          data_source: $("#bulk-source").value || null,
          include_flagged: $("#bulk-flagged").checked,
        };
        const out = await api("POST", "/mappings/bulk-approve", body);
        status.className = "status-line";
        status.textContent = "Approved " + out.approved + " mapping(s) at confidence ≥ " + out.threshold + ".";
        setTimeout(() => window.location.reload(), 900);
      } catch (err) {
        if (err.message !== "no reviewer") { status.className = "status-line error"; status.textContent = err.message; }
      }
    });
  }

  // ---------------------------------------------------------------- queue page
  const queue = $("#queue");
  if (queue) {
    const rows = $$("tbody tr", queue);
    let selected = rows.length ? 0 : -1;
    const select = (i) => {
      if (!rows.length) return;
      selected = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r, k) => r.classList.toggle("selected", k === selected));
      rows[selected].scrollIntoView({ block: "nearest" });
    };
    select(0);
    rows.forEach((r, k) => r.addEventListener("click", (ev) => {
      if (ev.target.tagName === "A") return;
      select(k);
      window.location.href = r.dataset.href;
    }));
    document.addEventListener("keydown", async (ev) => {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); select(selected + 1); }
      else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); select(selected - 1); }
      else if (ev.key === "Enter" && selected >= 0) { window.location.href = rows[selected].dataset.href; }
      else if (ev.key === "a" && selected >= 0) {
        try {
          await api("POST", "/mappings/" + rows[selected].dataset.id + "/decision", { action: "approve", reviewer: reviewer() });
          toast("Approved.");
          setTimeout(() => window.location.reload(), 300);
        } catch (err) { if (err.message !== "no reviewer") toast(err.message, true); }
      }
    });
  }

  // ---------------------------------------------------------------- review page
  const review = $("#review");
  if (review) {
    const id = review.dataset.mappingId;
    const nextUrl = review.dataset.nextUrl;
    const goNext = () => { window.location.href = nextUrl || review.dataset.queueUrl; };

    async function decide(action, targetName) {
      let body;
      try {
        body = { action, reviewer: reviewer(), equivalence: $("#equivalence").value };
      } catch (e) { return; }
      const comment = $("#comment").value.trim();
      if (comment) body.comment = comment;
      if (targetName) body.target_name = targetName;
      try {
        const m = await api("POST", "/mappings/" + id + "/decision", body);
        toast(action.replace("_", " ") + ": " + m.status.replace("_", " ") + (m.target_name ? " → " + m.target_name : ""));
        if (action === "reject") setTimeout(() => window.location.reload(), 300);
        else setTimeout(goNext, 300);
      } catch (err) { toast(err.message, true); }
    }

    $$("#actions [data-action]").forEach((b) => b.addEventListener("click", () => decide(b.dataset.action)));
    const nextBtn = $("#actions [data-nav=next]");
    if (nextBtn) nextBtn.addEventListener("click", goNext);
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("[data-choose]");
      if (b) decide("choose", b.dataset.choose);
    });

    const searchForm = $("#search-form");
    searchForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const q = $("#search-q").value.trim();
      if (!q) return;
      try {
        const hits = await api("GET", "/catalogue/search?limit=15&q=" + encodeURIComponent(q));
        const table = $("#search-results");
        const tbody = $("tbody", table);
        tbody.innerHTML = "";
        hits.forEach((h) => {
          const tr = document.createElement("tr");
          const cells = [h.name, (h.snomed_id || "") + (h.laterality ? " · " + h.laterality : ""), h.modality || ""];
          cells.forEach((text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
          const td = document.createElement("td");
          const btn = document.createElement("button");
          btn.textContent = "Use";
          btn.dataset.choose = h.name;
          td.appendChild(btn);
          tr.appendChild(td);
          tbody.appendChild(tr);
        });
        table.hidden = false;
        if (!hits.length) toast("No catalogue rows match '" + q + "'.");
      } catch (err) { toast(err.message, true); }
    });

    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && typing(ev)) { ev.target.blur(); return; }
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const keyActions = { a: "approve", n: "no_match", f: "flag", d: "defer", r: "reject" };
      if (keyActions[ev.key]) {
        const btn = $('#actions [data-action="' + keyActions[ev.key] + '"]');
        if (btn && !btn.disabled) { ev.preventDefault(); decide(keyActions[ev.key]); }
      } else if (ev.key === "j" || ev.key === "ArrowRight") { ev.preventDefault(); goNext(); }
      else if (ev.key === "q") { window.location.href = review.dataset.queueUrl; }
      else if (ev.key === "/") { ev.preventDefault(); $("#search-q").focus(); }
      else if (ev.key === "c") { ev.preventDefault(); $("#comment").focus(); }
      else if (/^[1-9]$/.test(ev.key)) {
        const btn = $('#candidates [data-index="' + ev.key + '"]');
        if (btn) { ev.preventDefault(); decide("choose", btn.dataset.choose); }
      }
    });
  }
})();
