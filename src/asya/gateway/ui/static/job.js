// Job: everything about one job, live over its SSE stream (the stream replays past updates first).
"use strict";

(() => {
  const { api, stream, el, badge, bar, time, duration, pretty, branchPath, show } = Asya;
  const jobId = document.body.dataset.jobId;
  const TERMINAL = ["Succeeded", "Failed"];
  const state = { job: null, steps: [], branches: new Map(), config: {} };

  function stepFor(name) {
    // A queue may appear twice in a route: an update belongs to its first step not yet completed.
    const candidates = state.steps.filter((step) => step.name === name);
    return candidates.find((step) => step.status !== "completed") || candidates[candidates.length - 1];
  }

  function apply(update) {
    const job = state.job;
    job.status = update.status;
    if (update.progress_percent !== null && update.progress_percent !== undefined) {
      job.progress_percent = Math.max(job.progress_percent, update.progress_percent);
    }
    if (update.message) job.message = update.message;
    if (update.branch && update.branch.length) {
      const path = branchPath(update.branch);
      const known = state.branches.get(path) || { path, status: "running", step: null };
      if (update.step) known.step = update.step;
      if (update.step_status) known.status = update.step_status;
      if (/ failed/.test(update.message || "")) known.status = "failed";
      else if (/ succeeded/.test(update.message || "")) known.status = "completed";
      if (update.progress_percent !== null) known.percent = update.progress_percent;
      state.branches.set(path, known);
    }
    const step = update.step && stepFor(update.step);
    if (step) {
      if (!step.first) step.first = update.timestamp;
      step.last = update.timestamp;
      if (update.step_status && step.status !== "completed") step.status = update.step_status;
    }
  }

  function facts(job) {
    const seconds = TERMINAL.includes(job.status)
      ? (new Date(job.updated_at) - new Date(job.created_at)) / 1000
      : (Date.now() - new Date(job.created_at)) / 1000;
    const fact = (label, value) => el("div", { class: "fact card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
    return el("div", { class: "grid" },
      fact("Status", badge(job.status)),
      fact("Tool", job.tool),
      fact("Started", time(job.created_at)),
      fact("Duration", duration(seconds)),
      fact("Deadline", job.deadline ? time(job.deadline) : "none"));
  }

  function timeline(job) {
    const failedStep = job.error_details && job.error_details.failed_step;
    return el("ol", { class: "timeline card", id: "timeline" }, state.steps.map((step, index) => {
      let status = step.status || "waiting";
      if (job.status === "Failed" && failedStep === step.name && status !== "completed") status = "failed";
      if (job.status === "Succeeded") status = "completed";
      const seconds = step.first && step.last ? (new Date(step.last) - new Date(step.first)) / 1000 : null;
      return el("li", { "data-step": step.name, "data-step-status": status },
        el("span", { class: "index" }, index + 1),
        el("span", { class: "step mono" }, step.name),
        badge(status),
        el("span", { class: "muted" }, step.first ? duration(seconds) : ""));
    }));
  }

  function branches() {
    if (!state.branches.size) return [];
    const rows = [...state.branches.values()].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
    return [el("h2", {}, `Fan-out branches (${rows.length})`),
      el("table", { id: "branches" },
        el("thead", {}, el("tr", {}, ["Branch", "Step", "Status", "Progress"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((branch) => el("tr", {},
          el("td", { class: "mono" }, branch.path),
          el("td", { class: "mono" }, branch.step || ""),
          el("td", {}, badge(branch.status)),
          el("td", {}, bar(branch.status === "completed" ? 100 : branch.percent || 0, branch.status === "failed" ? "Failed" : ""))))))];
  }

  function outcome(job) {
    if (job.status === "Succeeded") return [el("h2", {}, "Result"), el("div", { id: "result" }, pretty(job.result))];
    if (job.status !== "Failed") return [];
    const details = job.error_details || {};
    const item = (label, value) => (value === null || value === undefined || value === "" ? [] : [el("dt", {}, label), el("dd", { class: "mono" }, typeof value === "string" ? value : JSON.stringify(value))]);
    return [el("h2", {}, "Failure"),
      el("div", { class: "failure card", id: "failure" },
        el("dl", {},
          item("Code", details.code), item("Message", details.message || job.error), item("Type", details.type),
          item("Failed step", details.failed_step), item("Branch", details.branch ? branchPath(details.branch) : null),
          item("Attempts", details.attempts), item("Failed branches", details.failed_branches)),
        details.traceback ? el("pre", { class: "traceback", id: "traceback" }, details.traceback) : null)];
  }

  function cancelButton(job) {
    if (!state.config.cancel || TERMINAL.includes(job.status)) return null;
    const button = el("button", { class: "danger", id: "cancel" }, "Cancel job");
    button.onclick = async () => {
      if (!confirm("Cancel this job?")) return;
      button.disabled = true;
      try { await api(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" }); }
      catch (error) { alert(`Cannot cancel: ${error.message}`); button.disabled = false; }
    };
    return button;
  }

  function render() {
    const job = state.job;
    show(
      el("div", { class: "row-actions" }, el("h1", {}, `Job `, el("span", { class: "mono" }, job.id)), cancelButton(job)),
      facts(job),
      el("div", { class: "card", id: "progress" }, bar(job.progress_percent, job.status, true),
        el("div", { class: "muted" }, `${Number(job.progress_percent).toFixed(0)} %` + (job.message ? ` · ${job.message}` : ""))),
      el("h2", {}, "Route"), timeline(job),
      branches(),
      outcome(job),
      el("h2", {}, "Arguments"), pretty(job.payload));
  }

  async function reload() {
    const fresh = await api(`/jobs/${encodeURIComponent(jobId)}`);
    state.job = { ...fresh, progress_percent: Math.max(fresh.progress_percent, state.job ? state.job.progress_percent : 0) };
    render();
  }

  Asya.start(async (config) => {
    state.config = config;
    try {
      state.job = await api(`/jobs/${encodeURIComponent(jobId)}`);
    } catch (error) {
      if (!(error instanceof Asya.Unauthorized)) show(el("h1", {}, "Job"), el("p", { class: "problem" }, error.message));
      return;
    }
    state.steps = (state.job.route.steps || []).map((name) => ({ name, status: null, first: null, last: null }));
    render();
    stream(`/jobs/${encodeURIComponent(jobId)}/stream`, (event, data) => {
      if (event !== "update") return;
      const update = JSON.parse(data);
      apply(update);
      if (TERMINAL.includes(update.status)) reload();
      else render();
    }, () => reload());
  });
})();
