// A SMART app's authorization request in real headless Chromium: the request sends a visitor to
// sign in and back, the consent page names the app, and Allow reaches the app's redirect URI with
// a code (the page's Content-Security-Policy must let its form lead there: browsers apply
// form-action to the redirect that follows a submission). The app's site is simulated here.
//
// Usage: node smart.mjs AUTHORIZE_URL REDIRECT_URI EMAIL PASSWORD APP_NAME
// Prints "code=…" and exits 0 when every step passed; the failing step is printed otherwise.
import { chromium } from 'playwright-core';

const [authorizeUrl, redirectUri, email, password, appName] = process.argv.slice(2);
if (!authorizeUrl || !redirectUri || !email || !password || !appName) {
  console.error('usage: node smart.mjs AUTHORIZE_URL REDIRECT_URI EMAIL PASSWORD APP_NAME');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let step = 'open the authorization request, which asks to sign in';
try {
  const page = await browser.newPage();
  const blocked = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) blocked.push(m.text()); });
  // The app's site: answer its redirect URI here (the machine has no network).
  await page.route(`${redirectUri}**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<h1>App callback</h1>' }));
  await page.goto(authorizeUrl);
  await page.waitForURL(/\/login/);

  step = `sign in as ${email}`;
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();

  step = `see the consent page of ${appName}`;
  await page.getByRole('heading', { level: 1, name: appName }).waitFor({ timeout: 5000 });

  step = 'allow, and arrive at the app with a code';
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.getByRole('heading', { name: 'App callback' }).waitFor({ timeout: 5000 });
  const url = new URL(page.url());
  const code = url.searchParams.get('code');
  if (!code) throw new Error(`no code in ${page.url()}`);
  if (blocked.length) throw new Error(blocked.join('\n'));
  console.log(`code=${code}`);
  console.log(`state=${url.searchParams.get('state')}`);
} catch (e) {
  console.error(`FAILED at step: ${step}\n${e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
