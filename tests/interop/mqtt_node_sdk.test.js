'use strict';
// ctest-labels: interop
// The unmodified Azure IoT Node SDK over MQTT (azure-iot-provisioning-
// device-mqtt) against a real provd: symmetric key (individual and
// group) and X.509 devices register over MQTT/TLS; a wrong key is
// refused.  The host is "localhost:PORT" (the MQTT transport keeps the
// port) and the CA goes in through MqttBase options.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startProvd } = require('./lib/provd');
const { call } = require('./lib/sdk');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt } = require('azure-iot-provisioning-device-mqtt');
const { MqttBase } = require('azure-iot-mqtt-base');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');

const randomKey = () => crypto.randomBytes(32).toString('base64');
const deriveKey = (groupKey, id) => crypto.createHmac('sha256', Buffer.from(groupKey, 'base64'))
  .update(id, 'utf8').digest('base64');

async function register(server, security) {
  const base = new MqttBase();
  base.setOptions({ ca: server.ca.toString() });
  const client = ProvisioningDeviceClient.create(`localhost:${server.mqttPort}`, server.idScope,
    new Mqtt(base), security);
  const { result } = await call((cb) => client.register(cb));
  return result;
}

function selfSignedDevice(dir, cn) {
  const key = path.join(dir, `${cn}.key`);
  const pem = path.join(dir, `${cn}.pem`);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key);
  openssl('req', '-x509', '-new', '-key', key, '-subj', `/CN=${cn}`, '-days', '30', '-out', pem,
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=clientAuth');
  return { cert: fs.readFileSync(pem, 'utf8'), key: fs.readFileSync(key, 'utf8') };
}

test('Azure IoT Node SDK over MQTT against provd', async (t) => {
  const server = await startProvd({ mqtt: true });
  t.after(async () => { assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM'); });
  assert.ok(server.mqttPort, 'the banner names the MQTT endpoint');
  const svc = ProvisioningServiceClient.fromConnectionString(server.connectionString);

  await t.test('symmetric key, individual enrollment', async () => {
    const registrationId = 'node-mqtt-indiv-01';
    const primaryKey = randomKey();
    await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId, deviceId: 'node-mqtt-device-01',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: randomKey() } },
    }, cb));
    const state = await register(server, new SymmetricKeySecurityClient(registrationId, primaryKey));
    assert.equal(state.status, 'assigned');
    assert.equal(state.registrationId, registrationId);
    assert.equal(state.deviceId, 'node-mqtt-device-01');
    assert.ok(['hub-1.example.net', 'hub-2.example.net'].includes(state.assignedHub), state.assignedHub);
    const { result: reg } = await call((cb) => svc.getDeviceRegistrationState(registrationId, cb));
    assert.equal(reg.assignedHub, state.assignedHub);
  });

  await t.test('symmetric key, group enrollment', async () => {
    const groupKey = randomKey();
    await call((cb) => svc.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'node-mqtt-group-01',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: randomKey() } },
    }, cb));
    const registrationId = 'node-mqtt-group-device-3';
    const state = await register(server,
      new SymmetricKeySecurityClient(registrationId, deriveKey(groupKey, registrationId)));
    assert.equal(state.status, 'assigned');
    assert.equal(state.deviceId, registrationId);
  });

  await t.test('a wrong key is refused', async () => {
    const registrationId = 'node-mqtt-wrong-01';
    await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: randomKey(), secondaryKey: randomKey() } },
    }, cb));
    await assert.rejects(register(server, new SymmetricKeySecurityClient(registrationId, randomKey())),
      (err) => {
        // refused at CONNECT, as DPS does: MQTT.js reports the CONNACK code
        assert.match(err.message, /Bad username or password/, err.stack);
        return true;
      });
    const refusedLine = /connect refused regid=node-mqtt-wrong-01 reason=BAD_SIGNATURE connack=4 peer=\S+ transport=mqtt/;
    assert.match(await server.waitForLog(refusedLine), refusedLine);
  });

  await t.test('X.509, individual enrollment (TLS client certificate)', async () => {
    const registrationId = 'node-mqtt-x509-01';
    const dir = fs.mkdtempSync(path.join(server.dir, 'pki-'));
    const device = selfSignedDevice(dir, registrationId);
    await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.cert } } } },
    }, cb));
    const state = await register(server, new X509Security(registrationId, device));
    assert.equal(state.status, 'assigned');
    assert.equal(state.deviceId, registrationId);
  });
});
