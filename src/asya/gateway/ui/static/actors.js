// Actors: every queue the tools route to, the crew's and the dead letters; refreshed every 2 s.
"use strict";

(() => {
  const { api, every, el, badge, show } = Asya;
  const body = el("tbody", { id: "actors-body" });
  const note = el("p", { class: "muted" });

  function number(value) {
    return value === null || value === undefined ? "—" : String(value);
  }

  function rate(value) {
    if (value === null || value === undefined) return "—";
    return (value > 0 ? "+" : "") + value.toFixed(1);
  }

  function row(actor) {
    const stalled = actor.role === "step" && actor.consumers === 0 && actor.depth > 0;
    const replicas = actor.replicas === null ? "—" : actor.desired !== null && actor.desired !== actor.replicas ? `${actor.replicas} → ${actor.desired}` : String(actor.replicas);
    return el("tr", { "data-queue": actor.queue },
      el("td", { class: "mono" }, actor.queue),
      el("td", {}, actor.role),
      el("td", {}, actor.tools.join(", ")),
      el("td", { class: "num depth" + (stalled ? " warn" : "") }, number(actor.depth)),
      el("td", { class: "num consumers" }, number(actor.consumers)),
      el("td", { class: "num" }, rate(actor.depth_per_second)),
      el("td", { class: "num" }, replicas),
      el("td", {}, actor.error ? el("span", { class: "problem" }, actor.error) : actor.state ? badge(actor.state) : stalled ? el("span", { class: "warn" }, "no consumer") : ""));
  }

  async function load() {
    const answer = await api("/actors");
    body.replaceChildren(...answer.actors.map(row));
    note.textContent = answer.mesh
      ? "Replicas and state from the running asya up mesh. Δ depth/s: positive when the queue grows."
      : "Replicas are shown when the gateway runs under asya up. Δ depth/s: positive when the queue grows.";
  }

  Asya.start(() => {
    show(
      el("h1", {}, "Actors"),
      el("table", { id: "actors" },
        el("thead", {}, el("tr", {},
          ["Queue", "Role", "Tools", "Depth", "Consumers", "Δ depth/s", "Replicas", "State"].map((h) =>
            el("th", { class: ["Depth", "Consumers", "Δ depth/s", "Replicas"].includes(h) ? "num" : null }, h)))),
        body),
      note);
    every(load);
  });
})();
