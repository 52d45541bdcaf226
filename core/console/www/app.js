// provd console: one page, no build step.  It talks to provd's service API
// like any client: each request carries a SharedAccessSignature that this
// tab computes with WebCrypto.  The connection string lives in
// sessionStorage only (gone with the tab; never in a URL or a cookie).
'use strict';

const API_VERSION = '2021-10-01';
const PAGE_SIZE = 25;
const EVENTS_KEPT = 200;
const IMPORT_BATCH = 10; // the service API's bulk limit
const STORE_KEY = 'provd.connectionString';

// Reason codes (docs/reason-codes.md) in words, for registrations and explain.
const REASONS = {
  ENROLLMENT_NOT_FOUND: 'No enrollment or group accepts this device.',
  MISSING_TOKEN: 'The device sent no SAS token.',
  MALFORMED_TOKEN: 'The device\'s SAS token does not parse.',
  TOKEN_RESOURCE_MISMATCH: 'The token was made for another ID scope or registration id.',
  BAD_KEY_NAME: 'The token\'s key name is not "registration".',
  BAD_SIGNATURE: 'Wrong key: no key of the enrollment signed the token.',
  TOKEN_EXPIRED: 'The device\'s token has expired (check its clock).',
  TOKEN_LIFETIME_TOO_LONG: 'The device\'s token lives longer than allowed.',
  TPM_EK_MISMATCH: 'The TPM endorsement key is not the enrolled one.',
  TPM_BAD_BLOB: 'The TPM keys the device sent are not usable.',
  TPM_CHALLENGE_EXPIRED: 'The TPM challenge expired before the device answered.',
  TPM_CHALLENGE_REPLAYED: 'The TPM challenge was already used.',
  ENROLLMENT_DISABLED: 'The enrollment or group is disabled.',
  NO_HUB_AVAILABLE: 'No hub can take the device (none linked, all drained, or an unknown hub named).',
  CERT_MISSING: 'The device presented no usable certificate.',
  CERT_CN_MISMATCH: 'The certificate\'s CN is not the registration id.',
  CERT_UNTRUSTED: 'The certificate is not enrolled and chains to no enrolled CA.',
  CERT_EXPIRED: 'A certificate of the chain has expired.',
  CERT_NOT_YET_VALID: 'A certificate of the chain is not valid yet.',
  CERT_REVOKED: 'The group\'s CRL revokes a certificate of the chain.',
  ATTESTATION_MISMATCH: 'The device used another attestation than its enrollment.',
  ATTESTATION_UNAVAILABLE: 'No attestation plugin handles the device\'s mechanism.',
  ATTESTATION_ERROR: 'An attestation plugin failed (provd\'s fault, not the device\'s).',
  ALLOCATION_POLICY_UNAVAILABLE: 'No allocation plugin implements the enrollment\'s policy.',
  ALLOCATION_WEBHOOK_FAILED: 'The custom allocation webhook failed.',
  CSR_NOT_CONFIGURED: 'The device sent a CSR but its enrollment names no certificate issuer.',
  CSR_MALFORMED: 'The device\'s CSR is malformed.',
  CSR_BAD_SIGNATURE: 'The CSR\'s signature does not verify.',
  CSR_KEY_UNSUPPORTED: 'The CSR\'s key type is not accepted.',
  CSR_CN_MISMATCH: 'The CSR\'s CN is not the registration id.',
  CSR_ISSUANCE_FAILED: 'provd could not sign the device certificate.',
  STORE_UNAVAILABLE: 'The store was unavailable.',
  THROTTLED: 'provd was overloaded.',
};
const ERROR_CODES = {
  400207: 'ALLOCATION_WEBHOOK_FAILED',
  400208: 'NO_HUB_AVAILABLE',
  401002: 'BAD_SIGNATURE',
};

function reasonWords(code) {
  return REASONS[code] || (code ? `Reason ${code}.` : '');
}

// ---- DOM ----

// h('a', {href: '#'}, 'text', child): attributes set as properties where
// they exist (on*: listeners), children appended as text or nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function field(label, input) {
  const id = `f-${input.getAttribute('name')}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('br'), input);
}

const page = () => document.getElementById('page');

function show(...nodes) {
  page().replaceChildren(...nodes);
}

function errorBox() {
  return h('p', { class: 'error', role: 'alert' });
}

function copyButton(label, text) {
  return h('button', {
    type: 'button', class: 'secondary', 'aria-label': label,
    onclick: async (e) => {
      try {
        await navigator.clipboard.writeText(text);
        e.target.textContent = 'Copied';
      } catch {
        e.target.textContent = 'Select and copy';
      }
    },
  }, 'Copy');
}

function downloadText(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- authentication ----

function parseConnectionString(text) {
  const parts = {};
  for (const item of text.trim().split(';')) {
    const eq = item.indexOf('=');
    if (eq > 0) parts[item.slice(0, eq).trim().toLowerCase()] = item.slice(eq + 1).trim();
  }
  const host = parts.hostname;
  const name = parts.sharedaccesskeyname;
  const key = parts.sharedaccesskey;
  if (!host || !name || !key) {
    throw new Error('A connection string has HostName=…;SharedAccessKeyName=…;SharedAccessKey=…');
  }
  return { host, name, key };
}

function b64ToBytes(b64) {
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function bytesToB64(bytes) {
  let bin = '';
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function randomKey() {
  return bytesToB64(crypto.getRandomValues(new Uint8Array(64)));
}

const session = { cs: null, hmacKey: null, policy: null, canWrite: false, permissions: [] };

// DPS's access policy permissions (docs/service-api.md#permissions).
const ALL_PERMISSIONS = ['ServiceConfig', 'EnrollmentRead', 'EnrollmentWrite',
  'RegistrationStatusRead', 'RegistrationStatusWrite'];
const WRITE_PERMISSIONS = ['ServiceConfig', 'EnrollmentWrite', 'RegistrationStatusWrite'];

function may(...names) {
  return names.every((n) => session.permissions.includes(n));
}

// A page the policy may not read says so instead of failing a request.
function notPermitted(title, needs, what) {
  show(h('h1', {}, title),
    h('p', { class: 'muted', role: 'status', dataset: { field: 'notPermitted' } },
      `This access policy lacks ${needs}, so ${what} are not shown.`));
}

async function importKey(cs) {
  let raw;
  try {
    raw = b64ToBytes(cs.key);
  } catch {
    throw new Error('SharedAccessKey is not base64.');
  }
  return crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
}

// DPS service SAS: HMAC-SHA256 over "<url-encoded host>\n<expiry>".
async function sasToken() {
  const sr = encodeURIComponent(session.cs.host);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const mac = await crypto.subtle.sign('HMAC', session.hmacKey,
    new TextEncoder().encode(`${sr}\n${se}`));
  const sig = encodeURIComponent(bytesToB64(mac));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${se}&skn=${encodeURIComponent(session.cs.name)}`;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.errorCode = body && body.errorCode;
  }
}

