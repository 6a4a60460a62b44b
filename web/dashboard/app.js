// kindling dashboard: a single page over the same API routes as the CLI.
// The API key lives in sessionStorage only (gone with the tab, never in a
// URL or a cookie); every value from the API is written with textContent,
// never as HTML.
const KEY = "kindling.api_key";
const $ = (sel) => document.querySelector(sel);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Builds an element: h("td", {class: "num"}, "text", child, ...).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "style") el.style.cssText = value; // CSSOM: allowed by the CSP
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(method, path, body) {
  const key = sessionStorage.getItem(KEY);
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the API cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = data && data.error ? data.error : `HTTP ${res.status}`;
    const code = data && data.code ? data.code : "error";
    if (res.status === 401) logout(`Your API key was refused: ${message}`);
    throw new ApiError(res.status, code, message);
  }
  return data;
}

// ---- formatting ---------------------------------------------------------
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
function since(iso) {
  return iso ? age((Date.now() - Date.parse(iso)) / 1000) + " ago" : "–";
}
function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}
const GOOD = new Set(["healthy", "active", "succeeded", "ready", "intact", "running", "ok", "attached"]);
const BAD = new Set(["unhealthy", "failed", "dead", "corrupt", "damaged", "missing", "error"]);
function badge(word) {
  const w = word ?? "unknown";
  const tone = GOOD.has(w) ? "ok" : BAD.has(w) ? "bad" : "warn";
  return h("span", { class: `badge ${tone}` }, w);
}
function progressBar(op) {
  const p = op.progress || {};
  const pct = op.status === "succeeded" ? 100
    : p.bytes_total ? Math.min(100, Math.floor((100 * p.bytes_done) / p.bytes_total)) : 0;
  return h("div", { class: "op-progress", "data-percent": pct },
    h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": pct, "aria-label": `${op.kind} progress` },
      h("div", { style: `width: ${pct}%` })),
    h("span", { class: "muted" },
      `${op.kind} ${op.status}${p.phase ? ` · ${p.phase}` : ""} · ${pct}%`,
      p.bytes_total ? ` · ${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}` : ""),
    op.error ? h("div", { class: "bad" }, op.error) : null);
}

// ---- session ----------------------------------------------------------------
let me = null; // GET /api/me

function isAdminOf(orgId) {
  if (!me) return false;
  if (me.user.is_platform_admin) return true;
  return me.memberships.some((m) => m.organization_id === orgId && (m.role === "owner" || m.role === "admin"));
}

function showError(e) {
  const box = $("#error");
  if (!e) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = e instanceof ApiError && e.code !== "unreachable" ? `${e.message} (${e.code})` : e.message;
  box.hidden = false;
}

function logout(reason) {
  sessionStorage.removeItem(KEY);
  me = null;
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  renderLogin(reason);
}

function renderLogin(reason) {
  const input = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off",
    required: true, "aria-label": "API key" });
  const form = h("form", { class: "panel login", id: "login-form" },
    h("h1", {}, "Log in"),
    h("p", { class: "muted" }, "With an API key (kindling api-key create). It is kept in this tab only."),
    h("label", {}, h("span", {}, "API key"), input),
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await start();
    } catch (e) {
      showError(e);
    }
  });
  $("#main").replaceChildren(form);
  if (reason) showError(new Error(reason));
  input.focus();
}

async function start() {
  me = await api("GET", "/api/me");
  showError(null);
  $("#who").textContent = `${me.user.email}${me.user.is_platform_admin ? " · platform admin" : ""}`;
  for (const a of document.querySelectorAll("[data-admin]")) a.hidden = !me.user.is_platform_admin;
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  if (!location.hash || location.hash === "#/") location.hash = "#/servers";
  else await route();
}

// ---- pages ---------------------------------------------------------------------
let pageTimer = null; // a page's refresh
let stopWatch = null; // a followed operation

function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { class: t.endsWith("#") ? "num" : "" }, t.replace(/#$/, ""))))),
    h("tbody", {}, rows));
}

