// Shared by every console page: the API key, API calls, the SSE reader and small DOM helpers.
"use strict";

const Asya = (() => {
  const KEY = "asya.apiKey";
  const REFRESH_MS = 2000;

  function storedKey() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
  }

  function authHeaders() {
    const key = storedKey();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function askKey(problem) {
    document.getElementById("main").hidden = true;
    const form = document.getElementById("key-form");
    form.hidden = false;
    const note = document.getElementById("key-problem");
    note.hidden = !problem;
    note.textContent = problem || "";
    form.onsubmit = (event) => {
      event.preventDefault();
      const key = document.getElementById("key-input").value.trim();
      const remember = document.getElementById("key-remember").checked;
      sessionStorage.removeItem(KEY);
      localStorage.removeItem(KEY);
      (remember ? localStorage : sessionStorage).setItem(KEY, key);
      location.reload();
    };
    document.getElementById("key-input").focus();
  }

  class Unauthorized extends Error {}

  async function api(path, options = {}) {
    const response = await fetch(path, {
      ...options,
      headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
    });
    if (response.status === 401) {
      askKey(storedKey() ? "That key was not accepted." : "");
      throw new Unauthorized("unauthorized");
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
    }
    return body;
  }

  // Server-sent events over fetch (EventSource cannot send the bearer key). Reconnects with
  // Last-Event-ID until the stream ends by itself (the job is terminal) or stop() is called.
  function stream(path, onEvent, onEnd) {
    let lastId = null;
    let stopped = false;
    const controller = new AbortController();
    async function once() {
      const headers = { Accept: "text/event-stream", ...authHeaders() };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const response = await fetch(path, { headers, signal: controller.signal });
      if (response.status === 401) { askKey("That key was not accepted."); return true; }
      if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return true;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = { event: "message", data: [], id: null };
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event.event = text;
            else if (field === "data") event.data.push(text);
            else if (field === "id") event.id = text;
          }
          if (event.id !== null) lastId = event.id;
          if (event.data.length) onEvent(event.event, event.data.join("\n"));
        }
      }
    }
    (async () => {
      let delay = 500;
      while (!stopped) {
        try {
          if (await once()) break;
        } catch (error) {
          if (stopped) return;
          setLive(false);
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5000);
      }
      if (!stopped && onEnd) onEnd();
    })();
    return { stop() { stopped = true; controller.abort(); } };
  }

  // Refresh every 2 s; the next refresh waits for the previous answer (no pile-up).
  function every(work) {
    let timer = null;
    async function tick() {
      try {
        await work();
        setLive(true);
      } catch (error) {
        if (error instanceof Unauthorized) return;
        setLive(false, error.message);
      }
      timer = setTimeout(tick, REFRESH_MS);
    }
    tick();
    return { now() { clearTimeout(timer); tick(); } };
  }

  function setLive(ok, why) {
    const live = document.getElementById("live");
    live.classList.toggle("stale", !ok);
    live.textContent = ok ? "live" : "reconnecting";
    live.title = why || (ok ? "refreshing live" : "");
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(status) {
    return el("span", { class: `badge ${status}` }, status);
  }

  function bar(percent, status, wide) {
    const value = Math.max(0, Math.min(100, Number(percent) || 0));
    return el("span", {},
      el("span", { class: `bar ${status || ""} ${wide ? "wide" : ""}`, role: "progressbar", "aria-valuenow": value.toFixed(0) },
        el("span", { style: `width:${value}%` })),
      wide ? null : el("span", { class: "pct" }, `${value.toFixed(0)} %`));
  }

  function time(iso) {
    if (!iso) return "—";
    const moment = new Date(iso);
    const sameDay = moment.toDateString() === new Date().toDateString();
    return sameDay ? moment.toLocaleTimeString() : moment.toLocaleString();
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function pretty(value) {
    return el("pre", { class: "mono" }, JSON.stringify(value, null, 2));
  }

  function branchPath(branch) {
    return (branch || []).map((level) => `${level.index}/${level.count}`).join(".");
  }

  function show(...nodes) {
    const main = document.getElementById("main");
    main.replaceChildren(...nodes.flat(Infinity).filter((node) => node !== null && node !== undefined));
  }

  async function start(render) {
    const page = document.body.dataset.page;
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === page || (page === "job" && link.dataset.nav === "jobs"));
    }
    const config = await (await fetch("/ui/config")).json();
    const forget = document.getElementById("forget-key");
    forget.hidden = !config.auth_required;
    forget.onclick = () => { sessionStorage.removeItem(KEY); localStorage.removeItem(KEY); location.reload(); };
    if (config.auth_required && !storedKey()) { askKey(""); return; }
    render(config);
  }

  return { api, stream, every, el, badge, bar, time, duration, pretty, branchPath, show, start, setLive, Unauthorized };
})();