// One service API call; answers {status, body, headers}, throws ApiError
// for any status >= 400.
async function api(method, path, { body, headers = {} } = {}) {
  const sep = path.includes('?') ? '&' : '?';
  const init = { method, headers: { Authorization: await sasToken(), ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/${path}${sep}api-version=${API_VERSION}`, init);
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (res.status >= 400) throw new ApiError(res.status, json);
  return { status: res.status, body: json, headers: res.headers };
}

function explainError(err) {
  if (!(err instanceof ApiError)) return err.message;
  if (err.status === 412) {
    return 'Someone changed this record since it was loaded (ETag conflict). Reload it and apply your change again.';
  }
  if (err.status === 403) return err.message; // names the permission it lacks
  if (err.status === 401) return 'The service refused the signature: sign in again.';
  return `${err.message} (HTTP ${err.status}${err.errorCode ? `, ${err.errorCode}` : ''})`;
}

async function signIn(text) {
  const cs = parseConnectionString(text);
  session.cs = cs;
  session.hmacKey = await importKey(cs);
  try {
    const { body } = await api('GET', 'policy');
    session.policy = body.name;
    // Servers before the permissions list said canWrite only.
    session.permissions = Array.isArray(body.permissions) ? body.permissions
      : (body.canWrite ? ALL_PERMISSIONS : ['EnrollmentRead', 'RegistrationStatusRead']);
    session.canWrite = may('EnrollmentWrite');
    session.idScope = body.idScope;
  } catch (err) {
    session.cs = null;
    session.hmacKey = null;
    if (err instanceof ApiError && err.status === 401) {
      throw new Error('Sign-in refused: the key or the policy name is wrong.');
    }
    throw err;
  }
  sessionStorage.setItem(STORE_KEY, text);
  document.body.classList.toggle('read-only', !session.canWrite);
  let rights = '';
  if (!WRITE_PERMISSIONS.some((p) => may(p))) rights = ' (read-only)';
  else if (!may(...ALL_PERMISSIONS)) rights = ` (${session.permissions.join(', ')})`;
  document.getElementById('who').textContent = `${cs.host} · policy ${session.policy}${rights}`;
}

function signOut() {
  sessionStorage.removeItem(STORE_KEY);
  Object.assign(session, { cs: null, hmacKey: null, policy: null, canWrite: false, permissions: [] });
  location.hash = '';
  render();
}

// ---- enrollments and groups ----

const KINDS = {
  enrollments: {
    title: 'Enrollments', collection: 'enrollments', idField: 'registrationId',
    idLabel: 'Registration id', singular: 'enrollment',
  },
  groups: {
    title: 'Groups', collection: 'enrollmentGroups', idField: 'enrollmentGroupId',
    idLabel: 'Group id', singular: 'group',
  },
};

function attestationType(doc) {
  return (doc.attestation && doc.attestation.type) || '?';
}

function statusBadge(status) {
  return h('span', { class: `badge ${status || ''}` }, status || '—');
}

// Loads a page of a collection: {items, next}.
async function queryPage(kind, continuation, size) {
  const headers = { 'x-ms-max-item-count': String(size) };
  if (continuation) headers['x-ms-continuation'] = continuation;
  const res = await api('POST', `${kind.collection}/query`, { body: { query: 'SELECT *' }, headers });
  return { items: res.body || [], next: res.headers.get('x-ms-continuation') };
}

// Search reads every page (ids only compare as substrings here; the DPS
// query language is not interpreted by provd).
async function searchAll(kind, text) {
  const found = [];
  let next = null;
  for (let i = 0; i < 50; i++) {
    const res = await queryPage(kind, next, 1000);
    const needle = text.toLowerCase();
    found.push(...res.items.filter((d) => JSON.stringify([d[kind.idField], d.deviceId || ''])
      .toLowerCase().includes(needle)));
    next = res.next;
    if (!next) break;
  }
  return found;
}

async function setStatus(kind, id, status, err) {
  try {
    const { body: doc } = await api('GET', `${kind.collection}/${encodeURIComponent(id)}`);
    doc.provisioningStatus = status;
    await api('PUT', `${kind.collection}/${encodeURIComponent(id)}`, {
      body: doc, headers: { 'If-Match': doc.etag },
    });
    return true;
  } catch (e) {
    err.textContent = explainError(e);
    return false;
  }
}

function deleteControl(kind, id, err, done) {
  const cell = h('span', { class: 'confirm' });
  const ask = h('button', {
    type: 'button', class: 'danger', 'aria-label': `Delete ${id}`,
    onclick: () => {
      cell.replaceChildren(
        h('span', {}, `Delete ${id}?`),
        h('button', {
          type: 'button', class: 'danger', onclick: async () => {
            try {
              await api('DELETE', `${kind.collection}/${encodeURIComponent(id)}`);
              done();
            } catch (e) { err.textContent = explainError(e); }
          },
        }, 'Yes, delete'),
        h('button', { type: 'button', class: 'secondary', onclick: () => cell.replaceChildren(ask) }, 'Cancel'));
      cell.querySelector('button').focus();
    },
  }, 'Delete');
  cell.append(ask);
  return cell;
}

function listRow(kind, doc, err, reload) {
  const id = doc[kind.idField];
  const enabled = doc.provisioningStatus !== 'disabled';
  const reg = doc.registrationState || {};
  const actions = session.canWrite ? [
    h('button', {
      type: 'button', class: 'secondary', 'aria-label': `${enabled ? 'Disable' : 'Enable'} ${id}`,
      onclick: async () => { if (await setStatus(kind, id, enabled ? 'disabled' : 'enabled', err)) reload(); },
    }, enabled ? 'Disable' : 'Enable'),
    ' ',
    h('a', { href: `#/${kindName(kind)}/${encodeURIComponent(id)}` }, 'Edit'),
    ' ',
    deleteControl(kind, id, err, reload),
  ] : [h('a', { href: `#/${kindName(kind)}/${encodeURIComponent(id)}` }, 'View')];
  return h('tr', { dataset: { id } },
    h('td', {}, id),
    kind.idField === 'registrationId' ? h('td', {}, doc.deviceId || '') : null,
    h('td', {}, attestationType(doc)),
    h('td', {}, statusBadge(doc.provisioningStatus || 'enabled')),
    kind.idField === 'registrationId' ? h('td', {}, reg.assignedHub || '') : h('td', {}, (doc.iotHubs || []).join(', ')),
    h('td', { class: 'actions' }, actions));
}

function kindName(kind) {
  return kind === KINDS.groups ? 'groups' : 'enrollments';
}

function renderList(kind) {
  if (!may('EnrollmentRead')) {
    notPermitted(kind.title, 'EnrollmentRead', kind.title.toLowerCase());
    return;
  }
  const err = errorBox();
  const tbody = h('tbody');
  const search = h('input', { name: 'search', type: 'search', placeholder: 'id or device id' });
  const prev = h('button', { type: 'button', class: 'secondary' }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next');
  const where = h('span', { class: 'muted' });
  const stack = []; // continuation tokens of the pages before this one
  let current = null;
  let nextToken = null;

  async function load() {
    err.textContent = '';
    try {
      let items;
      if (search.value.trim()) {
        items = await searchAll(kind, search.value.trim());
        nextToken = null;
        where.textContent = `${items.length} found`;
      } else {
        const res = await queryPage(kind, current, PAGE_SIZE);
        items = res.items;
        nextToken = res.next;
        where.textContent = `page ${stack.length + 1}`;
      }
      tbody.replaceChildren(...items.map((d) => listRow(kind, d, err, load)));
      if (!items.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Nothing here yet.')));
      prev.disabled = !stack.length || !!search.value.trim();
      next.disabled = !nextToken;
    } catch (e) { err.textContent = explainError(e); }
  }
  prev.addEventListener('click', () => { current = stack.pop() || null; load(); });
  next.addEventListener('click', () => { stack.push(current); current = nextToken; load(); });

  const individual = kind.idField === 'registrationId';
  show(
    h('h1', {}, kind.title),
    h('form', {
      class: 'inline', role: 'search',
      onsubmit: (e) => { e.preventDefault(); stack.length = 0; current = null; load(); },
    }, h('label', {}, 'Search', search), h('button', { type: 'submit' }, 'Search')),
    err,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {},
        h('th', {}, kind.idLabel), individual ? h('th', {}, 'Device id') : null,
        h('th', {}, 'Attestation'), h('th', {}, 'Status'),
        h('th', {}, individual ? 'Assigned hub' : 'Hubs'), h('th', {}, 'Actions'))),
      tbody)),
    h('div', { class: 'pager' }, prev, next, where),
    session.canWrite ? createForm(kind, load) : h('p', { class: 'muted' }, 'Read-only policy: creating and changing are not offered.'));
  load();
}