async function pageServers() {
  const admin = me.user.is_platform_admin;
  const servers = await api("GET", admin ? "/api/platform/servers" : "/api/servers");
  const rows = servers.map((s) => {
    const worker = (s.components || []).find((c) => c.component === "worker");
    const controls = admin
      ? h("td", {},
        s.status === "active"
          ? h("button", { class: "secondary", onclick: () => setServer(s, "drain") }, "Drain")
          : h("button", { class: "secondary", onclick: () => setServer(s, "activate") }, "Activate"))
      : null;
    return h("tr", { "data-server": s.id },
      h("td", {}, s.hostname, h("div", { class: "muted mono" }, s.id)),
      h("td", {}, badge(s.status)),
      h("td", {}, badge(s.health)),
      h("td", { class: "num" }, age(s.heartbeat_age_seconds)),
      h("td", {}, s.runtime ?? (worker && worker.metadata && worker.metadata.runtime) ?? "–"),
      h("td", {}, (s.components || []).map((c) =>
        h("div", {}, `${c.component} `, badge(c.status), c.last_error_message ? h("span", { class: "muted" }, ` ${c.last_error_message}`) : null))),
      controls);
  });
  const headers = ["Server", "Status", "Health", "Heartbeat age#", "Runtime", "Components"];
  if (admin) headers.push("");
  return [h("h1", {}, "Servers"),
    servers.length ? table(headers, rows, { id: "servers" }) : h("p", { class: "muted" }, "No servers hold your volumes.")];
}

async function setServer(s, action) {
  try {
    await api("POST", `/api/servers/${encodeURIComponent(s.id)}/${action}`, {});
    await route();
  } catch (e) {
    showError(e);
  }
}

