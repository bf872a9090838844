// Logs in through the console's login page (when the server has accounts) and returns a
// browser context holding the session, for the pages a test opens next.
//   VIGIL_E2E_USER (default admin), VIGIL_E2E_PASSWORD (none: the server has no accounts)
export async function loggedIn(browser, base, viewport) {
  const context = await browser.newContext({ viewport });
  const password = process.env.VIGIL_E2E_PASSWORD;
  if (!password) return context;
  const page = await context.newPage();
  await page.goto(`${base}/#/fleet`);
  await page.getByLabel("User").fill(process.env.VIGIL_E2E_USER ?? "admin");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("link", { name: "Fleet" }).waitFor({ timeout: 20000 });
  await page.close();
  return context;
}

// Chromium aborts requests in flight with net::ERR_NETWORK_CHANGED when the host's network
// interfaces change — which other tests running beside these do, creating and removing veth
// pairs for their network namespaces. That is the browser reacting to the machine, not the
// console failing; the console reloads on its next poll or live event. Every other console
// error fails a test.
export const fromTheMachine = (text) => text.includes("net::ERR_NETWORK_CHANGED");
