'use strict';
// Small helpers around the Azure IoT Node SDK's callback APIs, shared by
// the interop tests.
const assert = require('node:assert/strict');

// Promise of an SDK call that takes a (err, result, response) callback.
function call(fn) {
  return new Promise((resolve, reject) => {
    fn((err, result, response) => (err ? reject(err) : resolve({ result, response })));
  });
}

// A refusal as the SDK surfaces it: the HTTP status of the response and
// the DPS errorCode of its body (the device SDK puts the body into the
// message, the service SDK into responseBody).
function refusal(err) {
  const text = err.responseBody || String(err.message).replace(/^Error: /, '');
  let errorCode;
  try { errorCode = JSON.parse(text).errorCode; } catch { errorCode = undefined; }
  return { name: err.name, status: err.response && err.response.statusCode, errorCode };
}

// An assert.rejects predicate that accepts exactly this refusal.
function refusedWith(expected) {
  return (err) => {
    assert.deepEqual(refusal(err), expected, `refusal: ${err.stack}`);
    return true;
  };
}

module.exports = { call, refusal, refusedWith };