async function pageProjects() {
  const projects = await api("GET", "/api/projects");
  const rows = await Promise.all(projects.map(async (p) => {
    let v = null;
    try {
      v = await api("GET", `/api/projects/${encodeURIComponent(p.id)}/volume`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    return h("tr", {},
      h("td", {}, h("a", { href: `#/projects/${p.id}` }, p.name)),
      h("td", {}, v ? badge(v.status) : h("span", { class: "muted" }, "no volume")),
      h("td", {}, v ? badge(v.health) : null),
      h("td", { class: "num" }, v ? `${v.size_gb} GiB` : null),
      h("td", {}, v ? `${since(v.last_successful_backup_at)}` : null),
      h("td", {}, v ? badge(v.last_backup_verify_state ?? "not verified") : null),
      h("td", {}, v ? v.backup_policy.schedule : null),
      h("td", {}, v ? when(v.next_backup_at) : null),
      h("td", {}, v && v.current_operation ? progressBar(v.current_operation) : null));
  }));
  // While something runs, the list is read again every 2 s.
  if (rows.some((r) => r.querySelector(".op-progress"))) {
    pageTimer = setTimeout(() => location.hash === "#/projects" && route(), 2000);
  }
  return [h("h1", {}, "Projects"),
    projects.length
      ? table(["Project", "Volume", "Health", "Size#", "Last backup", "Verified", "Schedule", "Next backup", "Running now"],
        rows, { id: "projects" })
      : h("p", { class: "muted" }, "No projects.")];
}

function chart(backups) {
  const points = backups
    .filter((b) => b.status === "succeeded" && b.started_at && b.completed_at)
    .map((b) => ({
      t: Date.parse(b.completed_at),
      size: Number(b.metadata && b.metadata.stored_bytes !== undefined ? b.metadata.stored_bytes : b.size_bytes || 0),
      secs: (Date.parse(b.completed_at) - Date.parse(b.started_at)) / 1000,
    }))
    .sort((a, b) => a.t - b.t);
  if (points.length < 2) return h("p", { class: "muted" }, "The chart needs two succeeded backups.");
  const W = 880, H = 220, L = 50, R = 50, T = 12, B = 24;
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const maxSize = Math.max(...points.map((p) => p.size), 1);
  const maxSecs = Math.max(...points.map((p) => p.secs), 1);
  const x = (t) => L + ((W - L - R) * (t - t0)) / Math.max(1, t1 - t0);
  const ys = (v) => H - B - ((H - T - B) * v) / maxSize;
  const yd = (v) => H - B - ((H - T - B) * v) / maxSecs;
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "Stored bytes and duration of each backup over time" });
  svg.append(el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(el("polyline", { class: "size", points: points.map((p) => `${x(p.t)},${ys(p.size)}`).join(" ") }));
  svg.append(el("polyline", { class: "duration", points: points.map((p) => `${x(p.t)},${yd(p.secs)}`).join(" ") }));
  svg.append(el("text", { x: 4, y: T + 8 }, bytes(maxSize)));
  svg.append(el("text", { x: W - R + 4, y: T + 8 }, `${maxSecs.toFixed(1)} s`));
  svg.append(el("text", { x: L, y: H - 6 }, new Date(t0).toLocaleString()));
  svg.append(el("text", { x: W - R, y: H - 6, "text-anchor": "end" }, new Date(t1).toLocaleString()));
  return h("figure", {}, svg,
    h("figcaption", { class: "muted" }, "Solid: bytes stored by each backup; dashed: its duration."));
}

async function pageProject(id) {
  const base = `/api/projects/${encodeURIComponent(id)}`;
  const project = await api("GET", base);
  let volume;
  try {
    volume = await api("GET", `${base}/volume`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      return [h("h1", {}, project.name), h("p", { class: "muted" }, "This project has no volume.")];
    }
    throw e;
  }
  const [backups, servers] = await Promise.all([
    api("GET", `${base}/volume/backups`),
    api("GET", "/api/servers").catch(() => []),
  ]);
  const host = (id) => (servers.find((s) => s.id === id) || {}).hostname || id;
  const admin = isAdminOf(project.organization_id);
  const op = volume.current_operation;
  const facts = [
    ["Status", badge(volume.status)], ["Health", badge(volume.health)],
    ["Size", `${volume.size_gb} GiB`], ["Server", volume.server_id ? host(volume.server_id) : "–"],
    ["Last successful backup", `${when(volume.last_successful_backup_at)} (${age(volume.last_backup_age_seconds)})`],
    ["Verify state", badge(volume.last_backup_verify_state ?? "not verified")],
    ["Schedule", volume.backup_policy.schedule], ["Retention", `${volume.backup_policy.retention_count} backups`],
    ["Next scheduled backup", when(volume.next_backup_at)],
  ];
  if (volume.last_error) facts.push(["Last error", h("span", { class: "bad" }, volume.last_error)]);
  const out = [
    h("h1", {}, `${project.name}: volume`),
    h("dl", { class: "grid panel", id: "volume" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
  ];
  const live = h("div", { id: "operation" });
  if (op) follow(op, live, id);
  if (admin) {
    out.push(h("div", { class: "actions", style: "margin-top: .8rem" },
      h("button", { id: "backup-now", disabled: !!op, onclick: () => queueBackup(base, live, id) }, "Back up now")));
  }
  out.push(live);
  const rows = backups.map((b) => h("tr", { "data-backup": b.id },
    h("td", {}, when(b.created_at), h("div", { class: "muted mono" }, b.id)),
    h("td", {}, b.kind), h("td", {}, badge(b.status)),
    h("td", { class: "num" }, bytes(b.size_bytes)),
    h("td", { class: "num" }, bytes(b.metadata && b.metadata.stored_bytes)),
    h("td", { class: "mono" }, b.metadata && b.metadata.image_sha256 ? b.metadata.image_sha256.slice(0, 12) : "–"),
    h("td", {}, b.damage ? badge("damaged") : b.verify_state ? badge(b.verify_state) : h("span", { class: "muted" }, "–")),
    admin ? h("td", {}, b.status === "succeeded"
      ? h("button", { class: "secondary", onclick: () => restoreDialog(base, b, live, id) }, "Restore…") : null) : null));
  const headers = ["Backup", "Kind", "Status", "Image size#", "Stored#", "Digest", "Verified"];
  if (admin) headers.push("");
  out.push(h("h2", {}, "Backups"),
    backups.length ? table(headers, rows, { id: "backups" }) : h("p", { class: "muted" }, "No backups yet."),
    h("h2", {}, "Backup size and duration"), chart(backups));
  return out;
}

async function queueBackup(base, live, projectId) {
  try {
    const op = await api("POST", `${base}/volume/backups`, {});
    $("#backup-now").disabled = true;
    follow(op, live, projectId);
  } catch (e) {
    showError(e);
  }
}

async function restoreDialog(base, backup, live, projectId) {
  let targets;
  try {
    targets = await api("GET", `${base}/volume/restore-targets`);
  } catch (e) {
    showError(e);
    return;
  }
  const eligible = targets.filter((t) => t.eligible);
  const others = targets.filter((t) => !t.eligible);
  const select = h("select", { id: "restore-target", "aria-label": "Target worker" },
    h("option", { value: "" }, "Any eligible worker (least loaded)"),
    eligible.map((t) => h("option", { value: t.server_id }, `${t.hostname}${t.current ? " (holds the volume)" : ""} · load ${t.load}`)));
  const dialog = h("dialog", { id: "restore-dialog", "aria-label": "Restore" },
    h("form", { method: "dialog" },
      h("h2", {}, "Restore backup"),
      h("p", { class: "muted mono" }, backup.id),
      h("label", {}, h("span", {}, "Target worker"), select),
      others.length ? [h("p", {}, "Not eligible:"),
        h("ul", { id: "ineligible" }, others.map((t) => h("li", {}, `${t.hostname}: ${t.reason}`)))] : null,
      h("div", { class: "actions" },
        h("button", { value: "restore", id: "restore-confirm" }, "Restore"),
        h("button", { value: "cancel", class: "secondary" }, "Cancel"))));
  document.body.append(dialog);
  dialog.addEventListener("close", async () => {
    dialog.remove();
    if (dialog.returnValue !== "restore") return;
    const body = { backup_id: backup.id };
    if (select.value) body.target_server_id = select.value;
    try {
      const op = await api("POST", `${base}/volume/restore`, body);
      follow(op, live, projectId);
    } catch (e) {
      showError(e);
    }
  });
  dialog.showModal();
  select.focus();
}

// Shows an operation's progress until it ends: server-sent events from the
// API, polling when the stream cannot be had.
function follow(op, box, projectId) {
  if (stopWatch) stopWatch();
  let stopped = false;
  const controller = new AbortController();
  stopWatch = () => {
    stopped = true;
    controller.abort();
  };
  const show = (o) => {
    const here = location.hash === `#/operations/${o.id}`;
    box.replaceChildren(...(here ? [progressBar(o)] : [h("h2", {}, "Operation"), progressBar(o),
      h("p", {}, h("a", { href: `#/operations/${o.id}` }, "Details"))]));
  };
  const finished = (o) => o.status === "succeeded" || o.status === "failed";
  const done = (o) => {
    show(o);
    if (projectId && location.hash === `#/projects/${projectId}`) setTimeout(() => !stopped && route(), 800);
  };
  show(op);
  if (finished(op)) return;
  const poll = async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 1000));
      if (stopped) return;
      try {
        const o = await api("GET", `/api/operations/${encodeURIComponent(op.id)}`);
        if (finished(o)) return done(o);
        show(o);
      } catch (e) {
        showError(e);
      }
    }
  };
  const stream = async () => {
    const res = await fetch(`/api/operations/${encodeURIComponent(op.id)}/events`, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, Accept: "text/event-stream" },
      signal: controller.signal, cache: "no-store",
    });
    if (!res.ok || !(res.headers.get("Content-Type") || "").startsWith("text/event-stream")) throw new Error("no stream");
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buffer += value;
      let at;
      while ((at = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        const o = JSON.parse(data);
        if (finished(o)) return done(o);
        show(o);
      }
    }
    throw new Error("stream ended");
  };
  stream().catch(() => { if (!stopped) poll(); });
}

