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
        // Reload at once: the jobs table then shows the running job and follows its progress.
        sessionStorage.setItem("nhsLookup.uploadNote", "Job " + job.id.slice(0, 8) + " started: " + job.total +
          " row(s)" + (job.row_errors.length ? ", " + job.row_errors.length + " row(s) not readable" : "") + ".");
        window.location.reload();
      } catch (err) {
        status.className = "status-line error";
        status.textContent = err.message;
      }
    });
  }

  const uploadNote = sessionStorage.getItem("nhsLookup.uploadNote");
  if (uploadNote && $("#upload-status")) {
    $("#upload-status").textContent = uploadNote;
    sessionStorage.removeItem("nhsLookup.uploadNote");
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
    }, (j) => { row.dataset.status = j.status; window.location.reload(); });  // refresh the summary
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
        const preview = await api("POST", "/mappings/bulk-approve", Object.assign({}, body, { dry_run: true }));
        const where = body.data_source ? " from " + body.data_source : "";
        status.className = "status-line";
        if (!preview.approved) {
          status.textContent = "Nothing to approve: no undecided proposal" + where + " at confidence ≥ " + body.threshold + ".";
          return;
        }
        const question = "Approve " + preview.approved + " mapping(s)" + where + " with confidence ≥ " + body.threshold +
          (body.include_flagged ? ", flagged ones included" : "") + "?\nEach approval is recorded under " + body.reviewer + ".";
        if (!window.confirm(question)) { status.textContent = "Bulk approve cancelled: nothing changed."; return; }
        const out = await api("POST", "/mappings/bulk-approve", body);
        status.textContent = "Approved " + out.approved + " mapping(s) at confidence ≥ " + out.threshold + ".";
        setTimeout(() => window.location.reload(), 1500);
      } catch (err) {
        if (err.message !== "no reviewer") { status.className = "status-line error"; status.textContent = err.message; }
      }
    });
  }

  // ---------------------------------------------------------------- undo the last decision
  // The last decision (one mapping, or every row of a multi-select) is remembered in this tab;
  // 'u' or the Undo button resets it to the engine's proposal (the API's 'reset' action).
  function remember(ids, text) { sessionStorage.setItem("nhsLookup.last", JSON.stringify({ ids, text })); showUndo(); }
  function lastDecision() { try { return JSON.parse(sessionStorage.getItem("nhsLookup.last")); } catch (e) { return null; } }
  function showUndo() {
    const bar = $("#undo-bar"), last = lastDecision();
    if (!bar) return;
    bar.hidden = !last;
    if (last) $("#undo-text").textContent = "Last: " + last.text + ".";
  }
  async function undoLast() {
    const last = lastDecision();
    if (!last) return false;
    let who;
    try { who = reviewer(); } catch (e) { return true; }
    try {
      for (const id of last.ids) await api("POST", "/mappings/" + id + "/decision", { action: "reset", reviewer: who, comment: "undo" });
      sessionStorage.removeItem("nhsLookup.last");
      toast("Undone: " + last.text + ".");
      setTimeout(() => {
        if (last.ids.length === 1) window.location.href = "/ui/review/" + last.ids[0];
        else window.location.reload();
      }, 300);
    } catch (err) { toast(err.message, true); }
    return true;
  }
  showUndo();
  if ($("#undo-last")) $("#undo-last").addEventListener("click", undoLast);
  if (!$("#review")) {
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "u" && !typing(ev) && !ev.ctrlKey && !ev.metaKey && !ev.altKey) undoLast();
    });
  }

  // ---------------------------------------------------------------- sortable tables
  $$("table.sortable").forEach((table) => {
    $$("thead th[data-sort]", table).forEach((th) => {
      th.classList.add("sort");
      th.addEventListener("click", () => {
        const col = Array.from(th.parentNode.children).indexOf(th);
        const asc = th.dataset.dir !== "asc";
        $$("thead th", table).forEach((h) => { delete h.dataset.dir; });
        th.dataset.dir = asc ? "asc" : "desc";
        const key = (tr) => {
          const td = tr.children[col];
          return th.dataset.sort === "num" ? parseFloat(td.dataset.value) : td.textContent.trim().toLowerCase();
        };
        const body = $("tbody", table);
        $$("tr", body).sort((a, b) => {
          const x = key(a), y = key(b);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        }).forEach((tr) => body.appendChild(tr));
        table.dispatchEvent(new Event("sorted"));
      });
    });
  });

  // ---------------------------------------------------------------- queue page
  const queue = $("#queue");
  if (queue) {
    let rows = $$("tbody tr", queue);
    queue.addEventListener("sorted", () => { rows = $$("tbody tr", queue); select(0); });
    let selected = rows.length ? 0 : -1;
    const select = (i) => {
      if (!rows.length) return;
      selected = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r, k) => r.classList.toggle("selected", k === selected));
      rows[selected].scrollIntoView({ block: "nearest" });
    };
    select(0);
    rows.forEach((r) => r.addEventListener("click", (ev) => {
      if (ev.target.tagName === "A" || ev.target.tagName === "INPUT") return;
      select(rows.indexOf(r));
      window.location.href = r.dataset.href;
    }));

    // multi-select: tick rows (or 'select all shown'), choose an action, confirm, apply
    const picks = () => $$("tbody input.pick:checked", queue);
    const refresh = () => {
      const n = picks().length;
      $("#selected-count").textContent = n + " selected";
      $("#multi-apply").disabled = n === 0;
      $("#select-all").checked = n > 0 && n === rows.length;
    };
    $$("tbody input.pick", queue).forEach((c) => c.addEventListener("change", refresh));
    $("#select-all").addEventListener("change", (ev) => {
      $$("tbody input.pick", queue).forEach((c) => { c.checked = ev.target.checked; });
      refresh();
    });
    $("#multi-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const action = $("#multi-action").value;
      const label = $("#multi-action").selectedOptions[0].textContent;
      let chosen = picks().map((c) => c.closest("tr"));
      let who;
      try { who = reviewer(); } catch (e) { return; }
      if (action === "approve") chosen = chosen.filter((tr) => tr.dataset.hasTarget === "true");
      if (!chosen.length) { toast("None of the selected rows has a proposed row to approve.", true); return; }
      const names = chosen.slice(0, 5).map((tr) => "  " + tr.dataset.name).join("\n") + (chosen.length > 5 ? "\n  …" : "");
      if (!window.confirm(label + ": " + chosen.length + " mapping(s)?\n" + names)) return;
      const done = [];
      try {
        for (const tr of chosen) {
          await api("POST", "/mappings/" + tr.dataset.id + "/decision", { action, reviewer: who });
          done.push(Number(tr.dataset.id));
        }
        toast(label + ": " + done.length + " mapping(s). Press u to undo.");
      } catch (err) { toast(err.message + " (" + done.length + " done before the error)", true); }
      if (done.length) remember(done, action.replace("_", " ") + " on " + done.length + " mapping(s)");
      setTimeout(() => window.location.reload(), 900);
    });
    document.addEventListener("keydown", async (ev) => {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); select(selected + 1); }
      else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); select(selected - 1); }
      else if (ev.key === "Enter" && selected >= 0) { window.location.href = rows[selected].dataset.href; }
      else if (ev.key === "x" && selected >= 0) {
        const c = $("input.pick", rows[selected]);
        c.checked = !c.checked;
        c.dispatchEvent(new Event("change"));
      }
      else if (ev.key === "a" && selected >= 0) {
        try {
          await api("POST", "/mappings/" + rows[selected].dataset.id + "/decision", { action: "approve", reviewer: reviewer() });
          remember([Number(rows[selected].dataset.id)], "approved '" + rows[selected].dataset.name + "'");
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
        if (action === "reset") { sessionStorage.removeItem("nhsLookup.last"); setTimeout(() => window.location.reload(), 300); return; }
        remember([Number(id)], action.replace("_", " ") + " '" + m.exam_name + "'");
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
      if (ev.key === "u") {  // undo the last decision of this tab, else this exam's own decision
        ev.preventDefault();
        if (!lastDecision() && !$("#undo-decision").disabled) decide("reset");
        else undoLast();
        return;
      }
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
