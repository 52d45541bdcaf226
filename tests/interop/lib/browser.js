'use strict';
// Shared by the browser tests: Debian's Chromium driven by playwright-core
// (never a downloaded browser), a watch that fails a test on any console
// error, page error or failed request, and screenshots.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { BUILD_DIR } = require('./provd');

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(BUILD_DIR, 'console-screenshots');
const DOC_SHOTS = path.resolve(__dirname, '../../../docs/images/console');

async function launchChromium() {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-deps.sh (Debian package chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

// Records what goes wrong in a page; expect(pattern) tolerates matching
// console errors until done() (Chromium logs a refused request as one).
function watch(page) {
  const problems = [];
  const allowed = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = `${msg.text()} @ ${msg.location().url}`;
    if (!allowed.some((re) => re.test(text))) problems.push(`console: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    if (!req.url().startsWith('blob:')) problems.push(`request failed: ${req.url()} ${req.failure().errorText}`);
  });
  return {
    problems,
    expect(re) { allowed.push(re); },
    done() { allowed.length = 0; },
  };
}

// BUILD_DIR/console-screenshots/NAME.png; with PROVD_SCREENSHOTS_TO_DOCS=1
// also docs/images/console/NAME.png (what docs/console.md shows).
async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.PROVD_SCREENSHOTS_TO_DOCS === '1') {
    fs.mkdirSync(DOC_SHOTS, { recursive: true });
    fs.copyFileSync(file, path.join(DOC_SHOTS, `${name}.png`));
  }
}

module.exports = { launchChromium, watch, shot };
