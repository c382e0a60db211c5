// The console in real headless Chromium: sign in, see only one's own patients, search a fixture
// patient by name (without accents), open their 360 page and find one of their known conditions,
// sign out, and check that the back button shows nothing of the record.
//
// Usage: node console.mjs BASE_URL NAME_QUERY EXPECTED_PATIENT_NAME EXPECTED_CONDITION EMAIL PASSWORD EXPECTED_COUNT
// Exit code 0 when every step passed; the failing step is printed otherwise.
import { chromium } from 'playwright-core';

const [base, query, expectedName, expectedCondition, email, password, expectedCount] = process.argv.slice(2);
if (!base || !query || !expectedName || !expectedCondition || !email || !password || !expectedCount) {
  console.error('usage: node console.mjs BASE_URL NAME_QUERY EXPECTED_PATIENT_NAME EXPECTED_CONDITION EMAIL PASSWORD EXPECTED_COUNT');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // The machine's network is closed: background networking only produces refused connections.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let step = 'open the patient list, which asks to sign in';
try {
  const page = await browser.newPage();
  await page.goto(`${base}/patients`);
  await page.waitForURL(/\/login/);
  await page.getByRole('heading', { name: 'Sign in to Rapport' }).waitFor();

  step = `sign in as ${email}`;
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Patients' }).waitFor();

  step = `see only my ${expectedCount} patients`;
  await page.getByText(`of ${expectedCount}`, { exact: false }).first().waitFor({ timeout: 5000 });
  const listed = await page.locator('table tbody tr').count();
  if (listed !== Number(expectedCount)) throw new Error(`${listed} patients listed, expected ${expectedCount}`);

  step = `search for "${query}"`;
  await page.getByLabel('Name').fill(query);
  await page.getByRole('button', { name: 'Search' }).click();
  const link = page.getByRole('link', { name: expectedName });
  await link.waitFor({ timeout: 5000 });

  step = `open the 360 page of ${expectedName}`;
  await link.click();
  await page.getByRole('heading', { level: 1, name: expectedName }).waitFor();

  step = `find the condition "${expectedCondition}" among active problems`;
  const problems = page.locator('section[aria-labelledby="problems"]');
  await problems.getByText(expectedCondition, { exact: false }).first().waitFor({ timeout: 5000 });

  step = 'find a timeline with dated entries';
  const rows = await page.locator('section[aria-labelledby="timeline"] tbody tr').count();
  if (rows < 5) throw new Error(`only ${rows} timeline rows`);

  step = 'sign out';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Rapport' }).waitFor();

  step = 'go back: the record must not show again';
  await page.goBack();
  await page.waitForLoadState('load');
  const after = await page.content();
  if (after.includes(expectedCondition) || after.includes('Timeline')) throw new Error('the back button showed the record after signing out');
  if (!page.url().includes('/login')) throw new Error(`after going back the browser is at ${page.url()}, not the sign-in page`);
  console.log(`ok: signed in, saw ${expectedCount} patients, searched "${query}", opened ${expectedName}, found "${expectedCondition}", ${rows} timeline rows, signed out, back button shows nothing`);
} catch (e) {
  console.error(`browser test failed at step: ${step}\n${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
