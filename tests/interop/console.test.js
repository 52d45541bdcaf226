'use strict';
// ctest-labels: browser
// The web console in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) against a provd this test starts.  Any
// browser console error, page error or failed request fails the test,
// except the ones a step declares it expects.  Screenshots of each page go
// to BUILD_DIR/console-screenshots; with PROVD_SCREENSHOTS_TO_DOCS=1 also
// to docs/images/console (what docs/console.md and the README show).
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { startProvd, BUILD_DIR } = require('./lib/provd');
const { launchChromium, watch, shot } = require('./lib/browser');

const READER_KEY = crypto.randomBytes(32).toString('base64');
const STATUS_KEY = crypto.randomBytes(32).toString('base64');

function run(file, args) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

function registerDevice(server, registrationId, key, keyFlag = '--symmetric-key') {
  return run(path.join(BUILD_DIR, 'provd-device'), [
    'register', '--url', `https://localhost:${server.port}`,
    '--ca', path.join(server.dir, 'data', 'tls', 'ca.pem'),
    '--scope', server.idScope, '--registration-id', registrationId,
    keyFlag, key]);
}



async function signIn(page, connectionString) {
  await page.fill('input[name="connectionString"]', connectionString);
  await page.click('#signin-form button[type="submit"]');
}

test('web console in headless Chromium', { timeout: 110000 }, async (t) => {
  const server = await startProvd({
    extraConfig: ['service_policies:', `  - { name: reader, key: "${READER_KEY}", access: read }`,
      `  - { name: status, key: "${STATUS_KEY}", permissions: [ RegistrationStatusRead ] }`],
  });
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM');
  });
  const base = `https://localhost:${server.port}/console/`;
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  const w = watch(page);
  page.setDefaultTimeout(10000);

  await t.test('security headers on every console response', async () => {
    for (const p of ['', 'app.js', 'app.css', 'no-such-file']) {
      const res = await page.request.get(base + p);
      const hd = res.headers();
      assert.match(hd['content-security-policy'], /script-src 'self';/);
      assert.doesNotMatch(hd['content-security-policy'], /unsafe-inline/);
      assert.match(hd['content-security-policy'], /frame-ancestors 'none'/);
      assert.equal(hd['x-content-type-options'], 'nosniff');
      assert.equal(hd['referrer-policy'], 'no-referrer');
      assert.equal(res.status(), p === 'no-such-file' ? 404 : 200);
    }
    const post = await page.request.post(`${base}app.js`);
    assert.equal(post.status(), 405);
    assert.equal(post.headers()['x-content-type-options'], 'nosniff');
  });

  await t.test('a wrong key is refused with a message', async () => {
    await page.goto(base);
    await shot(page, 'signin');
    w.expect(/status of 401 .*@ https:\/\/localhost:\d+\/policy\?/);
    const wrong = server.connectionString.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${crypto.randomBytes(32).toString('base64')}`);
    await signIn(page, wrong);
    await page.waitForSelector('#signin-error:has-text("refused")');
    assert.equal(await page.isVisible('#nav'), false);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
    w.done();
  });

  let key;
  await t.test('sign in and create an enrollment; its key is shown once', async () => {
    await signIn(page, server.connectionString);
    await page.waitForSelector('nav >> text=Enrollments');
    assert.equal(page.url().includes('SharedAccessKey'), false, 'the key is never in the URL');
    assert.deepEqual((await context.cookies()).length, 0, 'no cookies');
    for (const label of ['Enrollments', 'Groups', 'Registrations', 'Hubs', 'Events']) {
      assert.ok(await page.isVisible(`nav a:text-is("${label}")`), label);
    }
    await page.fill('input[name="registrationId"]', 'browser-dev-1');
    await page.fill('input[name="deviceId"]', 'browser-device-1');
    await page.click('form:has(input[name="registrationId"]) button[type="submit"]');
    key = (await page.textContent('[data-field="primaryKey"]')).trim();
    assert.equal(Buffer.from(key, 'base64').length, 64);
    assert.match(await page.textContent('[data-field="ownerEmail"]'), /Registration id: browser-dev-1[\s\S]*Primary key: +\S+/);
    await page.waitForSelector('tr[data-id="browser-dev-1"]');
    await shot(page, 'enrollments');
  });

  let hub;
  await t.test('the device registers and shows on Registrations with its hub', async () => {
    const res = await registerDevice(server, 'browser-dev-1', key);
    assert.equal(res.code, 0, res.stderr);
    hub = /hub=(\S+)/.exec(res.stdout)[1];
    await page.click('nav a:text-is("Registrations")');
    const cell = await page.waitForSelector('tr[data-id="browser-dev-1"] [data-field="assignedHub"]');
    assert.equal(await cell.textContent(), hub);
    await shot(page, 'registrations');
    await page.click('a:text-is("browser-dev-1")');
    await page.waitForSelector(`[data-field="assignedHub"]:has-text("${hub}")`);
    await shot(page, 'registration');
  });

  await t.test('hubs show their device counts', async () => {
    await page.click('nav a:text-is("Hubs")');
    const name = hub.split('.')[0];
    const count = await page.waitForSelector(`[data-hub="${name}"] [data-field="devices"]`);
    assert.equal(await count.textContent(), '1');
    await shot(page, 'hubs');
  });

  await t.test('disable the enrollment and see enrollment.updated', async () => {
    await page.click('nav a:text-is("Enrollments")');
    await page.click('tr[data-id="browser-dev-1"] button:text-is("Disable")');
    await page.waitForSelector('tr[data-id="browser-dev-1"] .badge:text-is("disabled")');
    await page.click('nav a:text-is("Events")');
    await page.waitForSelector('tr[data-type="enrollment.updated"]:has-text("browser-dev-1")');
    await shot(page, 'events');
  });

  await t.test('an edit over a stale ETag is shown as a conflict', async () => {
    await page.click('nav a:text-is("Enrollments")');
    await page.click('tr[data-id="browser-dev-1"] a:text-is("Edit")');
    await page.waitForSelector('textarea[name="initialTwin"]');
    const res = await run(path.join(BUILD_DIR, 'provctl'), ['--url', `https://localhost:${server.port}`,
      '--data-dir', path.join(server.dir, 'data'), 'enrollment', 'disable', 'browser-dev-1']);
    assert.equal(res.code, 0, res.stderr);
    w.expect(/status of 412 .*@ https:\/\/localhost:\d+\/enrollments\/browser-dev-1\?/);
    await page.fill('textarea[name="initialTwin"]', '{"tags": {"customer": "acme"}}');
    await page.click('#page form button[type="submit"]');
    await page.waitForSelector('text=ETag conflict');
    await shot(page, 'edit-conflict');
    w.done();
  });

  await t.test('explain says the device is disabled', async () => {
    await page.click('nav a:text-is("Explain")');
    await page.fill('input[name="registrationId"]', 'browser-dev-1');
    await page.click('#page form button[type="submit"]');
    await page.waitForSelector('text=Outcome: disabled');
    await shot(page, 'explain');
  });

  await t.test('bulk import: progress, per-row reasons, CSV of the created keys', async () => {
    await page.click('nav a:text-is("Import")');
    const rows = ['registrationId,deviceId,tags'];
    for (let i = 0; i < 23; i++) rows.push(`bulk-${i},,customer=acme`);
    rows.push('bad id!,,', 'browser-dev-1,,');
    await page.setInputFiles('input[name="csvFile"]', { name: 'fleet.csv', mimeType: 'text/csv', buffer: Buffer.from(rows.join('\n')) });
    await page.click('#page form button[type="submit"]');
    await page.waitForSelector('text=23 created, 2 refused, of 25 rows');
    assert.equal(await page.getAttribute('progress', 'value'), '25');
    assert.match(await page.textContent('tr[data-line="25"]'), /refused: .*not a valid registration id/);
    assert.match(await page.textContent('tr[data-line="26"]'), /refused: already exists/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Download CSV")')]);
    const csv = fs.readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
    assert.equal(csv.length, 24);
    const [id, primaryKey] = csv[1].split(',');
    assert.equal(id, 'bulk-0');
    const res = await registerDevice(server, id, primaryKey);
    assert.equal(res.code, 0, `the downloaded key registers: ${res.stderr}`);
    await shot(page, 'import');
  });

  await t.test('groups page', async () => {
    await page.click('nav a:text-is("Groups")');
    await page.fill('input[name="enrollmentGroupId"]', 'browser-group');
    await page.click('form:has(input[name="enrollmentGroupId"]) button[type="submit"]');
    await page.waitForSelector('tr[data-id="browser-group"]');
    await shot(page, 'groups');
  });

  let groupKey;
  await t.test('a group member shows under its group on Registrations', async () => {
    groupKey = (await page.textContent('[data-field="primaryKey"]')).trim();
    const res = await registerDevice(server, 'grp-dev-1', groupKey, '--group-key');
    assert.equal(res.code, 0, res.stderr);
    await page.click('nav a:text-is("Registrations")');
    await page.waitForSelector('tr[data-id="browser-dev-1"]');
    await page.fill('input[name="group"]', 'browser-group');
    await page.click('#page form button[type="submit"]');
    await page.waitForSelector('tr[data-id="grp-dev-1"]:has-text("browser-group")');
    assert.equal(await page.isVisible('tr[data-id="browser-dev-1"]'), false, 'the group filter applies');
  });

  await t.test('readable at 360 px', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.click('nav a:text-is("Registrations")');
    await page.waitForSelector('tr[data-id="browser-dev-1"]');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page wider than the screen by ${overflow}px`);
    await shot(page, 'narrow');
  });

  // Every service API answer a page got, as text.
  function answersOf(p) {
    const texts = [];
    p.on('response', (res) => {
      if (res.url().includes('api-version=')) texts.push(res.text().catch(() => ''));
    });
    return () => Promise.all(texts);
  }

  await t.test('a read-only policy sees a read-only console (signed in by keyboard)', async () => {
    const ro = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    const p2 = await ro.newPage();
    const w2 = watch(p2);
    const answers = answersOf(p2);
    await p2.goto(base);
    // Keyboard only: Tab reaches the field, Enter signs in.
    await p2.keyboard.press('Tab');
    assert.equal(await p2.evaluate(() => document.activeElement.name), 'connectionString');
    await p2.keyboard.type(`HostName=localhost;SharedAccessKeyName=reader;SharedAccessKey=${READER_KEY}`);
    await p2.keyboard.press('Enter');
    await p2.waitForSelector('#who:has-text("read-only")');
    await p2.waitForSelector('tr[data-id="browser-dev-1"]');
    assert.equal(await p2.isVisible('input[name="registrationId"]'), false, 'no create form');
    assert.equal(await p2.isVisible('tr[data-id="browser-dev-1"] button:text-is("Enable")'), false);
    // A reader sees records but never a key: a group key would derive
    // every device key of the group.
    await p2.click('tr[data-id="browser-dev-1"] a:text-is("View")');
    await p2.waitForSelector('textarea[name="initialTwin"]');
    assert.equal(await p2.isVisible('#page form button[type="submit"]'), false, 'no Save button');
    assert.equal(await p2.isDisabled('select[name="provisioningStatus"]'), true);
    await p2.click('nav a:text-is("Groups")');
    await p2.click('tr[data-id="browser-group"] a:text-is("View")');
    await p2.waitForSelector('textarea[name="initialTwin"]');
    await shot(p2, 'read-only-group');
    const text = await p2.textContent('body');
    assert.equal(text.includes(key) || text.includes(groupKey), false, 'no key on the page');
    for (const body of await answers()) {
      assert.doesNotMatch(body, /primaryKey|secondaryKey/, 'no key in any answer to the reader');
      assert.equal(body.includes(key) || body.includes(groupKey), false);
    }
    await p2.click('nav a:text-is("Import")');
    assert.equal(await p2.isVisible('input[name="csvFile"]'), false, 'no import form');
    await ro.close();
    assert.deepEqual(w2.problems, []);
  });

  await t.test('a RegistrationStatusRead policy sees registrations, not enrollments', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    const p3 = await ctx.newPage();
    const w3 = watch(p3);
    const answers = answersOf(p3);
    await p3.goto(base);
    await signIn(p3, `HostName=localhost;SharedAccessKeyName=status;SharedAccessKey=${STATUS_KEY}`);
    await p3.waitForSelector('#who:has-text("read-only")');
    await p3.waitForSelector('[data-field="notPermitted"]:has-text("EnrollmentRead")');
    assert.equal(await p3.isVisible('tr[data-id="browser-dev-1"]'), false, 'no enrollment listed');
    await p3.click('nav a:text-is("Registrations")');
    await p3.waitForSelector(`tr[data-id="browser-dev-1"] [data-field="assignedHub"]:has-text("${hub}")`);
    await p3.click('a:text-is("browser-dev-1")');
    await p3.waitForSelector(`[data-field="assignedHub"]:has-text("${hub}")`);
    await p3.click('nav a:text-is("Events")');
    await p3.waitForSelector('[data-field="notPermitted"]');
    for (const body of await answers()) assert.doesNotMatch(body, /primaryKey|"attestation"|"bulk-1"/, 'no enrollment reaches a RegistrationStatusRead policy');
    await ctx.close();
    assert.deepEqual(w3.problems, []);
  });

  assert.deepEqual(w.problems, []);
});
