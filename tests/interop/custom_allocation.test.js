'use strict';
// ctest-labels: interop
// DPS custom allocation with the unmodified Azure IoT Node SDK: the
// device sends a payload, a webhook on loopback (started here) sees it in
// the AllocationRequest, picks the hub, and its payload comes back to the
// device in registrationState.payload (docs/allocation.md#custom).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { startProvd } = require('./lib/provd');
const { call } = require('./lib/sdk');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');

function startWebhook() {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const request = JSON.parse(body);
      seen.push(request);
      const answer = JSON.stringify({
        iotHubHostName: 'hub-2.example.net',
        initialTwin: { tags: { kind: 'toaster' }, properties: { desired: { state: 'ready' } } },
        payload: { welcome: request.deviceRuntimeContext.payload.firmware },
      });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(answer);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, seen, port: server.address().port }));
  });
}

test('custom allocation webhook with the Node SDK', async (t) => {
  const hook = await startWebhook();
  const server = await startProvd({
    extraPlugins: ['{ kind: allocation, name: custom-webhook, options: { timeout: 2s } }'],
  });
  t.after(async () => {
    hook.server.close();
    assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM');
  });
  const svc = ProvisioningServiceClient.fromConnectionString(server.connectionString);
  const registrationId = 'node-custom-01';
  const primaryKey = crypto.randomBytes(32).toString('base64');
  await call((cb) => svc.createOrUpdateIndividualEnrollment({
    registrationId,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: primaryKey } },
    allocationPolicy: 'custom',
    customAllocationDefinition: {
      webhookUrl: `http://127.0.0.1:${hook.port}/api/alloc?code=secret`,
      apiVersion: '2021-10-01',
    },
  }, cb));

  const security = new SymmetricKeySecurityClient(registrationId, primaryKey);
  const client = ProvisioningDeviceClient.create('localhost', server.idScope, new Http(), security);
  client.setProvisioningPayload({ firmware: '12.0.2.5' });
  const { result } = await call((cb) => client.register(cb));
  assert.equal(result.status, 'assigned');
  assert.equal(result.assignedHub, 'hub-2.example.net');
  assert.deepEqual(result.payload, { welcome: '12.0.2.5' });

  assert.equal(hook.seen.length, 1);
  const request = hook.seen[0];
  assert.equal(request.individualEnrollment.registrationId, registrationId);
  assert.deepEqual(request.individualEnrollment.attestation, { type: 'symmetricKey' });
  assert.equal(request.deviceRuntimeContext.registrationId, registrationId);
  assert.deepEqual(request.deviceRuntimeContext.payload, { firmware: '12.0.2.5' });
  assert.deepEqual(request.linkedHubs, ['hub-1.example.net', 'hub-2.example.net']);

  const { result: reg } = await call((cb) => svc.getDeviceRegistrationState(registrationId, cb));
  assert.equal(reg.assignedHub, 'hub-2.example.net');
  assert.deepEqual(reg.payload, { welcome: '12.0.2.5' });
});
