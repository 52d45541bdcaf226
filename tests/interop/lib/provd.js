'use strict';
// Starts and stops a real provd for a test: temp data dir, temp config,
// 127.0.0.1 on a free port (port 0; the banner tells which one).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const https = require('node:https');

const SOURCE_DIR = process.env.PROVD_SOURCE_DIR || path.resolve(__dirname, '../../..');
const BUILD_DIR = process.env.PROVD_BUILD_DIR || path.join(SOURCE_DIR, 'build');
const PROVD_BIN = process.env.PROVD_BIN || path.join(BUILD_DIR, 'provd');
const PLUGIN_DIR = process.env.PROVD_PLUGIN_DIR || path.join(BUILD_DIR, 'plugins');

const ID_SCOPE = '0ne00000001';

const DEFAULT_HUBS = [
  '{ name: hub-1, hostname: hub-1.example.net, weight: 1 }',
  '{ name: hub-2, hostname: hub-2.example.net, weight: 1 }',
];

// extraPlugins: more `plugins:` lines (YAML flow items), e.g. the
// custom-webhook allocation plugin; mqtt: also listen for MQTT; hubs: the
// `hubs:` items (YAML flow maps) instead of hub-1 and hub-2;
// extraConfig: more top-level YAML lines (service_policies: ...).
function writeConfig(dir, { extraPlugins = [], mqtt = false, hubs = DEFAULT_HUBS, extraConfig = [] } = {}) {
  const cfg = [
    `id_scope: ${ID_SCOPE}`,
    mqtt ? 'listen: { https: "127.0.0.1:0", mqtt: "127.0.0.1:0" }'
      : 'listen: { https: "127.0.0.1:0" }',
    `data_dir: ${path.join(dir, 'data')}`,
    `plugin_path: [ ${PLUGIN_DIR} ]`,
    'workers: 2',
    'hubs:',
    ...hubs.map((h) => `  - ${h}`),
    ...extraConfig,
    'plugins:',
    '  - { kind: attestation, name: symmetric-key }',
    '  - { kind: attestation, name: x509 }',
    '  - { kind: attestation, name: tpm }',
    '  - { kind: allocation, name: hashed }',
    ...extraPlugins.map((p) => `  - ${p}`),
    '',
  ].join('\n');
  const file = path.join(dir, 'provd.yaml');
  fs.writeFileSync(file, cfg);
  return file;
}

// options.extraPlugins, mqtt, hubs, extraConfig: see writeConfig;
// options.dir: the directory to work in (removed on stop), default a new
// temporary one.
async function startProvd(options = {}) {
  const dir = options.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'provd-interop-'));
  const config = writeConfig(dir, options);
  const child = spawn(PROVD_BIN, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provd did not start:\n${stdout}\n${stderr}`)), 15000);
    const check = () => {
      const m = /device endpoint:\s+https:\/\/localhost:(\d+)/.exec(stdout);
      if (m && (!options.mqtt || /MQTT endpoint/.test(stdout))) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', check);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`provd exited ${code}:\n${stderr}`)); });
  });
  const mqttMatch = /MQTT endpoint:\s+mqtts:\/\/localhost:(\d+)/.exec(stdout);
  const mqttPort = mqttMatch ? Number(mqttMatch[1]) : null;
  const dataDir = path.join(dir, 'data');
  const ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.pem'));
  const connectionString = fs.readFileSync(path.join(dataDir, 'service-connection-string'), 'utf8').trim();
  // The SDKs take a host name without a port: point Node's global HTTPS
  // agent at provd instead (the SDK builds https://HOST/... with no port).
  https.globalAgent.defaultPort = port;
  https.globalAgent.options.ca = ca;
  return {
    dir, port, mqttPort, ca, connectionString, idScope: ID_SCOPE,
    logs: () => stderr,
    // provd logs before it answers, but its stderr reaches this process
    // through a pipe that may be read after the answer's socket: the logs
    // once they match re, or as they are after ms.
    async waitForLog(re, ms = 2000) {
      for (let waited = 0; !re.test(stderr) && waited < ms; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
      }
      return stderr;
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const code = await new Promise((resolve) => {
        child.on('exit', (c) => resolve(c));
        child.kill('SIGTERM');
      });
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

module.exports = { startProvd, ID_SCOPE, BUILD_DIR };