// The DPS id rule the service API applies (checked here too, so a bad
// row is named without a refused request).
const ID_RULE = /^[A-Za-z0-9\-._:]{0,127}[A-Za-z0-9-]$/;

function checkId(id) {
  if (!ID_RULE.test(id)) {
    throw new Error(`"${id}" is not a valid registration id (1-128 of A-Z a-z 0-9 - . _ :, ending in a letter, digit or -)`);
  }
}

function parseHubs(text) {
  return text.split(/[\s,;]+/).filter(Boolean);
}

function parseJsonField(text, what) {
  if (!text.trim()) return undefined;
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || Array.isArray(v) || v === null) throw new Error();
    return v;
  } catch {
    throw new Error(`${what} must be a JSON object.`);
  }
}

function attestationFrom(type, keys, certText, ekText, group) {
  if (type === 'symmetricKey') return { type, symmetricKey: keys };
  if (type === 'tpm') return { type, tpm: { endorsementKey: ekText.trim() } };
  const cert = { certificate: certText.trim() };
  return { type: 'x509', x509: group ? { signingCertificates: { primary: cert } } : { clientCertificates: { primary: cert } } };
}

function createForm(kind, reload) {
  const err = errorBox();
  const result = h('div');
  const individual = kind.idField === 'registrationId';
  const idInput = h('input', { name: kind.idField, required: true, autocomplete: 'off' });
  const deviceId = h('input', { name: 'deviceId', autocomplete: 'off' });
  const type = h('select', { name: 'attestationType' },
    h('option', { value: 'symmetricKey' }, 'Symmetric key'),
    h('option', { value: 'x509' }, 'X.509 certificate'),
    individual ? h('option', { value: 'tpm' }, 'TPM') : null);
  const cert = h('textarea', { name: 'certificate', placeholder: '-----BEGIN CERTIFICATE-----' });
  const ek = h('textarea', { name: 'endorsementKey', placeholder: 'base64 TPM2B_PUBLIC' });
  const hubs = h('input', { name: 'iotHubs', placeholder: 'hub-1.example.net, …' });
  const policy = h('select', { name: 'allocationPolicy' },
    h('option', { value: '' }, 'server default'),
    ...['hashed', 'static', 'geoLatency', 'custom'].map((p) => h('option', { value: p }, p)));
  const twin = h('textarea', { name: 'initialTwin', placeholder: '{"tags": {"customer": "acme"}}' });
  const certField = field('Certificate (PEM)', cert);
  const ekField = field('TPM endorsement key', ek);
  const sync = () => {
    certField.hidden = type.value !== 'x509';
    ekField.hidden = type.value !== 'tpm';
  };
  type.addEventListener('change', sync);
  sync();

  async function submit(e) {
    e.preventDefault();
    err.textContent = '';
    result.replaceChildren();
    try {
      const id = idInput.value.trim();
      checkId(id);
      const keys = { primaryKey: randomKey(), secondaryKey: randomKey() };
      const doc = { [kind.idField]: id, attestation: attestationFrom(type.value, keys, cert.value, ek.value, !individual) };
      if (individual && deviceId.value.trim()) doc.deviceId = deviceId.value.trim();
      if (hubs.value.trim()) doc.iotHubs = parseHubs(hubs.value);
      if (policy.value) doc.allocationPolicy = policy.value;
      const t = parseJsonField(twin.value, 'Initial twin');
      if (t) doc.initialTwin = t;
      // A bulk "create" refuses an existing id instead of replacing it.
      const res = await api('POST', kind.collection, {
        body: { mode: 'create', [kind.collection]: [doc] },
      });
      const failed = (res.body.errors || [])[0];
      if (!res.body.isSuccessful || failed) {
        err.textContent = `${id} not created: ${failed ? bulkItemReason(failed) : 'refused'}.`;
        return;
      }
      result.append(createdPanel(kind, doc, type.value === 'symmetricKey' ? keys : null));
      e.target.reset();
      sync();
      reload();
    } catch (ex) { err.textContent = explainError(ex); }
  }

  return h('section', { 'aria-labelledby': 'create-h' },
    h('h2', { id: 'create-h' }, `Create ${kind.singular}`),
    h('form', { onsubmit: submit },
      field(kind.idLabel, idInput),
      individual ? field('Device id (optional)', deviceId) : null,
      field('Attestation', type), certField, ekField,
      field('Hubs (optional)', hubs),
      field('Allocation policy', policy),
      field('Initial twin (optional JSON)', twin),
      h('button', { type: 'submit' }, 'Create'), err),
    result);
}

