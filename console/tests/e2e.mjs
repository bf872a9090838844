// Drives the console in headless Chromium against a running `vigil up`, as an analyst would:
//   node tests/e2e.mjs <base-url> <marker> [<chromium>]
// The server must already hold one alert whose process command line contains <marker> (raised
// by a rule titled "Console test marker"). The script starts a second marker process itself to
// check that a new alert appears without a reload, and closes one of the two per viewport. On
// the Users and Tokens pages it creates, changes and removes an operator and an API token of its
// own (names unique per run), and checks that the last admin cannot be removed. Exits non-zero
// with the reason on failure.
//   E2E_SHOTS=<dir> keeps a screenshot of each main page at 1366x768 as <dir>/<page>.png.
//   E2E_DEBUG=1 prints the whole error of a failed step (Playwright's call log).
import { spawnSync } from "node:child_process";
import { chromium } from "playwright-core";

import { fromTheMachine, loggedIn } from "./login.mjs";

const [base, marker, exe = "/usr/bin/chromium"] = process.argv.slice(2);
if (!base || !marker) {
  console.error("usage: e2e.mjs <base-url> <marker> [<chromium>]");
  process.exit(2);
}

const problems = [];
const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox"] });
const step = (name) => console.log(`e2e: ${name}`);
const admin = process.env.VIGIL_E2E_USER ?? "admin";
// Names of what the test creates: unique per viewport and run, as both share one server.
const stamp = Date.now().toString(36);

