// Finds an alert in the console as an analyst would: the alert queue, then the alert's page.
//   node tests/alert.mjs <base-url> <alert title> <text> [<text> ...]
// Succeeds when an alert with that title is in the queue and its page shows every <text>;
// prints what the page showed otherwise. Console and page errors fail it too.
import { chromium } from "playwright-core";

import { fromTheMachine, loggedIn } from "./login.mjs";

const [base, title, ...texts] = process.argv.slice(2);
if (!base || !title) {
  console.error("usage: alert.mjs <base-url> <alert title> <text>...");
  process.exit(2);
}
const exe = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox"] });
const problems = [];
let shown = "";
try {
  const page = await (await loggedIn(browser, base, { width: 1366, height: 768 })).newPage();
  page.on("console", (m) => m.type() === "error" && !fromTheMachine(m.text()) && problems.push(`console error: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${base}/#/alerts`);
  await page.getByLabel("Status").selectOption("");
  const links = page.getByRole("link", { name: title, exact: true });
  await links.first().waitFor({ timeout: 20000 });
  const n = await links.count();
  let found = false;
  for (let i = 0; i < n && !found; i++) {
    await page.goto(`${base}/#/alerts`);
    await page.getByLabel("Status").selectOption("");
    await page.getByRole("link", { name: title, exact: true }).nth(i).click();
    await page.getByRole("heading", { name: title }).waitFor();
    await page.getByRole("heading", { name: "Rule" }).waitFor();
    shown = await page.locator("main").innerText();
    found = texts.every((t) => shown.includes(t));
  }
  if (!found) problems.push(`no "${title}" alert page shows all of ${JSON.stringify(texts)}`);
  console.log(`alert: ${n} "${title}" alert(s) in the queue`);
} catch (e) {
  problems.push(e.message.split("\n")[0]);
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error(`alert: FAIL: ${p}`);
  if (shown) console.error(`alert: the last alert page showed:\n${shown}`);
  process.exit(1);
}
console.log("alert: ok");