// The text the smtp notifier sends the owner (plugins/smtp.md, with
// include_credentials), so the back office can check it or paste it.
function ownerEmail(id, deviceId, key) {
  return [
    `Subject: provd: enrollment.created ${id}`,
    '',
    'Event:           enrollment.created',
    `Registration id: ${id}`,
    `Device id:       ${deviceId || id}`,
    'Assigned hub:    ',
    `ID scope:        ${session.idScope || '(your ID scope)'}`,
    `Endpoint:        ${location.host}`,
    'Reason:          ',
    key ? `Primary key:     ${key}` : null,
  ].filter((l) => l !== null).join('\n');
}

function createdPanel(kind, doc, keys) {
  const id = doc[kind.idField];
  const rows = [h('dt', {}, kind.idLabel), h('dd', { dataset: { field: kind.idField } }, id, ' ', copyButton(`Copy ${kind.idLabel}`, id))];
  if (keys) {
    rows.push(
      h('dt', {}, 'Primary key'), h('dd', {}, h('span', { class: 'secret', dataset: { field: 'primaryKey' } }, keys.primaryKey), ' ', copyButton('Copy primary key', keys.primaryKey)),
      h('dt', {}, 'Secondary key'), h('dd', {}, h('span', { class: 'secret', dataset: { field: 'secondaryKey' } }, keys.secondaryKey), ' ', copyButton('Copy secondary key', keys.secondaryKey)));
  }
  const panel = h('div', { class: 'panel', role: 'status' },
    h('h2', {}, `Created ${id}`),
    h('p', { class: 'muted' }, keys ? 'The keys are shown once here; copy them now (the list never shows keys).' : ''),
    h('dl', { class: 'kv' }, rows));
  if (keys && kind.idField === 'registrationId') {
    const text = ownerEmail(id, doc.deviceId, keys.primaryKey);
    panel.append(h('h2', {}, 'Owner email (preview)'), h('pre', { dataset: { field: 'ownerEmail' } }, text),
      copyButton('Copy owner email', text));
  }
  return panel;
}