async function pageOperation(id) {
  const op = await api("GET", `/api/operations/${encodeURIComponent(id)}`);
  const box = h("div", { id: "operation" });
  follow(op, box, null);
  return [h("h1", {}, `Operation ${op.kind}`), h("p", { class: "muted mono" }, op.id), box,
    h("h2", {}, "Result"), h("pre", { class: "panel mono" }, JSON.stringify(op.result, null, 2))];
}

const SETTING_FIELDS = [
  ["local_directory", "Local directory"], ["s3_bucket", "S3 bucket"], ["s3_region", "S3 region"],
  ["s3_endpoint", "S3 endpoint"], ["s3_prefix", "S3 prefix"],
];

async function pageSettings() {
  const s = await api("GET", "/api/platform/volume-backup-settings");
  const inputs = {};
  const fields = SETTING_FIELDS.map(([name, label]) => {
    inputs[name] = h("input", { name, id: `setting-${name}`, value: s[name] || "" });
    return h("label", {}, h("span", {}, label), inputs[name]);
  });
  inputs.s3_access_key_id = h("input", { name: "s3_access_key_id", id: "setting-s3_access_key_id", autocomplete: "off",
    placeholder: s.s3_access_key_id === "set" ? "set (type to replace)" : "not set" });
  inputs.s3_secret_access_key = h("input", { type: "password", name: "s3_secret_access_key", id: "setting-s3_secret_access_key",
    autocomplete: "new-password", placeholder: s.s3_secret_access_key === "set" ? "set (type to replace)" : "not set" });
  const result = h("div", { id: "settings-result", role: "status" });
  const body = () => {
    const b = {};
    for (const [name] of SETTING_FIELDS) if (inputs[name].value !== (s[name] || "")) b[name] = inputs[name].value || null;
    for (const name of ["s3_access_key_id", "s3_secret_access_key"]) if (inputs[name].value) b[name] = inputs[name].value;
    return b;
  };
  const form = h("form", { class: "panel", id: "settings-form" }, fields,
    h("label", {}, h("span", {}, "S3 access key id"), inputs.s3_access_key_id),
    h("label", {}, h("span", {}, "S3 secret access key"), inputs.s3_secret_access_key),
    h("div", { class: "actions" },
      h("button", { type: "submit", id: "settings-save" }, "Save"),
      h("button", { type: "button", class: "secondary", id: "settings-test" }, "Test")),
    result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const saved = await api("PUT", "/api/platform/volume-backup-settings", body());
      result.replaceChildren(h("p", { class: saved.store && saved.store.ready ? "ok" : "warn" },
        saved.store && saved.store.ready ? `Saved; the store ${saved.storage_url} is ready.`
          : `Saved; ${saved.missing_reason || (saved.store && saved.store.error) || "the store is not ready"}.`));
      showError(null);
    } catch (e) {
      showError(e);
    }
  });
  form.querySelector("#settings-test").addEventListener("click", async () => {
    try {
      const t = await api("POST", "/api/platform/volume-backup-settings/test", body());
      result.replaceChildren(t.ok ? h("p", { class: "ok" }, `The store ${t.storage_url} works.`)
        : h("p", { class: "bad" }, `The ${t.step} step failed: ${t.error}`));
    } catch (e) {
      showError(e);
    }
  });
  return [h("h1", {}, "Backup settings"),
    h("p", { class: "muted" }, s.configured ? `Backups go to ${s.storage_url}.` : `Not configured: ${s.missing_reason}.`),
    form];
}

