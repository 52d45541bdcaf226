'use strict';
// ctest-labels: interop
// The unmodified Azure IoT Node SDK (service + device, HTTPS transport)
// against a real provd.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startProvd } = require('./lib/provd');
const { call, refusedWith } = require('./lib/sdk');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');

function randomKey() {
  return crypto.randomBytes(32).toString('base64');
}

function deriveKey(groupKey, registrationId) {
  return crypto.createHmac('sha256', Buffer.from(groupKey, 'base64'))
    .update(registrationId, 'utf8').digest('base64');
}

async function registerDevice(server, registrationId, key) {
  const security = new SymmetricKeySecurityClient(registrationId, key);
  const client = ProvisioningDeviceClient.create('localhost', server.idScope, new Http(), security);
  const { result } = await call((cb) => client.register(cb));
  return result;
}

test('azure-iot-provisioning-service + device SDK against provd', async (t) => {
  const server = await startProvd();
  t.after(async () => { assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM'); });
  const svc = ProvisioningServiceClient.fromConnectionString(server.connectionString);

  await t.test('individual enrollment: create, get, register, registration state', async () => {
    const registrationId = 'node-indiv-01';
    const primaryKey = randomKey();
    const { result: created } = await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      deviceId: 'node-device-01',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: randomKey() } },
    }, cb));
    assert.equal(created.registrationId, registrationId);
    assert.equal(created.provisioningStatus, 'enabled');
    assert.match(created.etag, /.+/);

    const { result: got } = await call((cb) => svc.getIndividualEnrollment(registrationId, cb));
    assert.equal(got.deviceId, 'node-device-01');
    assert.equal(got.etag, created.etag);

    const state = await registerDevice(server, registrationId, primaryKey);
    assert.equal(state.status, 'assigned');
    assert.equal(state.deviceId, 'node-device-01');
    assert.ok(['hub-1.example.net', 'hub-2.example.net'].includes(state.assignedHub), state.assignedHub);
    assert.equal(state.registrationId, registrationId);

    // The same device again lands on the same hub (hashed allocation is stable).
    const again = await registerDevice(server, registrationId, primaryKey);
    assert.equal(again.assignedHub, state.assignedHub);

    const { result: reg } = await call((cb) => svc.getDeviceRegistrationState(registrationId, cb));
    assert.equal(reg.assignedHub, state.assignedHub);
    assert.equal(reg.deviceId, 'node-device-01');
    assert.equal(reg.status, 'assigned');
  });

  await t.test('a wrong key is refused', async () => {
    const registrationId = 'node-indiv-wrong';
    await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: randomKey(), secondaryKey: randomKey() } },
    }, cb));
    await assert.rejects(registerDevice(server, registrationId, randomKey()),
      refusedWith({ name: 'UnauthorizedError', status: 401, errorCode: 401002 }));
  });

  await t.test('group enrollment: device key derived from the group key', async () => {
    const groupKey = randomKey();
    await call((cb) => svc.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'node-group-01',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: randomKey() } },
    }, cb));
    const registrationId = 'node-group-device-7';
    const state = await registerDevice(server, registrationId, deriveKey(groupKey, registrationId));
    assert.equal(state.status, 'assigned');
    assert.equal(state.deviceId, registrationId);
    const { result: reg } = await call((cb) => svc.getDeviceRegistrationState(registrationId, cb));
    assert.equal(reg.assignedHub, state.assignedHub);
  });

  await t.test('update with If-Match, stale etag refused, query, delete', async () => {
    const registrationId = 'node-etag-01';
    const { result: first } = await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: randomKey(), secondaryKey: randomKey() } },
    }, cb));
    // Read-modify-write: the SDK sends If-Match with the etag it got.
    const updated = Object.assign({}, first, { provisioningStatus: 'disabled' });
    const { result: second } = await call((cb) => svc.createOrUpdateIndividualEnrollment(updated, cb));
    assert.equal(second.provisioningStatus, 'disabled');
    assert.notEqual(second.etag, first.etag);
    assert.equal(second.createdDateTimeUtc, first.createdDateTimeUtc);

    // A write based on the old etag must fail with 412.
    const stale = Object.assign({}, first, { provisioningStatus: 'enabled' });
    await assert.rejects(call((cb) => svc.createOrUpdateIndividualEnrollment(stale, cb)),
      refusedWith({ name: 'InvalidEtagError', status: 412, errorCode: 412001 }));

    const query = svc.createIndividualEnrollmentQuery({ query: '*' }, 2);
    const seen = [];
    for (let page = 0; page < 50 && (page === 0 || query.hasMoreResults); page++) {
      const { result } = await call((cb) => query.next(cb));
      assert.ok(Array.isArray(result));
      assert.ok(result.length <= 2, 'page size honoured');
      seen.push(...result.map((e) => e.registrationId));
    }
    assert.ok(seen.includes(registrationId), `query lists ${registrationId}: ${seen}`);
    assert.equal(new Set(seen).size, seen.length, 'no duplicates across pages');

    await call((cb) => svc.deleteIndividualEnrollment(registrationId, cb));
    await assert.rejects(call((cb) => svc.getIndividualEnrollment(registrationId, cb)),
      refusedWith({ name: 'Error', status: 404, errorCode: 404201 }));
  });
});
