'use strict';
// ctest-labels: interop
// The unmodified Azure IoT Node device client (azure-iot-device +
// azure-iot-device-mqtt) on a mosquitto hub provd assigned it to: the
// device provisions through provd with the DPS Node SDK, then connects
// with a plain device connection string (HostName = the assigned hub,
// GatewayHostName=localhost:PORT, SharedAccessKey = its key) and sends a
// message; a back-end subscriber on the broker sees it on the topic of the
// device id provd assigned, and the broker's provd_auth plugin logged that
// identity's SAS login.  A key provd did not hand out is refused.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startProvd } = require('./lib/provd');
const { call } = require('./lib/sdk');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const BUILD_DIR = process.env.PROVD_BUILD_DIR || path.resolve(__dirname, '../../build');
const AUTH_SO = path.join(BUILD_DIR, 'mosquitto', 'provd_auth.so');
const randomKey = () => crypto.randomBytes(32).toString('base64');

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(what, fn, ms = 10000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function startBroker(dir, port, dataDir, identities) {
  const passwd = path.join(dir, 'passwd');
  execFileSync('mosquitto_passwd', ['-c', '-b', passwd, 'backend', 'backend-pw'], { stdio: 'ignore' });
  fs.writeFileSync(path.join(dir, 'acl'), 'user backend\ntopic read devices/#\n');
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, [
    'per_listener_settings false',
    `listener ${port} 127.0.0.1`,
    `certfile ${path.join(dataDir, 'tls', 'server.pem')}`,
    `keyfile ${path.join(dataDir, 'tls', 'server.key')}`,
    'allow_anonymous false',
    `plugin ${AUTH_SO}`,
    `plugin_opt_identities ${identities}`,
    `password_file ${passwd}`,
    `acl_file ${path.join(dir, 'acl')}`,
    'persistence false',
    `user ${os.userInfo().username}`,
    'log_dest stderr',
    '',
  ].join('\n'));
  const bin = fs.existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  return { child, log: () => log };
}

function connectionString(hub, deviceId, key, port) {
  return `HostName=${hub};DeviceId=${deviceId};SharedAccessKey=${key};GatewayHostName=localhost:${port}`;
}

async function sendOne(cs, ca, body) {
  const client = Client.fromConnectionString(cs, Mqtt);
  try {
    await call((cb) => client.setOptions({ ca }, cb));
    await call((cb) => client.open(cb));
    await call((cb) => client.sendEvent(new Message(body), cb));
  } finally {
    await call((cb) => client.close(cb)).catch(() => {});
  }
}

test('Azure IoT Node device client on a mosquitto hub assigned by provd', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'provd-hub-interop-'));
  const hubPort = await freePort();
  const identities = path.join(dir, 'identities');
  const server = await startProvd({
    dir,
    hubs: ['{ name: local, hostname: localhost, weight: 1 }'],
    extraPlugins: [`{ kind: hub, name: mosquitto, id: local, options: { identities_file: ${identities}, broker: "127.0.0.1:${hubPort}" } }`],
  });
  const dataDir = path.join(server.dir, 'data');
  const broker = startBroker(dir, hubPort, dataDir, identities);
  let subscriber = null;
  t.after(async () => {
    if (subscriber) subscriber.kill();
    broker.child.kill();
    assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM');
  });
  await waitFor('the broker', () => new Promise((resolve) => {
    const s = net.connect(hubPort, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }));

  const svc = ProvisioningServiceClient.fromConnectionString(server.connectionString);
  const registrationId = 'node-hub-device-01';
  const primaryKey = randomKey();
  await call((cb) => svc.createOrUpdateIndividualEnrollment({
    registrationId, deviceId: 'node-hub-thermostat',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: randomKey() } },
  }, cb));
  const dps = ProvisioningDeviceClient.create('localhost', server.idScope, new Http(),
    new SymmetricKeySecurityClient(registrationId, primaryKey));
  const { result } = await call((cb) => dps.register(cb));
  assert.equal(result.status, 'assigned');
  assert.equal(result.assignedHub, 'localhost');
  assert.equal(result.deviceId, 'node-hub-thermostat');
  await waitFor('the identity on the hub',
    () => fs.existsSync(identities) && fs.readFileSync(identities, 'utf8').includes('node-hub-thermostat\t'));

  const received = [];
  subscriber = spawn('mosquitto_sub', ['-h', 'localhost', '-p', String(hubPort),
    '--cafile', path.join(dataDir, 'tls', 'ca.pem'), '-u', 'backend', '-P', 'backend-pw',
    '-t', 'devices/#', '-v'], { stdio: ['ignore', 'pipe', 'ignore'] });
  subscriber.stdout.on('data', (d) => received.push(...d.toString().split('\n').filter(Boolean)));
  await new Promise((r) => setTimeout(r, 500));

  const body = JSON.stringify({ temperature: 22.5, from: 'azure-iot-device' });
  await sendOne(connectionString(result.assignedHub, result.deviceId, primaryKey, hubPort),
    server.ca.toString(), body);
  await waitFor('the message at the back end', () => received.length > 0);
  const [topic, ...rest] = received[0].split(' ');
  assert.match(topic, /^devices\/node-hub-thermostat\/messages\/events\//,
    'the message arrives on the topic of the device id provd assigned');
  assert.equal(rest.join(' '), body);
  // The broker's stderr comes through a pipe: give the line a moment.
  const login = /provd_auth: device node-hub-thermostat connected \(SAS token\)/;
  await waitFor('the broker plugin\'s login line', () => login.test(broker.log()), 2000).catch(() => {});
  assert.match(broker.log(), login);

  await assert.rejects(
    sendOne(connectionString(result.assignedHub, result.deviceId, randomKey(), hubPort),
      server.ca.toString(), '{"forged":true}'),
    'a key provd did not hand out is refused');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(received.length, 1, 'nothing else arrived');
});
