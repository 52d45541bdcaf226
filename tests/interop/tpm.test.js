'use strict';
// ctest-labels: interop
// The unmodified Azure IoT Node SDK TPM client (azure-iot-security-tpm over
// tss.js, TCP to a private swtpm) registers with provd over HTTPS, twice
// in a row: the challenge round, the key import, the SAS token signed in
// the TPM, registrationState.tpm.authenticationKey imported at the end.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startProvd } = require('./lib/provd');
const { startSwtpm } = require('./lib/swtpm');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { TpmSecurityClient } = require('azure-iot-security-tpm');
const { Tpm, TpmTcpDevice } = require('tss.js');

function call(fn) {
  return new Promise((resolve, reject) => {
    fn((err, result) => (err ? reject(err) : resolve(result)));
  });
}

// The SDK's documented way to reach a TPM simulator on another port.
function tpmOn(port) {
  const tpm = new Tpm(false);
  tpm.device = new TpmTcpDevice('127.0.0.1', port, true);
  tpm.device.oldTrm = false;
  return tpm;
}

// One device run: a fresh security client on the same TPM; the TPM
// connection is closed after (swtpm serves one client at a time).
async function withTpmClient(port, fn) {
  const tpm = tpmOn(port);
  try {
    return await fn(new TpmSecurityClient(undefined, tpm));
  } finally {
    tpm.close();
  }
}

test('Azure Node SDK TPM client against provd', async (t) => {
  const swtpm = await startSwtpm();
  t.after(() => swtpm.stop());
  const server = await startProvd();
  t.after(async () => { assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM'); });

  const { registrationId, endorsementKey } = await withTpmClient(swtpm.port, async (security) => ({
    registrationId: await call((cb) => security.getRegistrationId(cb)),
    endorsementKey: (await call((cb) => security.getEndorsementKey(cb))).toString('base64'),
  }));
  assert.match(registrationId, /^[a-z2-7]{52}$/);

  const svc = ProvisioningServiceClient.fromConnectionString(server.connectionString);
  const created = await call((cb) => svc.createOrUpdateIndividualEnrollment({
    registrationId,
    attestation: { type: 'tpm', tpm: { endorsementKey } },
  }, cb));
  assert.equal(created.attestation.type, 'tpm');
  assert.equal(created.attestation.tpm.endorsementKey, endorsementKey);

  for (const round of [1, 2]) {
    const result = await withTpmClient(swtpm.port, (security) => {
      const client = ProvisioningDeviceClient.create('localhost', server.idScope, new Http(), security);
      return call((cb) => client.register(cb));
    });
    // The TPM client hands back the whole operation status.
    const state = result.registrationState;
    assert.equal(result.status, 'assigned', `round ${round}: ${JSON.stringify(result)}`);
    assert.equal(state.registrationId, registrationId);
    assert.equal(state.deviceId, registrationId);
    assert.ok(['hub-1.example.net', 'hub-2.example.net'].includes(state.assignedHub), state.assignedHub);
    assert.match(state.tpm.authenticationKey, /^[A-Za-z0-9+/]+=*$/);
  }
  const logs = server.logs();
  assert.equal((logs.match(new RegExp(`challenge issued regid=${registrationId}`, 'g')) || []).length, 2,
    'one challenge per registration');
});
