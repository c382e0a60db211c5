// The console in real headless Chromium: open the patient list, search a fixture patient by name
// (without accents), open their 360 page and find one of their known conditions.
//
// Usage: node console.mjs BASE_URL NAME_QUERY EXPECTED_PATIENT_NAME EXPECTED_CONDITION
// Exit code 0 when every step passed; the failing step is printed otherwise.
import { chromium } from 'playwright-core';

const [base, query, expectedName, expectedCondition] = process.argv.slice(2);
if (!base || !query || !expectedName || !expectedCondition) {
  console.error('usage: node console.mjs BASE_URL NAME_QUERY EXPECTED_PATIENT_NAME EXPECTED_CONDITION');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // The machine's network is closed: background networking only produces refused connections.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let step = 'open the patient list';
try {
  const page = await browser.newPage();
  const response = await page.goto(`${base}/patients`);
  if (!response.ok()) throw new Error(`GET /patients answered ${response.status()}`);
  await page.getByRole('heading', { name: 'Patients' }).waitFor();

  step = `search for "${query}"`;
  await page.getByLabel('Name').fill(query);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/name=/);
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
  console.log(`ok: searched "${query}", opened ${expectedName}, found "${expectedCondition}", ${rows} timeline rows`);
} catch (e) {
  console.error(`browser test failed at step: ${step}\n${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
