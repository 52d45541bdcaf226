'use strict';
// ctest-labels: interop;postgres
// Three provd instances on one PostgreSQL behind HAProxy (TCP
// passthrough: each instance terminates TLS with the same certificate,
// docs/scale-out.md).  The unmodified Azure IoT Node SDK (service and
// device, HTTPS) enrolls and registers devices through the balancer while
// one instance is killed and later restarted: every device ends up
// assigned (retrying as a device does), the restarted instance serves
// again, and the journal is one chain.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { call } = require('./lib/sdk');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');

const SOURCE_DIR = process.env.PROVD_SOURCE_DIR || path.resolve(__dirname, '../..');
const BUILD_DIR = process.env.PROVD_BUILD_DIR || path.join(SOURCE_DIR, 'build');
const PROVD_BIN = process.env.PROVD_BIN || path.join(BUILD_DIR, 'provd');
const PROVCTL = path.join(BUILD_DIR, 'provctl');
const PLUGIN_DIR = process.env.PROVD_PLUGIN_DIR || path.join(BUILD_DIR, 'plugins');
const CLUSTER = path.join(SOURCE_DIR, 'scripts', 'pg-test-cluster.sh');
const ID_SCOPE = '0ne00000001';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

class Instance {
  constructor(dir, n, port, conninfo) {
    this.dir = dir; this.n = n; this.port = port; this.runs = 0;
    this.config = path.join(dir, `provd-${n}.yaml`);
    fs.writeFileSync(this.config, [
      `id_scope: ${ID_SCOPE}`,
      `listen: { https: "127.0.0.1:${port}" }`,
      `data_dir: ${path.join(dir, 'data')}`,
      `plugin_path: [ ${PLUGIN_DIR} ]`,
      'workers: 2',
      'storage:',
      '  plugin: postgres',
      `  options: { conninfo: "${conninfo}", pool_size: 4 }`,
      'hubs:',
      '  - { name: hub-1, hostname: hub-1.example.net, weight: 1 }',
      '  - { name: hub-2, hostname: hub-2.example.net, weight: 1 }',
      'plugins:',
      '  - { kind: attestation, name: symmetric-key }',
      '  - { kind: allocation, name: hashed }',
      '',
    ].join('\n'));
  }

  // Starts provd; resolves once it listens.  Each run logs to its own file.
  async start() {
    this.runs += 1;
    this.log = path.join(this.dir, `provd-${this.n}.${this.runs}.log`);
    const err = fs.openSync(this.log, 'w');
    this.child = spawn(PROVD_BIN, ['-c', this.config], { stdio: ['ignore', 'pipe', err] });
    let out = '';
    this.child.stdout.on('data', (d) => { out += d; });
    for (let i = 0; i < 150 && !/device endpoint/.test(out); i++) {
      if (this.child.exitCode !== null) throw new Error(`instance ${this.n} exited: ${fs.readFileSync(this.log)}`);
      await sleep(100);
    }
    assert.match(out, /device endpoint/, `instance ${this.n} did not start`);
  }

  async kill(signal = 'SIGKILL') {
    if (!this.child || this.child.exitCode !== null) return;
    await new Promise((resolve) => { this.child.on('exit', resolve); this.child.kill(signal); });
  }

  assigned() {
    return (fs.readFileSync(this.log, 'utf8').match(/assigned regid=/g) || []).length;
  }
}

function haproxyConfig(port, instances) {
  return [
    'global',
    '  maxconn 1000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  retries 2',
    '  option redispatch',
    'frontend dps',
    `  bind 127.0.0.1:${port}`,
    '  default_backend provd',
    'backend provd',
    '  balance roundrobin',
    ...instances.map((i) => `  server provd-${i.n} 127.0.0.1:${i.port} check inter 300ms fall 1 rise 2`),
    '',
  ].join('\n');
}

function randomKey() {
  return crypto.randomBytes(32).toString('base64');
}

