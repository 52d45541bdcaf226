'use strict';
// ctest-labels: browser
// provd-device portal in headless Chromium (Debian's /usr/bin/chromium via
// playwright-core): the owner fills the form and the device is provisioned
// against a provd this test starts; a wrong key shows the reason; with a
// PIN a wrong PIN is refused.  Any console error, page error or failed
// request fails the test.  Screenshots go to BUILD_DIR/console-screenshots.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { startProvd, BUILD_DIR } = require('./lib/provd');
const { launchChromium, watch, shot } = require('./lib/browser');


function provctl(server, ...args) {
  return new Promise((resolve, reject) => {
    execFile(path.join(BUILD_DIR, 'provctl'), ['--url', `https://localhost:${server.port}`,
      '--data-dir', path.join(server.dir, 'data'), ...args], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
}

// Starts the portal on a free loopback port; resolves {url, pin, stop}.
function startPortal(server, credentials, extra = []) {
  const child = spawn(path.join(BUILD_DIR, 'provd-device'), ['portal', '--listen', '127.0.0.1:0',
    '--credentials', credentials, '--url', `https://localhost:${server.port}`,
    '--ca', path.join(server.dir, 'data', 'tls', 'ca.pem'), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`portal did not start: ${out}`)), 5000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /portal: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m && (!extra.includes('--pin') || /portal PIN: \d+/.test(out))) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          pin: () => [...out.matchAll(/portal PIN: (\d+)/g)].pop()?.[1],
          stop: () => new Promise((r) => { child.on('exit', r); child.kill('SIGTERM'); }),
        });
      }
    });
  });
}



async function fill(page, server, registrationId, key) {
  await page.fill('input[name="idScope"]', server.idScope);
  await page.fill('input[name="registrationId"]', registrationId);
  await page.fill('input[name="symmetricKey"]', key);
}

test('device portal in headless Chromium', { timeout: 60000 }, async (t) => {
  const server = await startProvd();
  const browser = await launchChromium();
  const credentials = path.join(server.dir, 'device-credentials.json');
  const portal = await startPortal(server, credentials);
  t.after(async () => {
    await portal.stop();
    await browser.close();
    assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM');
  });
  const doc = JSON.parse(await provctl(server, 'enrollment', 'add', 'portal-dev-1', '--json'));
  const key = doc.attestation.symmetricKey.primaryKey;
  const page = await browser.newPage({ viewport: { width: 800, height: 900 } });
  const w = watch(page);
  page.setDefaultTimeout(20000);

  await t.test('fill the form and provision', async () => {
    const res = await page.goto(portal.url);
    assert.match(res.headers()['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(res.headers()['x-content-type-options'], 'nosniff');
    await shot(page, 'portal');
    await fill(page, server, 'portal-dev-1', key);
    await page.click('button:text-is("Provision")');
    const hub = (await page.textContent('[data-field="assignedHub"]')).trim();
    assert.match(hub, /^hub-[12]\.example\.net$/);
    assert.equal(await page.textContent('[data-field="deviceId"]'), 'portal-dev-1');
    await shot(page, 'portal-provisioned');
    const saved = JSON.parse(fs.readFileSync(credentials, 'utf8'));
    assert.deepEqual([saved.registrationId, saved.assignedHub, saved.symmetricKey, saved.idScope],
      ['portal-dev-1', hub, key, server.idScope]);
    assert.equal(fs.statSync(credentials).mode & 0o777, 0o600);
    const reg = JSON.parse(await provctl(server, 'registration', 'show', 'portal-dev-1', '--json'));
    assert.equal(reg.assignedHub, hub);
  });

  await t.test('a wrong key shows the reason', async () => {
    await page.goto(portal.url);
    await fill(page, server, 'portal-dev-1', crypto.randomBytes(64).toString('base64'));
    await page.click('button:text-is("Provision")');
    const reason = await page.textContent('[data-field="reason"]');
    assert.match(reason, /did not accept these credentials/);
    assert.match(reason, /401002/);
    assert.equal(await page.inputValue('input[name="registrationId"]'), 'portal-dev-1', 'the typed id stays');
    assert.equal(await page.inputValue('input[name="symmetricKey"]'), '', 'the key is never sent back');
    await shot(page, 'portal-refused');
  });

  await t.test('with --pin a wrong PIN is refused, the printed one works once', async () => {
    const guarded = await startPortal(server, credentials, ['--pin']);
    try {
      await provctl(server, 'enrollment', 'add', 'portal-dev-2');
      const key2 = JSON.parse(await provctl(server, 'enrollment', 'show', 'portal-dev-2', '--show-keys', '--json')).attestation.symmetricKey.primaryKey;
      const first = guarded.pin();
      const res = await page.request.post(`${guarded.url}provision`, {
        form: { idScope: server.idScope, registrationId: 'portal-dev-2', symmetricKey: key2, pin: first === '00000000' ? '11111111' : '00000000' },
      });
      assert.equal(res.status(), 403);
      await page.goto(guarded.url);
      await fill(page, server, 'portal-dev-2', key2);
      await page.fill('input[name="pin"]', first);
      await page.click('button:text-is("Provision")');
      await page.waitForSelector('[data-field="assignedHub"]');
      await new Promise((r) => setTimeout(r, 100));
      assert.notEqual(guarded.pin(), first, 'a new PIN after a success');
    } finally {
      await guarded.stop();
    }
  });

  assert.deepEqual(w.problems, []);
});
