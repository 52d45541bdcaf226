'use strict';
// A private swtpm for one test: fresh state dir, command port P and
// control port P+1 on 127.0.0.1 (free when picked), stopped by PID.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function listenOn(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

async function freePortPair() {
  for (let i = 0; i < 50; i++) {
    const a = await listenOn(0);
    const port = a.address().port;
    const b = await listenOn(port + 1);
    a.close();
    if (b) { b.close(); return port; }
  }
  throw new Error('no two consecutive free ports');
}

function answers(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function startSwtpm() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'provd-swtpm-'));
  const port = await freePortPair();
  const child = spawn('swtpm', ['socket', '--tpm2',
    '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
    '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
    '--flags', 'not-need-init,startup-clear', '--tpmstate', `dir=${dir}`],
  { stdio: 'ignore' });
  for (let i = 0; i < 100 && !(await answers(port)); i++) {
    if (child.exitCode !== null) throw new Error(`swtpm exited ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    async stop() {
      if (child.exitCode === null) {
        await new Promise((resolve) => { child.on('exit', resolve); child.kill('SIGTERM'); });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startSwtpm };