async function pageAudit() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filters = ["action", "resource_type", "resource_id", "since"];
  const inputs = Object.fromEntries(filters.map((f) => [f, h("input", { name: f, id: `audit-${f}`, value: params.get(f) || "",
    placeholder: f === "since" ? "2026-01-01T00:00:00Z" : "" })]));
  const form = h("form", { class: "inline", id: "audit-form" },
    filters.map((f) => h("label", {}, h("span", {}, f.replace("_", " ")), inputs[f])),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const f of filters) if (inputs[f].value) q.set(f, inputs[f].value);
    location.hash = `#/audit?${q}`;
  });
  const q = new URLSearchParams();
  for (const f of filters) if (params.get(f)) q.set(f, params.get(f));
  q.set("limit", "200");
  const events = await api("GET", `/api/platform/audit-events?${q}`);
  const rows = events.map((e) => h("tr", {},
    h("td", {}, when(e.created_at)), h("td", { class: "mono" }, e.action),
    h("td", {}, e.resource_type, h("div", { class: "muted mono" }, e.resource_id ?? "")),
    h("td", { class: "mono" }, e.user_id ?? "system"),
    h("td", { class: "mono" }, e.details && Object.keys(e.details).length ? JSON.stringify(e.details) : "")));
  return [h("h1", {}, "Audit log"), form,
    table(["Time", "Action", "Resource", "Actor", "Details"], rows, { id: "audit" })];
}

