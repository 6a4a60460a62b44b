// Dashboard page loads in Debian's headless Chromium against `kindling dev`
// (target: under 1 s, and no request to another host).
//
//   node bench/dashboard_load.mjs [--runs 20] [--kindling PATH] [--out FILE]
//
// Starts kindling dev, creates a project with a volume and a backup, then
// loads, --runs times each, in one tab:
//   login    GET / until the login form shows (nothing cached: a new context)
//   servers  the servers page, logged in, until its table shows
//   volume   a volume page until its facts and backups show
// timed from the navigation's start (performance.timeOrigin) in the page.
// Prints a Markdown table (p50, p95, max ms per page), the requests made to
// another host (must be none) and PASS/MISS; also writes it to --out
// (default bench/out/dashboard_load.md). playwright-core comes from
// tests/browser/node_modules (scripts/install-deps.sh installs it).
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const require = createRequire(path.join(root, "tests/browser/package.json"));
const { chromium } = require("playwright-core");
const { api, projectWithVolume, startDev, waitFor } = await import(
  path.join(root, "tests/browser/kindling_dev.mjs"));

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const runs = Number(opt("--runs", "20"));
const kindling = path.resolve(opt("--kindling", path.join(root, "build/src/exe/kindling")));
const outFile = path.resolve(opt("--out", path.join(root, "bench/out/dashboard_load.md")));

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const { base, key } = dev;
  const { project } = await projectWithVolume(base, key, "bench");
  const op = await api(base, key, "POST", `/api/projects/${project.id}/volume/backups`, {});
  await waitFor("the backup", async () => {
    const o = await api(base, key, "GET", `/api/operations/${op.id}`);
    if (o.status === "failed") throw new Error(`backup failed: ${o.error}`);
    return o.status === "succeeded";
  });

  const origin = new URL(base).origin;
  const foreign = [];
  const times = { login: [], servers: [], volume: [] };
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const since = (page) => page.evaluate(() => performance.now());
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 820 } });
      const page = await context.newPage();
      page.on("request", (r) => {
        if (new URL(r.url()).origin !== origin) foreign.push(r.url());
      });
      await page.goto(base + "/");
      await page.waitForSelector("#api-key");
      times.login.push(await since(page));
      await page.fill("#api-key", key);
      await page.click("#login-form button[type=submit]");
      await page.waitForSelector("#servers tbody tr");
      await page.goto(`${base}/?run=${i}#/servers`);
      await page.waitForSelector("#servers tbody tr");
      times.servers.push(await since(page));
      await page.goto(`${base}/?run=${i}#/projects/${project.id}`);
      await page.waitForSelector("#backups tbody tr");
      times.volume.push(await since(page));
      await context.close();
    }
  } finally {
    await browser.close();
  }

  const lines = [
    "## Dashboard page loads (headless Chromium)",
    "",
    `\`kindling dev\` on this machine (${os.cpus().length} cores), Debian's Chromium, ${runs} runs per page, each timed from the navigation's start until the page's content shows.`,
    "",
    "| page | p50 ms | p95 ms | max ms |",
    "|---|---:|---:|---:|",
  ];
  let worst = 0;
  for (const [name, values] of Object.entries(times)) {
    worst = Math.max(worst, ...values);
    lines.push(`| ${name} | ${percentile(values, 50).toFixed(0)} | ${percentile(values, 95).toFixed(0)} | ${Math.max(...values).toFixed(0)} |`);
  }
  lines.push("", `- every load under 1,000 ms (slowest ${worst.toFixed(0)} ms): ${worst < 1000 ? "PASS" : "MISS"}`);
  lines.push(`- requests to another host: ${foreign.length} (target 0): ${foreign.length === 0 ? "PASS" : "MISS"}`);
  const text = lines.join("\n") + "\n";
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, text);
  process.stdout.write(text);
}

const dev = await startDev(kindling);
try {
  await main();
} finally {
  await dev.stop();
}