// A device registers through the balancer; like a real device it tries
// again (after a second) when the connection breaks or the answer is 5xx.
async function registerWithRetry(registrationId, key, failures) {
  for (let attempt = 1; ; attempt++) {
    try {
      const security = new SymmetricKeySecurityClient(registrationId, key);
      const client = ProvisioningDeviceClient.create('localhost', ID_SCOPE, new Http(), security);
      const { result } = await call((cb) => client.register(cb));
      return result;
    } catch (err) {
      failures.push(`${registrationId} attempt ${attempt}: ${err.name || err.message}`);
      if (attempt >= 5) throw err;
      await sleep(1000);
    }
  }
}

test('three instances behind HAProxy, one killed and restarted', { timeout: 240000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'provd-haproxy-'));
  const pgDir = path.join(dir, 'pg');
  const conninfo = execFileSync(CLUSTER, ['start', pgDir], { encoding: 'utf8' }).trim();
  const instances = [];
  let haproxy = null;
  t.after(async () => {
    for (const i of instances) await i.kill();
    if (haproxy) haproxy.kill('SIGKILL');
    execFileSync(CLUSTER, ['stop', pgDir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (let n = 1; n <= 3; n++) {
    const inst = new Instance(dir, n, await freePort(), conninfo);
    await inst.start(); // the first start writes the shared certificate and keys
    instances.push(inst);
  }
  const lbPort = await freePort();
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig(lbPort, instances));
  haproxy = spawn('haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
  const dataDir = path.join(dir, 'data');
  https.globalAgent.defaultPort = lbPort;
  // A connection per request, as devices in the field have: each one is
  // balanced on its own (keep-alive would pin the test to one instance).
  https.globalAgent.keepAlive = false;
  https.globalAgent.options.keepAlive = false;
  https.globalAgent.options.ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.pem'));
  await sleep(1000); // health checks mark the servers up

  const svc = ProvisioningServiceClient.fromConnectionString(
    fs.readFileSync(path.join(dataDir, 'service-connection-string'), 'utf8').trim());
  const devices = [];
  for (let i = 0; i < 30; i++) {
    const registrationId = `lb-dev-${i}`;
    const primaryKey = randomKey();
    await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: randomKey() } },
    }, cb));
    devices.push({ registrationId, primaryKey });
  }

  const failures = [];
  const results = [];
  const victim = instances[1];
  for (let i = 0; i < devices.length; i += 3) {
    if (i === 21) {
      await victim.start();
      await sleep(1500);                     // HAProxy sees it up again
    }
    const batch = devices.slice(i, i + 3).map((d) => registerWithRetry(d.registrationId, d.primaryKey, failures));
    if (i === 9) {                           // dies with registrations in flight
      await sleep(20);
      await victim.kill();
    }
    results.push(...await Promise.all(batch));
  }

  for (const r of results) {
    assert.equal(r.status, 'assigned', JSON.stringify(r));
    assert.ok(['hub-1.example.net', 'hub-2.example.net'].includes(r.assignedHub));
  }
  assert.equal(results.length, devices.length);
  t.diagnostic(`attempts that failed and were retried: ${failures.length} (${failures.join("; ")})`);
  assert.ok(failures.length <= 6, `too many failed attempts: ${failures.join('; ')}`);
  for (const inst of instances) assert.ok(inst.assigned() > 0, `instance ${inst.n} served no registration`);
  assert.ok(victim.runs === 2 && victim.assigned() > 0, 'the restarted instance serves again');

  // The service SDK sees every registration through the balancer.
  for (const d of devices) {
    const { result } = await call((cb) => svc.getDeviceRegistrationState(d.registrationId, cb));
    assert.equal(result.status, 'assigned');
  }
  const verify = execFileSync(PROVCTL, ['--url', `https://localhost:${lbPort}`, '--data-dir', dataDir,
    'events', 'verify'], { encoding: 'utf8' });
  assert.match(verify, /^journal ok/);
});
