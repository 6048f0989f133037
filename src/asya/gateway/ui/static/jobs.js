// Jobs: newest first, refreshed every 2 s, filtered by status and tool, paged with the cursor API.
"use strict";

(() => {
  const { api, every, el, badge, bar, time, duration, show } = Asya;
  const PAGE_SIZE = 25;
  const STATUSES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
  const query = new URLSearchParams(location.search);
  const state = { status: query.get("status") || "", tool: query.get("tool") || "", cursors: [null] };

  const statusSelect = el("select", { id: "filter-status", "aria-label": "status" },
    el("option", { value: "" }, "any status"), STATUSES.map((s) => el("option", { value: s }, s)));
  const toolSelect = el("select", { id: "filter-tool", "aria-label": "tool" }, el("option", { value: "" }, "any tool"));
  const newer = el("button", { id: "page-newer" }, "← Newer");
  const older = el("button", { id: "page-older" }, "Older →");
  const pageLabel = el("span", { class: "muted" });
  const body = el("tbody", { id: "jobs-body" });
  const problem = el("p", { class: "problem", hidden: true });
  const table = el("table", { id: "jobs" },
    el("thead", {}, el("tr", {},
      ["Job", "Tool", "Status", "Progress", "Started", "Duration", "Error"].map((h) => el("th", { class: h === "Duration" ? "num" : null }, h)))),
    body);

  function addressBar() {
    const params = new URLSearchParams();
    if (state.status) params.set("status", state.status);
    if (state.tool) params.set("tool", state.tool);
    history.replaceState(null, "", params.toString() ? `/ui?${params}` : "/ui");
  }

  function row(job) {
    const running = !["Succeeded", "Failed"].includes(job.status);
    const seconds = running ? (Date.now() - new Date(job.created_at)) / 1000 : job.duration_seconds;
    return el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", { class: "mono" }, el("a", { href: `/ui/jobs/${encodeURIComponent(job.id)}` }, job.id.slice(0, 8))),
      el("td", {}, job.tool),
      el("td", {}, badge(job.status)),
      el("td", {}, bar(job.progress_percent, job.status)),
      el("td", {}, time(job.created_at)),
      el("td", { class: "num" + (running ? " muted" : "") }, duration(seconds)),
      el("td", { class: "mono" }, job.error_code || ""));
  }

  async function load() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.status) params.set("status", state.status);
    if (state.tool) params.set("tool", state.tool);
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    let page;
    try {
      page = await api(`/jobs?${params}`);
      problem.hidden = true;
    } catch (error) {
      if (!(error instanceof Asya.Unauthorized)) { problem.hidden = false; problem.textContent = error.message; }
      throw error;
    }
    body.replaceChildren(...page.jobs.map(row));
    if (!page.jobs.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No jobs yet.")));
    state.next = page.next_cursor;
    older.disabled = !page.next_cursor;
    newer.disabled = state.cursors.length === 1;
    pageLabel.textContent = `page ${state.cursors.length}`;
  }

  Asya.start(async () => {
    statusSelect.value = state.status;
    const refresher = every(load);
    const refilter = () => {
      state.status = statusSelect.value;
      state.tool = toolSelect.value;
      state.cursors = [null];
      addressBar();
      refresher.now();
    };
    statusSelect.onchange = refilter;
    toolSelect.onchange = refilter;
    older.onclick = () => { if (state.next) { state.cursors.push(state.next); refresher.now(); } };
    newer.onclick = () => { if (state.cursors.length > 1) { state.cursors.pop(); refresher.now(); } };
    show(
      el("h1", {}, "Jobs"),
      el("div", { class: "filters" }, statusSelect, toolSelect, el("span", { class: "muted" }, "newest first · refreshes every 2 s")),
      problem, table,
      el("div", { class: "pager" }, newer, older, pageLabel));
    try {
      const { tools } = await api("/tools");
      for (const tool of tools) toolSelect.append(el("option", { value: tool.name }, tool.name));
      toolSelect.value = state.tool;
    } catch (error) { /* the table says what is wrong */ }
  });
})();