async function renderEdit(kind, id) {
  if (!may('EnrollmentRead')) {
    notPermitted(`${kind.singular} ${id}`, 'EnrollmentRead', kind.title.toLowerCase());
    return;
  }
  const err = errorBox();
  const path = `${kind.collection}/${encodeURIComponent(id)}`;
  show(h('h1', {}, `${kind.singular} ${id}`), err);
  let doc;
  try {
    doc = (await api('GET', path)).body;
  } catch (e) { err.textContent = explainError(e); return; }
  const ro = !session.canWrite;
  const status = h('select', { name: 'provisioningStatus', disabled: ro },
    h('option', { value: 'enabled' }, 'enabled'), h('option', { value: 'disabled' }, 'disabled'));
  status.value = doc.provisioningStatus || 'enabled';
  const hubs = h('input', { name: 'iotHubs', readonly: ro });
  hubs.value = (doc.iotHubs || []).join(', ');
  const policy = h('select', { name: 'allocationPolicy', disabled: ro },
    h('option', { value: '' }, 'server default'),
    ...['hashed', 'static', 'geoLatency', 'custom'].map((p) => h('option', { value: p }, p)));
  policy.value = doc.allocationPolicy || '';
  const twin = h('textarea', { name: 'initialTwin', readonly: ro });
  twin.value = doc.initialTwin ? JSON.stringify(doc.initialTwin, null, 2) : '';
  const etag = h('code', {}, doc.etag);
  const saved = h('p', { class: 'ok', role: 'status' });

  async function save(e) {
    e.preventDefault();
    err.textContent = '';
    saved.textContent = '';
    try {
      const next = { ...doc, provisioningStatus: status.value };
      const list = parseHubs(hubs.value);
      if (list.length) next.iotHubs = list; else delete next.iotHubs;
      if (policy.value) next.allocationPolicy = policy.value; else delete next.allocationPolicy;
      const t = parseJsonField(twin.value, 'Initial twin');
      if (t) next.initialTwin = t; else delete next.initialTwin;
      delete next.registrationState;
      const res = await api('PUT', path, { body: next, headers: { 'If-Match': doc.etag } });
      doc = res.body;
      etag.textContent = doc.etag;
      saved.textContent = 'Saved.';
    } catch (ex) { err.textContent = explainError(ex); }
  }
  const reg = doc.registrationState;
  page().append(
    h('dl', { class: 'kv' },
      h('dt', {}, 'Attestation'), h('dd', {}, attestationType(doc)),
      h('dt', {}, 'Created'), h('dd', {}, doc.createdDateTimeUtc || ''),
      h('dt', {}, 'Updated'), h('dd', {}, doc.lastUpdatedDateTimeUtc || ''),
      h('dt', {}, 'ETag'), h('dd', {}, etag),
      reg ? [h('dt', {}, 'Registration'), h('dd', {}, h('a', { href: `#/registrations/${encodeURIComponent(id)}` }, `${reg.status} ${reg.assignedHub || ''}`))] : null),
    h('form', { onsubmit: save },
      field('Status', status), field('Hubs', hubs), field('Allocation policy', policy),
      field('Initial twin (JSON)', twin),
      ro ? null : h('button', { type: 'submit' }, 'Save'), saved),
    h('p', {}, h('a', { href: `#/${kindName(kind)}` }, `Back to ${kind.title}`)));
}

// ---- bulk import ----

// RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell); cell = '';
      if (row.some((v) => v.trim())) rows.push(row);
      row = [];
    } else cell += c;
  }
  row.push(cell);
  if (row.some((v) => v.trim())) rows.push(row);
  return rows;
}

