// Isolates an endpoint from its console page and releases it, in step with the test that runs
// the endpoint's agent (crates/vigil-agent/tests/console_isolation.rs):
//   node tests/isolate.mjs <base-url> <sensor-id>
// The agent is stopped when this starts. The script asks for isolation and checks that the
// page says "requested", never "isolated", while no agent can confirm it; then it prints
// `isolate: requested` and waits for a line on stdin (the test has started the agent). It
// waits for "isolated" — shown only once the agent confirmed — prints `isolate: isolated`,
// waits for a line again (the test checks the namespace), releases the host and waits for
// "released". Console errors and failed requests fail it. Exits non-zero with the reason.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

import { fromTheMachine, loggedIn } from "./login.mjs";

const [base, sensor] = process.argv.slice(2);
if (!base || !sensor) {
  console.error("usage: isolate.mjs <base-url> <sensor-id>");
  process.exit(2);
}
const exe = process.env.CHROMIUM ?? "/usr/bin/chromium";
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const proceed = async (said) => {
  console.log(`isolate: ${said}`);
  const next = await lines.next();
  if (next.done) throw new Error(`stdin closed after "${said}"`);
};
const shot = async (page, name) => {
  if (process.env.E2E_SHOTS) await page.screenshot({ path: `${process.env.E2E_SHOTS}/${name}.png`, fullPage: true });
};

const problems = [];
const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox"] });
try {
  const page = await (await loggedIn(browser, base, { width: 1366, height: 768 })).newPage();
  page.on("console", (m) => m.type() === "error" && !fromTheMachine(m.text()) && problems.push(`console error: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} for ${r.url()}`));
  const badge = page.locator(".badge", { hasText: /^isolation: / });
  const status = async () => (await badge.first().innerText()).replace("isolation: ", "");
  const shown = (state) => page.locator(".badge", { hasText: new RegExp(`^isolation: ${state}$`) });

  await page.goto(`${base}/#/endpoints/${encodeURIComponent(sensor)}`);
  await page.getByRole("button", { name: "Isolate host" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: "isolate" }).click();
  await dialog.waitFor({ state: "detached" });
  await shown("requested").waitFor({ timeout: 20000 });
  // No agent is running: nothing may claim the host is isolated.
  await page.getByRole("table", { name: "Commands" }).getByText("isolate").first().waitFor({ timeout: 20000 });
  if ((await status()) !== "requested") problems.push(`shown as ${await status()} with no agent to confirm`);
  await proceed("requested");

  // The agent is up: its confirmation turns the page to "isolated" without a reload.
  await shown("isolated").waitFor({ timeout: 60000 });
  await page.getByRole("table", { name: "Commands" }).getByText("succeeded").first().waitFor({ timeout: 20000 });
  await shot(page, "endpoint-isolated");
  await proceed("isolated");

  await page.getByRole("button", { name: "Release from isolation" }).click();
  await dialog.getByRole("button", { name: "release" }).click();
  await dialog.waitFor({ state: "detached" });
  await shown("released").waitFor({ timeout: 60000 });
  console.log("isolate: released");
} catch (e) {
  problems.push(e.message.split("\n")[0]);
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error(`isolate: FAIL: ${p}`);
  process.exit(1);
}
console.log("isolate: ok");
process.exit(0);
