// The Today page in real headless Chromium: sign in (staff land on Today), wait while the test
// writes an abnormal result for one of the coordinator's patients, watch the alert appear
// without reloading (server-sent events), and acknowledge it from the keyboard.
//
// Usage: node today.mjs BASE_URL EMAIL PASSWORD EXPECTED_TEXT
// Prints READY once the page is open (the test then writes the data); exit code 0 when every
// step passed, the failing step printed otherwise.
import { chromium } from 'playwright-core';

const [base, email, password, expected] = process.argv.slice(2);
if (!base || !email || !password || !expected) {
  console.error('usage: node today.mjs BASE_URL EMAIL PASSWORD EXPECTED_TEXT');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let step = 'sign in';
try {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  await page.goto(`${base}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();

  step = 'land on Today';
  await page.getByRole('heading', { name: 'Today', exact: true }).waitFor();
  await page.getByText('Live: updates as alerts change.').waitFor({ timeout: 5000 });
  // Marks this document: a reload would lose it.
  await page.evaluate(() => { window.__sameDocument = true; });

  step = 'wait for the new alert to appear live';
  console.log('READY');
  const row = page.locator('li.alert', { hasText: expected });
  await row.waitFor({ timeout: 20000 });
  if (!(await page.evaluate(() => window.__sameDocument === true))) {
    throw new Error('the page was reloaded instead of updated in place');
  }
  const severity = await row.getAttribute('data-severity');
  if (severity !== 'critical') throw new Error(`severity ${severity}, expected critical`);

  step = 'acknowledge it from the keyboard';
  const ack = row.getByRole('button', { name: 'Acknowledge' });
  await ack.focus();
  await page.keyboard.press('Enter');
  await page.waitForLoadState('load');
  const after = page.locator('li.alert', { hasText: expected });
  await after.waitFor();
  const status = await after.getAttribute('data-status');
  if (status !== 'acknowledged') throw new Error(`status ${status} after acknowledging`);
  if (await after.getByRole('button', { name: 'Acknowledge' }).count() !== 0) {
    throw new Error('an acknowledged alert still offers Acknowledge');
  }
  console.log('alert acknowledged');
} catch (e) {
  console.log(`FAILED at step: ${step}\n${e.stack || e}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