function csvCell(v) {
  const s = String(v ?? '');
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const IMPORT_COLUMNS = ['registrationId', 'primaryKey', 'secondaryKey', 'deviceId', 'iotHubs', 'tags'];

// Rows as {line, doc, keys} or {line, id, problem}.  The header row is
// optional; without one the columns are IMPORT_COLUMNS in that order.
// tags: "k=v;k=v" or a JSON object, into initialTwin.tags.
function importRows(text) {
  const rows = parseCsv(text);
  let cols = IMPORT_COLUMNS;
  let first = 0;
  if (rows.length && rows[0].some((c) => c.trim().toLowerCase() === 'registrationid')) {
    cols = rows[0].map((c) => c.trim());
    first = 1;
  }
  const col = (r, name) => {
    const i = cols.findIndex((c) => c.toLowerCase() === name.toLowerCase());
    return i >= 0 && r[i] !== undefined ? r[i].trim() : '';
  };
  return rows.slice(first).map((r, n) => {
    const line = n + first + 1;
    const id = col(r, 'registrationId');
    try {
      checkId(id);
      const keys = { primaryKey: col(r, 'primaryKey') || randomKey(), secondaryKey: col(r, 'secondaryKey') || randomKey() };
      const doc = { registrationId: id, attestation: { type: 'symmetricKey', symmetricKey: keys } };
      if (col(r, 'deviceId')) doc.deviceId = col(r, 'deviceId');
      if (col(r, 'iotHubs')) doc.iotHubs = parseHubs(col(r, 'iotHubs'));
      const tags = col(r, 'tags');
      if (tags) doc.initialTwin = { tags: parseTags(tags) };
      return { line, id, doc, keys };
    } catch (e) {
      return { line, id, problem: e.message };
    }
  });
}

function parseTags(text) {
  if (text.startsWith('{')) return parseJsonField(text, 'tags');
  const tags = {};
  for (const pair of text.split(';').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`tags: "${pair}" is not key=value`);
    tags[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return tags;
}

// A bulk result item: {registrationId, errorCode, errorStatus: text}.
function bulkItemReason(e) {
  if (e.errorCode === 409001) return 'already exists';
  return `${e.errorStatus || 'refused'} (${e.errorCode})`;
}

// One batch through the bulk operation; a batch the service refuses as a
// whole (one invalid item) is retried row by row to name the bad rows.
async function importBatch(rows) {
  try {
    const res = await api('POST', 'enrollments', { body: { mode: 'create', enrollments: rows.map((r) => r.doc) } });
    const errors = new Map((res.body.errors || []).map((e) => [String(e.registrationId).toLowerCase(), e]));
    for (const r of rows) {
      const e = errors.get(r.id.toLowerCase());
      r.problem = e ? bulkItemReason(e) : null;
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 400 || rows.length === 1) {
      for (const r of rows) r.problem = explainError(e);
      return;
    }
    for (const r of rows) await importBatch([r]);
  }
}

function renderImport() {
  const err = errorBox();
  const file = h('input', { name: 'csvFile', type: 'file', accept: '.csv,text/csv', required: true });
  const bar = h('progress', { value: 0, max: 1, 'aria-label': 'Import progress' });
  const counts = h('p', { role: 'status' });
  const tbody = h('tbody');
  const download = h('button', { type: 'button', disabled: true }, 'Download CSV of created ids and keys');
  let done = [];
  download.addEventListener('click', () => {
    const lines = ['registrationId,primaryKey,secondaryKey,deviceId'];
    for (const r of done) lines.push([r.id, r.keys.primaryKey, r.keys.secondaryKey, r.doc.deviceId || ''].map(csvCell).join(','));
    downloadText('provd-import-created.csv', 'text/csv', `${lines.join('\r\n')}\r\n`);
  });

  async function run(e) {
    e.preventDefault();
    err.textContent = '';
    tbody.replaceChildren();
    done = [];
    download.disabled = true;
    const f = file.files[0];
    if (!f) return;
    const rows = importRows(await f.text());
    const todo = rows.filter((r) => !r.problem);
    bar.max = Math.max(rows.length, 1);
    bar.value = rows.length - todo.length;
    for (let i = 0; i < todo.length; i += IMPORT_BATCH) {
      await importBatch(todo.slice(i, i + IMPORT_BATCH));
      bar.value = rows.length - todo.length + Math.min(i + IMPORT_BATCH, todo.length);
      counts.textContent = `${bar.value} of ${rows.length} rows`;
    }
    done = rows.filter((r) => !r.problem);
    for (const r of rows) {
      tbody.append(h('tr', { dataset: { line: r.line } }, h('td', {}, r.line), h('td', {}, r.id || '(none)'),
        h('td', {}, r.problem ? h('span', { class: 'error' }, `refused: ${r.problem}`) : h('span', { class: 'ok' }, 'created'))));
    }
    counts.textContent = `${done.length} created, ${rows.length - done.length} refused, of ${rows.length} rows`;
    download.disabled = !done.length;
  }

  show(h('h1', {}, 'Bulk import'),
    h('p', {}, 'A CSV of devices to enroll with symmetric keys, one per row: ',
      h('code', {}, IMPORT_COLUMNS.join(',')),
      ' (a header row naming the columns is optional; empty keys are generated; hubs separated by ";", tags as k=v;k=v).'),
    session.canWrite
      ? h('form', { onsubmit: run }, field('CSV file', file), h('button', { type: 'submit' }, 'Import'), err)
      : h('p', { class: 'muted' }, 'Read-only policy: importing is not offered.'),
    bar, counts, download,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Line'), h('th', {}, 'Registration id'), h('th', {}, 'Result'))), tbody)));
}

// ---- registrations ----

// A DeviceRegistrationState names its group under its attestation.
function groupOf(r) {
  const att = r.symmetricKey || r.x509 || r.tpm || {};
  return r.enrollmentGroupId || att.enrollmentGroupId || '';
}

function renderRegistrations() {
  if (!may('RegistrationStatusRead')) {
    notPermitted('Registrations', 'RegistrationStatusRead', 'registrations');
    return;
  }
  const err = errorBox();
  const hub = h('select', { name: 'hub' }, h('option', { value: '' }, 'any hub'));
  const group = h('input', { name: 'group', placeholder: 'group id' });
  const status = h('select', { name: 'status' }, ...['', 'assigned', 'failed', 'disabled', 'assigning']
    .map((s) => h('option', { value: s }, s || 'any status')));
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More');
  let next = null;

  async function load(append) {
    err.textContent = '';
    try {
      const q = new URLSearchParams();
      if (hub.value) q.set('hub', hub.value);
      if (group.value.trim()) q.set('group', group.value.trim());
      const headers = { 'x-ms-max-item-count': '100' };
      if (append && next) headers['x-ms-continuation'] = next;
      const res = await api('GET', `registrations${q.toString() ? `?${q}` : ''}`, { headers });
      next = res.headers.get('x-ms-continuation');
      const rows = (res.body || []).filter((r) => !status.value || r.status === status.value);
      // The stored state does not always name its group; a group filter does.
      const inGroup = group.value.trim();
      if (!append) tbody.replaceChildren();
      tbody.append(...rows.map((r) => h('tr', { dataset: { id: r.registrationId } },
        h('td', {}, h('a', { href: `#/registrations/${encodeURIComponent(r.registrationId)}` }, r.registrationId)),
        h('td', {}, r.deviceId || ''), h('td', { dataset: { field: 'assignedHub' } }, r.assignedHub || ''),
        h('td', {}, statusBadge(r.status)), h('td', {}, groupOf(r) || inGroup),
        h('td', {}, r.lastUpdatedDateTimeUtc || ''))));
      more.hidden = !next;
    } catch (e) { err.textContent = explainError(e); }
  }
  more.addEventListener('click', () => load(true));
  api('GET', 'hubs').then(({ body }) => {
    for (const hb of body || []) hub.append(h('option', { value: hb.name }, hb.name));
  }).catch((e) => { err.textContent = explainError(e); });

  show(h('h1', {}, 'Registrations'),
    h('p', { class: 'muted' }, 'Which device went to which hub.'),
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); load(false); } },
      h('label', {}, 'Hub', hub), h('label', {}, 'Group', group), h('label', {}, 'Status', status),
      h('button', { type: 'submit' }, 'Filter')),
    err,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ...['Registration id', 'Device id', 'Hub', 'Status', 'Group', 'Updated'].map((t) => h('th', {}, t)))),
      tbody)), more);
  load(false);
}