async function check(viewport) {
  const context = await loggedIn(browser, base, viewport);
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(base).origin });
  const page = await context.newPage();
  // Refusals the test asks for on purpose ("409 /api/v1/users/admin"): not problems.
  const provoked = new Set();
  const isProvoked = (status, url) => {
    try {
      return provoked.has(`${status} ${new URL(url).pathname}`);
    } catch {
      return false;
    }
  };
  page.on("console", (m) => {
    if (m.type() !== "error" || fromTheMachine(m.text())) return;
    // Chromium logs every refused request; the one provoked is checked on the page instead.
    const refused = m.text().match(/status of (\d+)/);
    if (refused && isProvoked(refused[1], m.location().url)) return;
    problems.push(`console error at ${viewport.width}px: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error at ${viewport.width}px: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400 && !isProvoked(r.status(), r.url()))
      problems.push(`${r.status()} for ${r.url()} at ${viewport.width}px`);
  });
  // One screenshot per main page, from the 1366 run (the README shows them): the whole page
  // down to 1800 px, so long tables do not make a poster of it.
  const shot = async (name) => {
    if (!process.env.E2E_SHOTS || viewport.width !== 1366) return;
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    await page.screenshot({
      path: `${process.env.E2E_SHOTS}/${name}.png`,
      fullPage: true,
      clip: { x: 0, y: 0, width: viewport.width, height: Math.min(height, 1800) },
    });
  };
  const noOverflow = async (what) => {
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (over > 1) problems.push(`${what} overflows the ${viewport.width}px window by ${over}px`);
  };

  step(`fleet at ${viewport.width}x${viewport.height}`);
  await page.goto(`${base}/#/fleet`);
  const row = page.locator("table[aria-label=Endpoints] tbody tr").first();
  await row.getByText("online").waitFor({ timeout: 20000 });
  await noOverflow("the fleet page");
  await shot("fleet");
  // Keyboard: the first Tab stops lead into the navigation.
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.closest("nav, header") !== null);
  if (!focused) problems.push("Tab does not reach the navigation");

  step("alerts queue");
  await page.goto(`${base}/#/alerts`);
  const alertLink = page.getByRole("link", { name: "Console test marker" }).first();
  await alertLink.waitFor({ timeout: 20000 });
  await noOverflow("the alerts page");
  await shot("alerts");
  const before = await page.getByRole("link", { name: "Console test marker" }).count();

  if (viewport.width === 1366) {
    step("a new alert appears without a reload");
    const run = spawnSync("/bin/sh", ["-c", `/bin/sleep 0.1; echo ${marker}-live`], { stdio: "ignore" });
    if (run.status !== 0) problems.push("the second marker process failed");
    await page.waitForFunction(
      (n) =>
        [...document.querySelectorAll("a")].filter((a) => a.textContent === "Console test marker").length > n,
      before,
      { timeout: 30000 },
    );
  }

  step("alert page: process tree, workflow and verdict, response confirmation");
  await alertLink.click();
  await page.getByRole("heading", { name: "Process tree" }).waitFor();
  const tree = page.locator("ul.tree");
  await tree.locator(".proc-focus").waitFor({ timeout: 20000 });
  // The marker shell's child, shown by its own image once it exec'd (not a sibling's sleep).
  await tree
    .locator("li:has(> .proc-focus) > ul .proc-name", { hasText: /^sleep$/ })
    .first()
    .waitFor({ timeout: 20000 });
  const ack = page.getByRole("button", { name: "Acknowledge" });
  if (await ack.count()) {
    await ack.click();
    await page.locator(".badge-wf-acknowledged").first().waitFor({ timeout: 10000 });
  }
  await page.getByRole("button", { name: /^Suspend/ }).first().click();
  await page.getByRole("dialog").waitFor();
  await page.getByRole("button", { name: "Cancel" }).click();
  await page.getByRole("dialog").waitFor({ state: "detached" });
  await page.getByLabel("Comment").fill("looked at it in the e2e test");
  await page.getByRole("button", { name: "Comment" }).click();
  await page.getByText("looked at it in the e2e test").waitFor();
  await page.getByRole("button", { name: "Close: true positive" }).click();
  await page.locator(".badge-wf-closed", { hasText: "closed: true positive" }).waitFor({ timeout: 10000 });
  await page.getByRole("button", { name: "Reopen" }).waitFor();
  await noOverflow("the alert page");
  await shot("alert");

  step("endpoint page");
  await page.locator("dd a").first().click();
  await page.getByRole("heading", { name: "Commands" }).waitFor();
  await page.getByRole("button", { name: "Isolate host" }).waitFor();
  await page.getByLabel("Live query").fill("SELECT count(*) AS processes FROM processes");
  await page.getByRole("button", { name: "Run query" }).click();
  await page.locator("table[aria-label='Live query result'] td").first().waitFor({ timeout: 30000 });
  await noOverflow("the endpoint page");
  await shot("endpoint");

  step("events search");
  await page.goto(`${base}/#/events`);
  await page.getByLabel("Text").fill(marker);
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("table[aria-label=Events] tbody tr").first().waitFor({ timeout: 20000 });
  await noOverflow("the events page");
  await shot("events");

  step("rules, policies and the ATT&CK matrix");
  await page.goto(`${base}/#/rules`);
  await page.locator(".matrix-head.covered", { hasText: "Execution" }).waitFor({ timeout: 20000 });
  await page.locator("table[aria-label=Policies]").getByText("default").waitFor();
  await noOverflow("the rules page");
  await shot("rules");

  step("the audit log names who did what");
  await page.getByRole("link", { name: "Audit" }).click();
  await page.locator("table[aria-label='Audit log']").getByText("alert.updated").first().waitFor({ timeout: 20000 });
  await page.locator("table[aria-label='Audit log']").getByText("user:admin").first().waitFor();
  await noOverflow("the audit page");
  await shot("audit");

  step("users: create an analyst, make them viewer, the last admin stays, remove them");
  const user = `e2e-${viewport.width}-${stamp}`;
  await page.getByRole("link", { name: "Users" }).click();
  const adminRole = page.getByLabel(`Role of ${admin}`, { exact: true });
  await adminRole.waitFor({ timeout: 20000 });
  const newUser = page.getByRole("form", { name: "New user" });
  await newUser.getByLabel("Name").fill(user);
  await newUser.getByLabel("Role").selectOption("analyst");
  await newUser.getByRole("button", { name: "Create user" }).click();
  // No password given: the server generates one, shown once.
  const generated = await page.getByLabel(`Password of ${user}`, { exact: true }).inputValue({ timeout: 10000 });
  if (generated.length < 12) problems.push(`the generated password of ${user} is "${generated}"`);
  await page.getByText("Shown once").waitFor();
  const role = page.getByLabel(`Role of ${user}`, { exact: true });
  if ((await role.inputValue()) !== "analyst") problems.push(`${user} was not created as an analyst`);
  await role.selectOption("viewer");
  await page.getByText(`${user} is now viewer.`).waitFor({ timeout: 10000 });
  await noOverflow("the users page");
  await shot("users");
  provoked.add(`409 /api/v1/users/${admin}`);
  await page.getByRole("button", { name: `Remove ${admin}`, exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
  await page.getByRole("alert").getByText(/last admin/).waitFor({ timeout: 10000 });
  if ((await adminRole.inputValue()) !== "admin") problems.push(`${admin} is no longer an admin`);
  await page.getByRole("button", { name: `Remove ${user}`, exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
  await page.getByText(`Removed ${user}.`).waitFor({ timeout: 10000 });
  await role.waitFor({ state: "detached" });

  step("tokens: create one, its value shown once, revoke it");
  const token = `e2e-${viewport.width}-${stamp}`;
  await page.getByRole("link", { name: "Tokens" }).click();
  await page.getByLabel("Token name").fill(token);
  await page.getByLabel("Token role").selectOption("viewer");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = await page.getByLabel(`Token ${token}`, { exact: true }).inputValue({ timeout: 10000 });
  if (!secret.startsWith("vgl_")) problems.push(`the new token's value is "${secret}"`);
  await page.getByText("Shown once").waitFor();
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByText("Copied.").waitFor();
  const bearer = { headers: { Authorization: `Bearer ${secret}` } };
  const me = await fetch(`${base}/api/v1/auth/me`, bearer).then((r) => r.json());
  if (me.user !== admin || me.role !== "viewer") problems.push(`the new token is ${JSON.stringify(me)}`);
  await noOverflow("the tokens page");
  await shot("tokens");
  await page.getByRole("button", { name: `Revoke ${token}`, exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByText(`Revoked ${token}.`).waitFor({ timeout: 10000 });
  await page.getByRole("button", { name: `Revoke ${token}`, exact: true }).waitFor({ state: "detached" });
  const after = await fetch(`${base}/api/v1/auth/me`, bearer);
  if (after.status !== 401) problems.push(`the revoked token still answers ${after.status}`);
  await page.close();
}

try {
  await check({ width: 1366, height: 768 });
  await check({ width: 2560, height: 1440 });
} catch (e) {
  problems.push(`${e.message.split("\n")[0]}`);
  if (process.env.E2E_DEBUG) console.error(e.message);
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error(`e2e: FAIL: ${p}`);
  process.exit(1);
}
console.log("e2e: ok");
