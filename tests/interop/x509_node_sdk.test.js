'use strict';
// ctest-labels: interop
// X.509 attestation with the unmodified Azure IoT Node SDK: the service
// SDK enrolls certificates, the device SDK (HTTPS transport +
// azure-iot-security-x509) registers over mutual TLS.  Certificates are
// made here with the openssl CLI.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startProvd } = require('./lib/provd');
const { call, refusedWith } = require('./lib/sdk');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { X509Security } = require('azure-iot-security-x509');

const DEVICE_EXT = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
  + 'extendedKeyUsage=clientAuth\n';
const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n';

// A tiny PKI in dir: keys are ECDSA P-256, names are file stems.
function pki(dir) {
  const file = (name, ext) => path.join(dir, `${name}.${ext}`);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const read = (name) => fs.readFileSync(file(name, 'pem'), 'utf8');
  // issue(name, cn, issuer|null, extensions): a certificate signed by
  // issuer, or self-signed.
  function issue(name, cn, issuer, extensions) {
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file(name, 'key'));
    fs.writeFileSync(file(name, 'ext'), extensions);
    openssl('req', '-new', '-key', file(name, 'key'), '-subj', `/CN=${cn}`, '-out', file(name, 'csr'));
    const signer = issuer
      ? ['-CA', file(issuer, 'pem'), '-CAkey', file(issuer, 'key'), '-CAcreateserial']
      : ['-signkey', file(name, 'key')];
    openssl('x509', '-req', '-in', file(name, 'csr'), ...signer, '-days', '30',
      '-extfile', file(name, 'ext'), '-out', file(name, 'pem'));
    return { cert: read(name), key: fs.readFileSync(file(name, 'key'), 'utf8') };
  }
  return { issue };
}

async function registerDevice(server, registrationId, x509) {
  const security = new X509Security(registrationId, x509);
  const client = ProvisioningDeviceClient.create('localhost', server.idScope, new Http(), security);
  const { result } = await call((cb) => client.register(cb));
  return result;
}

test('X.509 devices with the Azure IoT Node SDK against provd', async (t) => {
  const server = await startProvd();
  t.after(async () => { assert.equal(await server.stop(), 0, 'provd exits 0 on SIGTERM'); });
  const svc = ProvisioningServiceClient.fromConnectionString(server.connectionString);
  const dir = fs.mkdtempSync(path.join(server.dir, 'pki-'));
  const { issue } = pki(dir);
  const root = issue('root', 'Node Root', null, CA_EXT);
  const inter = issue('inter', 'Node Intermediate', 'root', CA_EXT);

  await t.test('individual enrollment: a self-signed device certificate', async () => {
    const registrationId = 'node-x509-01';
    const device = issue('solo', registrationId, null, DEVICE_EXT);
    const { result: created } = await call((cb) => svc.createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.cert } } } },
    }, cb));
    assert.equal(created.attestation.type, 'x509');
    assert.equal(created.attestation.x509.clientCertificates.primary.info.subjectName,
      `CN=${registrationId}`);

    const state = await registerDevice(server, registrationId, device);
    assert.equal(state.status, 'assigned');
    assert.equal(state.deviceId, registrationId);
    assert.ok(['hub-1.example.net', 'hub-2.example.net'].includes(state.assignedHub), state.assignedHub);
    assert.equal(state.x509.certificateInfo.sha256Thumbprint,
      created.attestation.x509.clientCertificates.primary.info.sha256Thumbprint);
  });

  await t.test('enrollment group on the root: the device sends leaf + intermediate', async () => {
    const registrationId = 'node-x509-fleet-01';
    await call((cb) => svc.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'node-x509-fleet',
      attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: root.cert } } } },
    }, cb));
    const leaf = issue('fleet-01', registrationId, 'inter', DEVICE_EXT);
    const state = await registerDevice(server, registrationId,
      { cert: leaf.cert + inter.cert, key: leaf.key });
    assert.equal(state.status, 'assigned');
    assert.equal(state.x509.enrollmentGroupId, 'node-x509-fleet');
    assert.equal(state.x509.signingCertificateInfo.subjectName, 'CN=Node Root');

    const { result: registration } = await call((cb) => svc.getDeviceRegistrationState(registrationId, cb));
    assert.equal(registration.status, 'assigned');
  });

  await t.test('a certificate whose CN is not the registration id is refused', async () => {
    const leaf = issue('liar', 'node-x509-someone-else', 'inter', DEVICE_EXT);
    await assert.rejects(
      registerDevice(server, 'node-x509-fleet-02', { cert: leaf.cert + inter.cert, key: leaf.key }),
      refusedWith({ name: 'UnauthorizedError', status: 401, errorCode: 401002 }));
    const refusedLine = /regid=node-x509-fleet-02 reason=CERT_CN_MISMATCH/;
    assert.match(await server.waitForLog(refusedLine), refusedLine);
  });
});