async function lastFailure(id) {
  // The newest registration.failed event of this device (a walk over at
  // most the kept tail of the journal).
  const events = await recentEvents();
  return events.find((e) => e.type === 'registration.failed' && e.subject === id) || null;
}

async function renderRegistration(id) {
  if (!may('RegistrationStatusRead')) {
    notPermitted(`Registration ${id}`, 'RegistrationStatusRead', 'registrations');
    return;
  }
  const err = errorBox();
  show(h('h1', {}, `Registration ${id}`), err);
  try {
    const { body: r } = await api('GET', `registrations/${encodeURIComponent(id)}`);
    const failed = mayReadEvents() ? await lastFailure(id) : null;
    const reason = failed && failed.body && failed.body.reason;
    const history = r.assignmentHistory || [];
    page().append(
      h('dl', { class: 'kv' },
        h('dt', {}, 'Status'), h('dd', {}, statusBadge(r.status)),
        h('dt', {}, 'Device id'), h('dd', {}, r.deviceId || ''),
        h('dt', {}, 'Hub'), h('dd', { dataset: { field: 'assignedHub' } }, r.assignedHub || '', r.assignedHubRemoved ? ' (hub removed)' : ''),
        h('dt', {}, 'Group'), h('dd', {}, groupOf(r) || '—'),
        h('dt', {}, 'Updated'), h('dd', {}, r.lastUpdatedDateTimeUtc || ''),
        r.errorCode ? [h('dt', {}, 'Error'), h('dd', {}, `${r.errorCode} ${r.errorMessage || ''}`)] : null,
        h('dt', {}, 'Last failure'), h('dd', { dataset: { field: 'lastFailure' } },
          reason ? `${reasonWords(reason)} (${reason}, ${failed.time})` :
            (r.errorCode ? reasonWords(ERROR_CODES[r.errorCode]) : 'none recorded'))),
      h('h2', {}, 'History'),
      history.length
        ? h('ul', {}, history.slice().reverse().map((x) => h('li', {},
          `${x.assignedHub || x.hub || ''} (device ${x.deviceId || '?'}) from ${x.since || '?'} until ${x.until || '?'}`,
          x.reason ? ` · ${x.reason}` : '', x.policy ? ` · policy ${x.policy}` : '')))
        : h('p', { class: 'muted' }, 'No earlier hubs.'),
      h('details', {}, h('summary', {}, 'Raw record'), h('pre', {}, JSON.stringify(r, null, 2))),
      h('p', {}, h('a', { href: '#/registrations' }, 'Back to Registrations')));
  } catch (e) { err.textContent = explainError(e); }
}

// ---- hubs ----

async function renderHubs() {
  if (!['EnrollmentRead', 'RegistrationStatusRead', 'ServiceConfig'].some((p) => may(p))) {
    notPermitted('Hubs', 'EnrollmentRead, RegistrationStatusRead and ServiceConfig', 'hubs');
    return;
  }
  const err = errorBox();
  const chart = h('div', { role: 'list', 'aria-label': 'Devices per hub' });
  show(h('h1', {}, 'Hubs'), h('p', { class: 'muted' }, 'Devices per linked hub; weight 0 is drained.'), err, chart);
  try {
    const { body } = await api('GET', 'hubs');
    const max = Math.max(1, ...body.map((x) => x.devices || 0));
    chart.replaceChildren(...body.map((x) => {
      const state = x.removed ? 'removed' : (x.weight === 0 ? 'drained' : (x.applyAllocationPolicy === false ? 'no new devices' : 'active'));
      const bar = h('div', { class: `bar ${x.removed ? 'removed' : (x.weight === 0 ? 'drained' : '')}` });
      bar.style.width = `${(100 * (x.devices || 0)) / max}%`;
      return h('div', { class: 'bar-row', role: 'listitem', dataset: { hub: x.name } },
        h('span', {}, h('strong', {}, x.name), h('br'), h('span', { class: 'muted' }, `${x.hostname} · weight ${x.weight} · ${state}${x.region ? ` · ${x.region}` : ''}`)),
        h('div', {}, bar),
        h('span', { dataset: { field: 'devices' } }, String(x.devices || 0)));
    }));
    if (!body.length) chart.append(h('p', { class: 'muted' }, 'No hubs linked.'));
  } catch (e) { err.textContent = explainError(e); }
}

// ---- events ----

// The newest EVENTS_KEPT events, oldest first (the journal only pages
// forward, so this walks it from the start in large pages).
async function recentEvents(after = 0) {
  let kept = [];
  let cursor = after;
  for (let i = 0; i < 100; i++) {
    const { body } = await api('GET', `events?after=${cursor}&limit=1000`);
    kept = kept.concat(body).slice(-EVENTS_KEPT);
    if (body.length < 1000) break;
    cursor = body[body.length - 1].seq;
  }
  return kept.reverse();
}

// The journal tells of enrollments and devices alike.
function mayReadEvents() {
  return may('EnrollmentRead', 'RegistrationStatusRead') || may('ServiceConfig');
}

let eventTimer = null;

