// The run inspector: lists the caller's runs from /v1/runs and draws one as an SVG timeline.
// Vanilla JS with no dependencies; text only ever goes in through textContent, never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "agentmesh.inspector.token";
  const POLL_BUSY_MS = 1000; // while a run is in progress
  const POLL_IDLE_MS = 3000; // so that new runs show up
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ROOMY = { width: 960, label: 200, right: 24, top: 28, row: 30, bar: 18 };
  // Beyond COMPACT_AFTER subtasks (a big fan-out), thinner rows at their natural size, scrolled in the frame.
  const COMPACT = { ...ROOMY, row: 14, bar: 10 };
  const COMPACT_AFTER = 32;
  let LAYOUT = ROOMY;

  const $ = (id) => document.getElementById(id);
  let selectedId = null;
  let timer = null;

  function el(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== "") node.textContent = text;
    return node;
  }

  function svg(tag, attributes = {}, text = "") {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== "") node.textContent = text;
    return node;
  }

  function say(message, kind = "") {
    const status = $("status");
    status.textContent = message;
    status.className = kind;
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(value < 10000 ? 2 : 1)} s`;
  }

  function count(n, noun) {
    return `${n} ${noun}${n === 1 ? "" : "s"}`;
  }

  function usd(value) {
    if (value === null || value === undefined) return "unpriced";
    return value < 0.01 ? `$${value.toFixed(6)}` : `$${value.toFixed(4)}`;
  }

  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) throw new ApiFailure(401, "no token yet");
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (response.ok) return body;
    throw new ApiFailure(response.status, (body && body.error && body.error.message) || `HTTP ${response.status}`);
  }

  // ---- the list of runs ----

  function runRow(run) {
    const row = el("tr", { "data-run-id": run.id, "data-status": run.status, tabindex: "0" });
    if (run.id === selectedId) row.classList.add("selected");
    const started = new Date(run.created * 1000).toLocaleTimeString();
    const status = run.status === "error" ? `error in ${run.error.phase}` : run.status.replace("_", " ");
    row.append(
      el("td", { title: run.id }, started),
      el("td", { class: `status-${run.status}` }, status),
      el("td", {}, String(run.subtasks_count)),
      el("td", {}, ms(run.duration_ms)),
      el("td", {}, usd(run.cost_usd)),
    );
    row.addEventListener("click", () => select(run.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") select(run.id);
    });
    return row;
  }

  function drawRuns(runs) {
    $("runs").tBodies[0].replaceChildren(...runs.map(runRow));
    $("no-runs").hidden = runs.length > 0;
  }

  // ---- one run ----

  function drawRun(run) {
    $("run-pane").hidden = false;
    $("run-title").textContent = run.id;
    $("run-meta").textContent =
      `${run.status.replace("_", " ")} · ${ms(run.duration_ms)} · ${count(run.subtasks_count, "subtask")} · ` +
      `${run.stream ? "streamed" : "not streamed"} · request ${run.request_id} · ` +
      `started ${new Date(run.created * 1000).toLocaleString()}`;
    const error = $("run-error");
    error.hidden = !run.error;
    error.textContent = run.error ? `Failed in ${run.error.phase} (${run.error.code}): ${run.error.message}` : "";
    const fallback = $("run-fallback");
    const isFallback = Boolean(run.plan && run.plan.fallback);
    fallback.hidden = !isFallback;
    fallback.textContent = isFallback ? `Fallback plan: ${run.plan.fallback_reason || "the planner gave none"}` : "";
    drawTimeline(run);
    drawPlan(run);
    drawUsage(run);
    drawPhases(run);
  }

  function timelineRows(run) {
    const rows = [{ kind: "phase", key: "planning", label: "planning", span: run.phases.planning }];
    for (const subtask of run.subtasks) {
      rows.push({ kind: "subtask", key: subtask.id, label: subtaskLabel(subtask), subtask });
    }
    if (run.phases.synthesis) {
      rows.push({ kind: "phase", key: "synthesis", label: "synthesis", span: run.phases.synthesis });
    }
    return rows;
  }

  function niceStep(total) {
    const rough = total / 8;
    const power = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
    return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough) || power * 10;
  }

  function drawTimeline(run) {
    const timeline = $("timeline");
    const compact = run.subtasks.length > COMPACT_AFTER;
    LAYOUT = compact ? COMPACT : ROOMY;
    timeline.classList.toggle("compact", compact);
    const rows = timelineRows(run);
    const height = LAYOUT.top + rows.length * LAYOUT.row + 8;
    const total = Math.max(run.duration_ms, ...run.subtasks.map((s) => s.finished_ms || 0), 1);
    const plotWidth = LAYOUT.width - LAYOUT.label - LAYOUT.right;
    const x = (t) => LAYOUT.label + (Math.min(t, total) / total) * plotWidth;
    const y = (index) => LAYOUT.top + index * LAYOUT.row + (LAYOUT.row - LAYOUT.bar) / 2;
    timeline.setAttribute("viewBox", `0 0 ${LAYOUT.width} ${height}`);
    timeline.setAttribute("data-status", run.status);
    const parts = [arrowMarker()];

    const step = niceStep(total);
    for (let t = 0; t <= total; t += step) {
      parts.push(svg("line", { class: "tick", x1: x(t), x2: x(t), y1: LAYOUT.top - 6, y2: height }));
      parts.push(svg("text", { class: "tick-label", x: x(t), y: LAYOUT.top - 10 }, ms(t)));
    }

    const where = new Map();
    rows.forEach((row, index) => {
      const top = y(index);
      parts.push(svg("text", { class: "row-label", x: LAYOUT.label - 8, y: top + LAYOUT.bar / 2 }, clip(row.label, 28)));
      const start = row.kind === "phase" ? row.span.started_ms : row.subtask.started_ms;
      let end = row.kind === "phase" ? row.span.finished_ms : row.subtask.finished_ms;
      if (start === null) return; // a subtask still waiting for its dependencies
      const open = end === null;
      if (open) end = run.duration_ms;
      const bar = svg("rect", {
        x: x(start),
        y: top,
        width: Math.max(x(end) - x(start), 3),
        height: LAYOUT.bar,
        rx: 3,
      });
      const title = svg("title");
      if (row.kind === "phase") {
        bar.setAttribute("class", `bar phase ${row.key}${open ? " open" : ""}`);
        bar.setAttribute("data-phase", row.key);
        title.textContent = `${row.key}: ${ms(end - start)}${open ? " so far" : ""}`;
      } else {
        const subtask = row.subtask;
        bar.setAttribute("class", `bar subtask outcome-${subtask.outcome}`);
        bar.setAttribute("data-subtask-id", subtask.id);
        bar.setAttribute("data-outcome", subtask.outcome);
        title.textContent =
          `${subtask.id} ${subtask.title}${by(subtask)}: ${subtask.outcome.replace("_", " ")}, ${ms(end - start)}` +
          (subtask.error ? `\n${subtask.error}` : "") +
          subtask.tool_calls.map((call) => `\n${toolCallText(call)}`).join("") +
          (subtask.tool_loop_end && subtask.tool_loop_end !== "answered" ? `\ntool loop: ${subtask.tool_loop_end.replace("_", " ")}` : "");
        where.set(subtask.id, { start: x(start), end: x(end), middle: top + LAYOUT.bar / 2 });
      }
      bar.append(title);
      parts.push(bar);
      if (row.kind === "subtask" && row.subtask.queued_ms) {
        // The part of the subtask spent waiting for the model's rate limit, at its start.
        const waited = Math.min(start + row.subtask.queued_ms, end);
        const part = svg("rect", { class: "queued-part", x: x(start), y: top, width: Math.max(x(waited) - x(start), 2), height: LAYOUT.bar, rx: 3 });
        part.setAttribute("data-queued-ms", String(row.subtask.queued_ms));
        part.append(svg("title", {}, `${row.subtask.id}: ${ms(row.subtask.queued_ms)} queued for quota`));
        parts.push(part);
      }
      if (row.kind === "subtask" && row.subtask.tool_calls.length) {
        parts.push(toolsOnBar(row.subtask, x(start), top));
      }
    });

    for (const subtask of run.subtasks) {
      const to = where.get(subtask.id);
      for (const dependency of subtask.depends_on) {
        const from = where.get(dependency);
        if (!from || !to) continue;
        parts.push(svg("path", { class: "dependency", d: elbow(from, to), "marker-end": "url(#arrow)", "data-from": dependency, "data-to": subtask.id }));
      }
    }
    if (run.status === "in_progress") {
      parts.push(svg("line", { class: "now", x1: x(total), x2: x(total), y1: LAYOUT.top - 6, y2: height }));
    }
    timeline.replaceChildren(...parts);
  }

  // Out of the dependency's end, down, and into the dependent's start; when the dependent starts (nearly) at
  // once, the line turns back between the rows so that the arrow still enters from the left.
  function elbow(from, to) {
    const out = from.end + 8;
    if (to.start - 8 >= out) return `M ${from.end} ${from.middle} H ${out} V ${to.middle} H ${to.start}`;
    const between = to.middle - LAYOUT.row / 2;
    return `M ${from.end} ${from.middle} H ${out} V ${between} H ${to.start - 8} V ${to.middle} H ${to.start}`;
  }

  function arrowMarker() {
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" });
    marker.append(svg("path", { d: "M 0 0 L 8 4 L 0 8 z", class: "arrow-head" }));
    defs.append(marker);
    return defs;
  }

  // "docs.lookup ok 12 ms, 340 chars (turn 1)": what a tool call did, never what it said.
  function toolCallText(call) {
    return `${call.server}.${call.tool} ${call.outcome} ${ms(call.duration_ms)}, ${call.result_chars} chars (turn ${call.turn})`;
  }

  // The tool calls on a subtask's bar: "⚙ 3 tools" (failures counted apart), the calls in its tooltip.
  function toolsOnBar(subtask, start, top) {
    const calls = subtask.tool_calls;
    const failed = calls.filter((call) => call.outcome !== "ok").length;
    const label = `⚙ ${calls.length} tool${calls.length === 1 ? "" : "s"}${failed ? `, ${failed} failed` : ""}`;
    const text = svg("text", {
      class: `bar-tools${failed ? " failed" : ""}`,
      x: start + 4,
      y: top + LAYOUT.bar / 2,
      "data-subtask-id": subtask.id,
      "data-tool-calls": calls.length,
    }, label);
    const tip = svg("title");
    tip.textContent = calls.map(toolCallText).join("\n");
    text.append(tip);
    return text;
  }

  // A timeline row: the specialist before the title, so clipping a long title keeps it.
  function subtaskLabel(subtask) {
    return subtask.agent ? `${subtask.id} · ${subtask.agent} · ${subtask.title}` : `${subtask.id} · ${subtask.title}`;
  }

  // The specialist that ran a subtask, as " (name)" after its title.
  function by(subtask) {
    return subtask.agent ? ` (${subtask.agent})` : "";
  }

  function clip(text, length) {
    return text.length > length ? `${text.slice(0, length - 1)}…` : text;
  }

  function drawPlan(run) {
    const items = run.subtasks.map((subtask) => {
      const item = el("li", { "data-subtask-id": subtask.id });
      const head = el("div", { class: "plan-head" });
      head.append(
        el("strong", {}, `${subtask.id} · ${subtask.title}`),
        el("span", { class: `badge outcome-${subtask.outcome}` }, subtask.outcome.replace("_", " ")),
      );
      if (subtask.agent) head.append(el("span", { class: "agent", "data-agent": subtask.agent }, subtask.agent));
      item.append(head, el("p", { class: "instruction" }, subtask.instruction));
      if (subtask.depends_on.length) item.append(el("p", { class: "depends" }, `after ${subtask.depends_on.join(", ")}`));
      if (subtask.documents && subtask.documents.length) {
        item.append(el("p", { class: "depends documents" }, `documents ${subtask.documents.join(", ")}`));
      }
      if (subtask.error) item.append(el("p", { class: "reason" }, subtask.error));
      if (subtask.tool_calls.length) {
        const calls = el("ul", { class: "tool-calls" });
        calls.append(...subtask.tool_calls.map((call) => el("li", { "data-outcome": call.outcome }, toolCallText(call))));
        item.append(calls);
      }
      if (subtask.tool_loop_end && subtask.tool_loop_end !== "answered") {
        item.append(el("p", { class: "reason" }, `tool loop: ${subtask.tool_loop_end.replace("_", " ")}`));
      }
      return item;
    });
    $("plan").replaceChildren(...items);
    $("plan").classList.toggle("compact", run.subtasks.length > COMPACT_AFTER);
  }

  // The max_tokens an agent's calls were given, and the configured one when the cost cap lowered it.
  function maxTokens(agent) {
    if (!agent.max_tokens) return "—";
    if (!agent.max_tokens_lowered_from) return String(agent.max_tokens);
    return `${agent.max_tokens} (lowered from ${agent.max_tokens_lowered_from} to fit the cost cap)`;
  }

  function drawUsage(run) {
    const usage = run.usage;
    const rows = (usage ? usage.agents : []).map((agent) => {
      const row = el("tr", { "data-agent": agent.agent });
      if (agent.specialist) row.dataset.specialist = agent.specialist;
      if (agent.max_tokens_lowered_from) row.dataset.lowered = "";
      row.append(
        el("td", {}, agent.specialist ? `${agent.agent} · ${agent.specialist}` : agent.agent),
        el("td", {}, agent.model),
        el("td", { class: "number" }, String(agent.calls)),
        el(
          "td",
          {
            class: "number",
            title: `${agent.input_tokens} uncached, ${agent.cache_creation_input_tokens} written to the prompt cache, ${agent.cache_read_input_tokens} read from it`,
          },
          String(agent.input_tokens + agent.cache_creation_input_tokens + agent.cache_read_input_tokens),
        ),
        el("td", { class: "number" }, String(agent.output_tokens)),
        el("td", { class: "number max-tokens" }, maxTokens(agent)),
        el("td", { class: "number" }, usd(agent.cost_usd)),
      );
      return row;
    });
    $("usage").tBodies[0].replaceChildren(...rows);
    const total = el("tr");
    if (usage) {
      total.append(
        el("th", { colspan: "3" }, "total"),
        el("td", { class: "number" }, String(usage.prompt_tokens)),
        el("td", { class: "number" }, String(usage.completion_tokens)),
        el("td", {}, ""),
        el("td", { class: "number" }, usd(usage.cost_usd)),
      );
    }
    $("usage").tFoot.replaceChildren(total);
  }

  function drawPhases(run) {
    const rows = ["planning", "coordination", "synthesis"].map((name) => {
      const span = run.phases[name];
      const seen = span && span.finished_ms !== null ? ms(span.finished_ms - span.started_ms) : span ? "under way" : "–";
      const row = el("tr");
      row.append(el("td", {}, name), el("td", { class: "number" }, seen), el("td", { class: "number" }, run.phases_ms ? ms(run.phases_ms[name]) : "–"));
      return row;
    });
    $("phases").tBodies[0].replaceChildren(...rows);
  }

  // ---- state and polling ----

  function select(id) {
    selectedId = id;
    for (const row of $("runs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.runId === id);
    refresh();
  }

  let generation = 0; // only the latest refresh schedules the next one

  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    let busy = false;
    try {
      const list = await api("v1/runs");
      if (!list.data.some((run) => run.id === selectedId)) selectedId = list.data.length ? list.data[0].id : null;
      const run = selectedId === null ? null : await api(`v1/runs/${encodeURIComponent(selectedId)}`);
      if (mine !== generation) return;
      drawRuns(list.data);
      $("run-pane").hidden = run === null;
      if (run !== null) drawRun(run);
      busy = list.data.some((entry) => entry.status === "in_progress") || (run !== null && run.status === "in_progress");
      say(`${count(list.data.length, "run")}${busy ? " · updating while in progress" : ""}`);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof ApiFailure && error.status === 401) {
        say(`Token not accepted: ${error.message}`, "error");
        return; // no polling with a token the gateway refuses
      }
      say(`Could not load runs: ${error.message}`, "error");
    }
    timer = setTimeout(refresh, busy ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  function init() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      selectedId = null;
      refresh();
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      clearTimeout(timer);
      selectedId = null;
      drawRuns([]);
      $("run-pane").hidden = true;
      say("Token forgotten.");
    });
    if (sessionStorage.getItem(TOKEN_KEY)) refresh();
  }

  init();
})();
