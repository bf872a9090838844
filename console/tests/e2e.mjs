// Drives the console in headless Chromium against a running `vigil up`, as an analyst would:
//   node tests/e2e.mjs <base-url> <marker> [<chromium>]
// The server must already hold one alert whose process command line contains <marker> (raised
// by a rule titled "Console test marker"). The script starts a second marker process itself to
// check that a new alert appears without a reload. Exits non-zero with the reason on failure.
import { spawnSync } from "node:child_process";
import { chromium } from "playwright-core";

import { loggedIn } from "./login.mjs";

const [base, marker, exe = "/usr/bin/chromium"] = process.argv.slice(2);
if (!base || !marker) {
  console.error("usage: e2e.mjs <base-url> <marker> [<chromium>]");
  process.exit(2);
}

const problems = [];
const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox"] });
const step = (name) => console.log(`e2e: ${name}`);
// E2E_SHOTS=<dir> keeps a screenshot of each page, for a human to look at.
const shot = async (page, name) => {
  if (process.env.E2E_SHOTS) await page.screenshot({ path: `${process.env.E2E_SHOTS}/${name}.png`, fullPage: true });
};

async function check(viewport) {
  const page = await (await loggedIn(browser, base, viewport)).newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error at ${viewport.width}px: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error at ${viewport.width}px: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()} at ${viewport.width}px`);
  });
  const noOverflow = async (what) => {
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (over > 1) problems.push(`${what} overflows the ${viewport.width}px window by ${over}px`);
  };

  step(`fleet at ${viewport.width}x${viewport.height}`);
  await page.goto(`${base}/#/fleet`);
  const row = page.locator("table[aria-label=Endpoints] tbody tr").first();
  await row.getByText("online").waitFor({ timeout: 20000 });
  await noOverflow("the fleet page");
  await shot(page, `fleet-${viewport.width}`);
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

  step("alert page: process tree, workflow, response confirmation");
  await alertLink.click();
  await page.getByRole("heading", { name: "Process tree" }).waitFor();
  const tree = page.locator("ul.tree");
  await tree.locator(".proc-focus").waitFor({ timeout: 20000 });
  // The marker shell's child, shown by its own image once it exec'd.
  await tree.locator(".proc-name", { hasText: /^sleep$/ }).first().waitFor({ timeout: 20000 });
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
  await noOverflow("the alert page");
  await shot(page, `alert-${viewport.width}`);

  step("endpoint page");
  await page.locator("dd a").first().click();
  await page.getByRole("heading", { name: "Commands" }).waitFor();
  await page.getByRole("button", { name: "Isolate host" }).waitFor();
  await page.getByLabel("Live query").fill("SELECT count(*) AS processes FROM processes");
  await page.getByRole("button", { name: "Run query" }).click();
  await page.locator("table[aria-label='Live query result'] td").first().waitFor({ timeout: 30000 });
  await noOverflow("the endpoint page");

  step("events search");
  await page.goto(`${base}/#/events`);
  await page.getByLabel("Text").fill(marker);
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("table[aria-label=Events] tbody tr").first().waitFor({ timeout: 20000 });
  await noOverflow("the events page");

  step("rules, policies and the ATT&CK matrix");
  await page.goto(`${base}/#/rules`);
  await page.locator(".matrix-head.covered", { hasText: "Execution" }).waitFor({ timeout: 20000 });
  await page.locator("table[aria-label=Policies]").getByText("default").waitFor();
  await noOverflow("the rules page");
  await shot(page, `rules-${viewport.width}`);

  step("the audit log names who did what");
  await page.getByRole("link", { name: "Audit" }).click();
  await page.locator("table[aria-label='Audit log']").getByText("alert.updated").first().waitFor({ timeout: 20000 });
  await page.locator("table[aria-label='Audit log']").getByText("user:admin").first().waitFor();
  await noOverflow("the audit page");
  await page.close();
}

try {
  await check({ width: 1366, height: 768 });
  await check({ width: 2560, height: 1440 });
} catch (e) {
  problems.push(`${e.message.split("\n")[0]}`);
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error(`e2e: FAIL: ${p}`);
  process.exit(1);
}
console.log("e2e: ok");
