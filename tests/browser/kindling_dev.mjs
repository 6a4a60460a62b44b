// A private `kindling dev` for the browser tests and bench/dashboard_load.mjs:
// started in a fresh state directory, its URL and admin key read from its
// dev.env, stopped (and the directory removed unless kept) by stop().
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts it and waits until it is up. `logDir`: where dev.out and dev.err
// go (default: the state directory).
export async function startDev(kindling, { logDir = null, keep = false } = {}) {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), "kindling-dashboard-"));
  fs.chmodSync(state, 0o755); // kindling dev runs PostgreSQL as postgres under it
  const logs = logDir ?? state;
  const dev = spawn(kindling, ["dev", "--state-dir", state, "--listen", "127.0.0.1:0",
    "--edge-listen", "127.0.0.1:0", "--guest-dir", "none"], {
    stdio: ["ignore", fs.openSync(path.join(logs, "dev.out"), "w"), fs.openSync(path.join(logs, "dev.err"), "w")],
  });
  let exited = false;
  dev.on("exit", () => { exited = true; });
  const stop = async () => {
    if (!exited) {
      dev.kill("SIGTERM");
      for (let i = 0; i < 300 && !exited; i++) await sleep(100);
      if (!exited) dev.kill("SIGKILL");
    }
    if (keep) console.log(`state kept in ${state}`);
    else fs.rmSync(state, { recursive: true, force: true });
  };
  for (let i = 0; !fs.existsSync(path.join(state, "dev.env")); i++) {
    if (exited || i > 600) {
      await stop();
      throw new Error(`kindling dev did not come up; see ${path.join(logs, "dev.err")}`);
    }
    await sleep(200);
  }
  const env = {};
  for (const line of fs.readFileSync(path.join(state, "dev.env"), "utf8").split("\n")) {
    const m = line.match(/^([A-Z_]+)=(.*)$/);
    if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, "$1");
  }
  return { state, base: env.KINDLING_URL, key: env.KINDLING_API_KEY, stop };
}

// One API call with `key`; the parsed answer, or an Error naming the status.
export async function api(base, key, method, route, body) {
  const res = await fetch(base + route, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Polls `fn` until it returns something truthy, which it returns.
export async function waitFor(what, fn, timeoutMs = 60000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

// A project with a 1 GiB volume, once the volume is healthy.
export async function projectWithVolume(base, key, name) {
  const project = await api(base, key, "POST", "/api/projects", { name });
  await api(base, key, "PUT", `/api/projects/${project.id}/volume`, { size_gb: 1 });
  const volume = await waitFor("a healthy volume", async () => {
    const v = await api(base, key, "GET", `/api/projects/${project.id}/volume`);
    return v.health === "healthy" ? v : null;
  });
  return { project, volume };
}