async function pageControlPlane() {
  const health = await api("GET", "/api/platform/health");
  const cp = health.control_plane_backup;
  const problems = [...(cp.problems || [])];
  if (health.backup_store && health.backup_store.error) problems.push(`backup store: ${health.backup_store.error}`);
  const facts = [
    ["Overall", badge(health.ok ? "ok" : "error")],
    ["Control-plane backups", cp.configured ? badge(cp.ok && !cp.stale ? "ok" : "error") : badge("not configured")],
    ["Last check", cp.checked_at ? `${when(cp.checked_at)} (${age(cp.check_age_seconds)} ago)` : "–"],
    ["Newest backup age", age(cp.last_backup_age_seconds)],
    ["Active servers", `${health.servers.healthy} of ${health.servers.active} healthy`],
  ];
  return [h("h1", {}, "Control plane"),
    h("dl", { class: "grid panel", id: "control-plane" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    cp.hint ? h("p", { class: "muted" }, cp.hint) : null,
    h("h2", {}, "Problems"),
    problems.length ? h("ul", { id: "problems" }, problems.map((p) => h("li", { class: "bad" }, p)))
      : h("p", { class: "ok" }, "None."),
    h("h2", {}, "Last control-plane backup report"),
    h("pre", { class: "panel mono" }, JSON.stringify(cp, null, 2))];
}

const PAGES = [
  [/^#\/servers$/, pageServers, "#/servers"],
  [/^#\/projects$/, pageProjects, "#/projects"],
  [/^#\/projects\/([0-9a-f-]+)$/, pageProject, "#/projects"],
  [/^#\/operations\/([0-9a-f-]+)$/, pageOperation, null],
  [/^#\/settings$/, pageSettings, "#/settings"],
  [/^#\/audit(\?.*)?$/, pageAudit, "#/audit"],
  [/^#\/control-plane$/, pageControlPlane, "#/control-plane"],
];

async function route() {
  if (!me) return;
  if (stopWatch) {
    stopWatch();
    stopWatch = null;
  }
  clearTimeout(pageTimer);
  const hash = location.hash || "#/servers";
  const found = PAGES.find(([re]) => re.test(hash));
  for (const a of document.querySelectorAll("nav a")) {
    if (found && a.getAttribute("href") === found[2]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = $("#main");
  if (!found) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/servers" }, "Servers")));
    return;
  }
  const [re, page] = found;
  const m = hash.match(re);
  try {
    const content = await page(m[1]);
    if (location.hash && location.hash !== hash) return; // navigated away meanwhile
    main.replaceChildren(...[content].flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    showError(null);
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Could not load this page"));
    showError(e);
  }
}

window.addEventListener("hashchange", () => route());
document.addEventListener("DOMContentLoaded", () => {
  $("#logout").addEventListener("click", () => logout());
  if (sessionStorage.getItem(KEY)) start().catch((e) => { renderLogin(); showError(e); });
  else renderLogin();
});
