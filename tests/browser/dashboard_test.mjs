// The web dashboard in Debian's headless Chromium, driven by playwright-core,
// against a `kindling dev` of its own: log in, set the backup settings (and
// see a failing test name its step), queue a backup and watch its progress
// reach 100%, restore it onto the other worker, find both in the audit log,
// see an API error as a message, and check that a member's view has no admin
// controls; progress comes from the event stream, and from polling when the
// stream is refused. Every request the pages make must go to the dashboard's own
// origin. Screenshots of each page (light, and the volume page dark) go to
// --out; so does timings.json (page loads; bench/dashboard_load.mjs holds
// them to their target).
//
// Usage: node dashboard_test.mjs --kindling PATH --out DIR [--chromium PATH] [--keep]
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { api, projectWithVolume, startDev, waitFor } from "./kindling_dev.mjs";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const kindling = opt("--kindling");
const out = opt("--out");
const chromiumPath = opt("--chromium", "/usr/bin/chromium");
const keep = args.includes("--keep");
if (!kindling || !out) {
  console.error("usage: dashboard_test.mjs --kindling PATH --out DIR [--chromium PATH] [--keep]");
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

let failures = 0;
function check(condition, what) {
  if (condition) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}`);
  }
}

let dev;
let base;
const call = (key, method, route, body) => api(base, key, method, route, body);

async function main() {
  dev = await startDev(kindling, { logDir: out, keep });
  base = dev.base;
  const admin = dev.key;
  const state = dev.state;

  // A project whose volume holds 48 MiB of data, so that its backup takes
  // long enough to show progress.
  const { project, volume } = await projectWithVolume(base, admin, "web");
  const workerDirs = fs.readdirSync(state).filter((d) => d.startsWith("worker-"));
  const holder = workerDirs.find((d) =>
    fs.readFileSync(path.join(state, d, "server-id"), "utf8").trim() === volume.server_id);
  const image = path.join(state, holder, "volumes", `${volume.id}.img`);
  const fd = fs.openSync(image, "r+");
  for (let i = 0; i < 48; i++) fs.writeSync(fd, randomBytes(1 << 20), 0, 1 << 20, (128 + i) * (1 << 20));
  fs.fsyncSync(fd);
  fs.closeSync(fd);

  // A member of the same organisation, with a key of their own.
  const me = await call(admin, "GET", "/api/me");
  const org = me.memberships[0].organization_id;
  const user = await call(admin, "POST", "/api/users", { email: "member@example.com", name: "Member" });
  const memberKey = (await call(admin, "POST", "/api/api-keys", { name: "member", user_id: user.id })).secret;
  await call(admin, "POST", `/api/organizations/${org}/members`, { user_id: user.id, role: "member" });

  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const origin = new URL(base).origin;
  const foreign = [];
  const timings = {};
  try {
    const context = await browser.newContext({ viewport: { width: 1366, height: 820 } });
    const page = await context.newPage();
    page.on("request", (r) => {
      if (new URL(r.url()).origin !== origin) foreign.push(r.url());
    });
    let streamed = 0; // operations followed through the API's event stream
    page.on("response", (r) => {
      if (r.url().endsWith("/events") && (r.headers()["content-type"] || "").startsWith("text/event-stream")) streamed++;
    });
    const consoleErrors = [];
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    const shot = (name) => page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });

    // Login.
    await page.goto(base + "/");
    await page.waitForSelector("#api-key");
    timings.first_load_ms = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      return nav.loadEventEnd - nav.startTime;
    });
    await shot("login");
    await page.fill("#api-key", admin);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#servers tbody tr");
    check(await page.locator("#servers tbody tr").count() === 2, "the servers page lists both workers");
    check(await page.locator("#servers button", { hasText: "Drain" }).count() === 2, "an admin sees drain buttons");
    check(await page.evaluate((k) => sessionStorage.getItem("kindling.api_key") === k && document.cookie === "", admin),
      "the key is kept in session storage, not in a cookie");
    check(!page.url().includes(admin), "the key is not in the URL");
    await shot("servers");

    // Backup settings: save a new local directory, then a test that fails
    // names its step.
    await page.goto(base + "/#/settings");
    await page.waitForSelector("#settings-form");
    const store = path.join(state, "backups-ui");
    await page.fill("#setting-local_directory", store);
    await page.click("#settings-save");
    await page.waitForSelector("#settings-result p");
    const saved = await page.textContent("#settings-result");
    check(saved.includes("ready") && saved.includes(store), `saving the settings reports the store ready (${saved})`);
    const settings = await call(admin, "GET", "/api/platform/volume-backup-settings");
    check(settings.local_directory === store, "the settings were saved through the API");
    await page.fill("#setting-local_directory", "relative/dir");
    await page.click("#settings-test");
    await page.waitForFunction(() => document.querySelector("#settings-result").textContent.includes("step failed"));
    const tested = await page.textContent("#settings-result");
    check(tested.includes("configuration step failed"), `a failing test names its step (${tested})`);
    await shot("settings");

    // Queue a backup from the volume page and watch it reach 100%.
    await page.goto(base + "/#/projects");
    await page.waitForSelector("#projects");
    await shot("projects");
    await page.click(`#projects a[href="#/projects/${project.id}"]`);
    await page.waitForSelector("#volume");
    const facts = await page.locator("#volume dt").allTextContents();
    for (const fact of ["Status", "Health", "Size", "Last successful backup", "Verify state", "Next scheduled backup"]) {
      check(facts.includes(fact), `the volume page shows ${fact}`);
    }
    check(!(await page.textContent("#volume")).includes("[object"), "the volume page renders its values");
    await page.click("#backup-now");
    const seen = new Set();
    await waitFor("the backup's progress at 100%", async () => {
      const p = await page.evaluate(() => {
        const el = document.querySelector("#operation .op-progress");
        return el ? { percent: Number(el.dataset.percent), text: el.textContent } : null;
      });
      if (p) seen.add(p.percent);
      return p && p.percent === 100 && p.text.includes("succeeded");
    }, 120000, 50);
    check(seen.has(100), `the backup's progress reached 100% (seen: ${[...seen].sort((a, b) => a - b).join(", ")})`);
    check(streamed > 0, "the page followed the backup through the API's event stream");
    await page.waitForSelector("#backups tbody tr");
    const backups = await call(admin, "GET", `/api/projects/${project.id}/volume/backups`);
    check(backups.length === 1 && backups[0].status === "succeeded", "the API lists the succeeded backup");
    await shot("volume");

    // Restore it onto the other worker, picked in the dialog.
    const targets = await call(admin, "GET", `/api/projects/${project.id}/volume/restore-targets`);
    const other = targets.find((t) => t.eligible && t.server_id !== volume.server_id);
    check(other !== undefined, "the other worker is an eligible restore target");
    await page.click(`#backups tr[data-backup="${backups[0].id}"] button`);
    await page.waitForSelector("#restore-dialog");
    check(await page.locator("#restore-target option").count() === 3, "the picker lists both eligible workers");
    await page.selectOption("#restore-target", other.server_id);
    await page.screenshot({ path: path.join(out, "restore-dialog.png") });
    await page.click("#restore-confirm");
    await waitFor("the restore to succeed", async () => {
      const text = await page.evaluate(() => document.querySelector("#operation")?.textContent ?? "");
      return text.includes("restore succeeded");
    }, 120000, 100);
    const restored = await waitFor("the volume on the other worker", async () => {
      const v = await call(admin, "GET", `/api/projects/${project.id}/volume`);
      return v.server_id === other.server_id && v.status !== "restoring" ? v : null;
    });
    check(restored.server_id === other.server_id, "the volume now lives on the other worker");
    // A second backup, from the volume's new worker: the chart has two points.
    // This time the API refuses the event stream (as when too many are open):
    // the page follows the operation by polling instead.
    const refusedStream = (route) => route.fulfill({
      status: 503,
      contentType: "application/json",
      body: JSON.stringify({ error: "too many event streams are open", code: "service_unavailable" }),
    });
    await page.route("**/api/operations/*/events", refusedStream);
    let polls = 0;
    const countPolls = (r) => {
      if (/\/api\/operations\/[0-9a-f-]+$/.test(new URL(r.url()).pathname)) polls++;
    };
    page.on("request", countPolls);
    await page.goto(base + `/#/projects/${project.id}`);
    await page.waitForSelector("#backup-now:not([disabled])");
    await page.click("#backup-now");
    await waitFor("the second backup", async () => {
      const text = await page.evaluate(() => document.querySelector("#operation")?.textContent ?? "");
      return text.includes("backup succeeded");
    }, 120000, 100);
    check(polls > 0, `without an event stream the page polled the operation (${polls} polls)`);
    page.off("request", countPolls);
    await page.unroute("**/api/operations/*/events", refusedStream);
    const opLink = await page.getAttribute("#operation a", "href");
    await page.waitForSelector("svg.chart polyline.size");
    check(await page.locator("#backups tbody tr").count() === 2, "the volume page lists both backups");
    await shot("volume-chart");

    // Drain the first worker from the servers page: the restore picker then
    // says why it is not a target.
    const first = targets.find((t) => t.server_id === volume.server_id);
    await page.goto(base + "/#/servers");
    await page.click(`#servers tr[data-server="${first.server_id}"] button`);
    await page.waitForSelector(`#servers tr[data-server="${first.server_id}"] button:text("Activate")`);
    await page.goto(base + `/#/projects/${project.id}`);
    await page.waitForSelector("#backups tbody tr button");
    await page.locator("#backups tbody tr button").first().click();
    await page.waitForSelector("#ineligible li");
    const why = await page.textContent("#ineligible");
    check(why.includes(first.hostname) && /the server is (draining|drained)/.test(why),
      `the picker says why the drained worker is not a target (${why})`);
    check(await page.locator("#restore-target option").count() === 2, "the picker lists only the eligible worker");
    await page.screenshot({ path: path.join(out, "restore-dialog-drained.png") });
    await page.keyboard.press("Escape");
    await page.waitForSelector("#restore-dialog", { state: "detached" });
    await page.goto(base + "/#/servers");
    await page.click(`#servers tr[data-server="${first.server_id}"] button`);
    await page.waitForSelector(`#servers tr[data-server="${first.server_id}"] button:text("Drain")`);
    const servers = await call(admin, "GET", "/api/platform/servers");
    check(servers.every((s) => s.status === "active"), "activate puts the worker back");

    await page.goto(base + "/" + opLink);
    await page.waitForSelector("#operation .op-progress");
    await shot("operation");

    // The audit log, filtered.
    await page.goto(base + "/#/audit");
    await page.waitForSelector("#audit tbody tr");
    const actions = await page.locator("#audit tbody tr td:nth-child(2)").allTextContents();
    for (const action of ["volume_backup_settings.update", "volume.backup.queue", "volume.restore.queue"]) {
      check(actions.includes(action), `the audit log shows ${action}`);
    }
    await page.fill("#audit-action", "volume.restore.queue");
    await page.click("#audit-form button[type=submit]");
    await page.waitForFunction(() => [...document.querySelectorAll("#audit tbody tr td:nth-child(2)")]
      .every((td) => td.textContent === "volume.restore.queue"));
    check(await page.locator("#audit tbody tr").count() === 1, "filtering by action leaves the restore");
    await shot("audit");

    await page.goto(base + "/#/control-plane");
    await page.waitForSelector("#control-plane");
    await shot("control-plane");

    // An API error is shown as a message.
    await page.goto(base + `/#/projects/${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}`);
    await page.waitForSelector("#error:not([hidden])");
    const error = await page.textContent("#error");
    check(error.includes("does not exist") && error.includes("not_found"), `an API error is shown (${error})`);
    await shot("error");

    // Dark.
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(base + `/#/projects/${project.id}`);
    await page.waitForSelector("#volume");
    await shot("volume-dark");
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(dark !== "rgb(255, 255, 255)", `the dark scheme is dark (${dark})`);

    // Keyboard: the login form is reachable and submits with Enter.
    const memberContext = await browser.newContext({ viewport: { width: 1366, height: 820 } });
    const memberPage = await memberContext.newPage();
    memberPage.on("request", (r) => {
      if (new URL(r.url()).origin !== origin) foreign.push(r.url());
    });
    await memberPage.goto(base + "/");
    await memberPage.waitForSelector("#api-key");
    await memberPage.keyboard.type(memberKey);
    await memberPage.keyboard.press("Enter");
    await memberPage.waitForSelector("#servers, main h1");
    await memberPage.waitForFunction(() => !document.querySelector("#nav").hidden);
    const adminLinks = await memberPage.evaluate(() =>
      [...document.querySelectorAll("nav a[data-admin]")].filter((a) => !a.hidden).length);
    check(adminLinks === 0, "a member's navigation has no admin pages");
    check(await memberPage.locator("button", { hasText: "Drain" }).count() === 0, "a member sees no drain buttons");
    await memberPage.screenshot({ path: path.join(out, "member-servers.png"), fullPage: true });
    await memberPage.goto(base + `/#/projects/${project.id}`);
    await memberPage.waitForSelector("#volume");
    check(await memberPage.locator("#backup-now").count() === 0, "a member has no backup button");
    check(await memberPage.locator("#backups button").count() === 0, "a member has no restore buttons");
    await memberPage.screenshot({ path: path.join(out, "member-volume.png"), fullPage: true });
    timings.volume_page_ms = await memberPage.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      return nav.loadEventEnd - nav.startTime;
    });

    check(foreign.length === 0, `no request to another host (${foreign.join(", ")})`);
    check(consoleErrors.length === 0, `no script error (${consoleErrors.join("; ")})`);
  } finally {
    fs.writeFileSync(path.join(out, "timings.json"), JSON.stringify(timings, null, 2) + "\n");
    await browser.close();
  }
}

try {
  await main();
} catch (e) {
  failures++;
  console.log(`FAIL ${e.stack || e}`);
} finally {
  if (dev) await dev.stop();
}
console.log(failures === 0 ? "PASS" : `${failures} check(s) failed; screenshots and logs in ${out}`);
process.exit(failures === 0 ? 0 : 1);