function renderEvents() {
  if (!mayReadEvents()) {
    notPermitted('Events', 'EnrollmentRead and RegistrationStatusRead (or ServiceConfig)', 'events');
    return;
  }
  const err = errorBox();
  const type = h('select', { name: 'type' }, h('option', { value: '' }, 'all types'));
  const tbody = h('tbody');
  const live = h('span', { class: 'muted', role: 'status' });
  let events = [];
  const types = new Set();

  function draw() {
    for (const e of events) {
      if (!types.has(e.type)) {
        types.add(e.type);
        type.append(h('option', { value: e.type }, e.type));
      }
    }
    tbody.replaceChildren(...events.filter((e) => !type.value || e.type === type.value).map((e) => h('tr', { dataset: { type: e.type } },
      h('td', {}, String(e.seq)), h('td', {}, e.time), h('td', {}, e.type), h('td', {}, e.subject || ''),
      h('td', {}, e.body && e.body.reason ? `${e.body.reason}: ${reasonWords(e.body.reason)}` : (e.body && e.body.assignedHub) || ''))));
  }
  type.addEventListener('change', draw);

  async function poll() {
    try {
      const last = events.length ? events[0].seq : 0;
      const fresh = await recentEvents(last);
      if (fresh.length || !last) {
        events = fresh.concat(events).slice(0, EVENTS_KEPT);
        draw();
      }
      live.textContent = `live · checked ${new Date().toLocaleTimeString()}`;
      err.textContent = '';
    } catch (e) { err.textContent = explainError(e); }
    if (location.hash.startsWith('#/events')) eventTimer = setTimeout(poll, 2000);
  }
  show(h('h1', {}, 'Events'), h('form', { class: 'inline', onsubmit: (e) => e.preventDefault() }, h('label', {}, 'Type', type), live), err,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ...['Seq', 'Time', 'Type', 'Subject', 'Detail'].map((t) => h('th', {}, t)))), tbody)));
  poll();
}

// ---- explain ----

function renderExplain() {
  if (!may('EnrollmentRead', 'RegistrationStatusRead')) {
    notPermitted('Explain', 'EnrollmentRead and RegistrationStatusRead', 'dry runs');
    return;
  }
  const err = errorBox();
  const out = h('div');
  const id = h('input', { name: 'registrationId', required: true, autocomplete: 'off' });
  const auth = h('input', { name: 'authorization', autocomplete: 'off', placeholder: 'SharedAccessSignature sr=…' });
  const payload = h('textarea', { name: 'payload', placeholder: '{"model": "x"}' });
  const webhook = h('input', { name: 'callWebhook', type: 'checkbox' });

  async function run(e) {
    e.preventDefault();
    err.textContent = '';
    out.replaceChildren();
    try {
      const body = {};
      if (auth.value.trim()) body.authorization = auth.value.trim();
      if (payload.value.trim()) body.payload = JSON.parse(payload.value);
      if (webhook.checked) body.callWebhook = true;
      let r;
      try {
        r = (await api('POST', `explain/${encodeURIComponent(id.value.trim())}`, { body })).body;
      } catch (ex) {
        if (!(ex instanceof ApiError) || ex.status >= 500 || ex.status === 403) throw ex;
        r = { outcome: 'refused', message: ex.message, errorCode: ex.errorCode };
      }
      out.append(h('div', { class: 'panel', role: 'status' },
        h('h2', {}, `Outcome: ${r.outcome || '?'}`),
        r.reason ? h('p', { dataset: { field: 'reason' } }, `${reasonWords(r.reason)} (${r.reason})`) : null,
        r.detail ? h('p', {}, r.detail) : null,
        r.assignedHub ? h('p', {}, `Hub: ${r.assignedHub}`) : null,
        h('pre', {}, JSON.stringify(r, null, 2))));
    } catch (ex) { err.textContent = ex instanceof SyntaxError ? 'Payload is not JSON.' : explainError(ex); }
  }
  show(h('h1', {}, 'Explain'),
    h('p', { class: 'muted' }, 'A dry run of a registration: which enrollment, which hub and why. Nothing is written.'),
    h('form', { onsubmit: run },
      field('Registration id', id), field('Device SAS token (optional; needed for group members)', auth),
      field('Payload (optional JSON)', payload),
      h('label', {}, webhook, ' Call the custom allocation webhook'),
      h('button', { type: 'submit' }, 'Explain'), err),
    out);
}

// ---- routing ----

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return parts[0] ? parts : ['enrollments'];
}

function render() {
  clearTimeout(eventTimer);
  const signedIn = !!session.cs;
  document.getElementById('signin').hidden = signedIn;
  document.getElementById('page').hidden = !signedIn;
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn;
  if (!signedIn) {
    document.getElementById('who').textContent = '';
    return;
  }
  const [name, id] = route();
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (KINDS[name]) {
    if (id) renderEdit(KINDS[name], id); else renderList(KINDS[name]);
  } else if (name === 'import') renderImport();
  else if (name === 'registrations') {
    if (id) renderRegistration(id); else renderRegistrations();
  } else if (name === 'hubs') renderHubs();
  else if (name === 'events') renderEvents();
  else if (name === 'explain') renderExplain();
  else show(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/enrollments' }, 'Enrollments')));
}

async function start() {
  const form = document.getElementById('signin-form');
  const msg = document.getElementById('signin-error');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    const input = form.elements.connectionString;
    try {
      await signIn(input.value);
      input.value = '';
      render();
    } catch (ex) {
      msg.textContent = ex.message;
    }
  });
  document.getElementById('signout').addEventListener('click', signOut);
  // The current page's link starts that page afresh (no hashchange).
  document.getElementById('nav').addEventListener('click', (e) => {
    if (e.target.matches('a') && e.target.getAttribute('href') === location.hash) render();
  });
  window.addEventListener('hashchange', render);
  const saved = sessionStorage.getItem(STORE_KEY);
  if (saved) {
    try { await signIn(saved); } catch (ex) { msg.textContent = ex.message; sessionStorage.removeItem(STORE_KEY); }
  }
  render();
}

start();
