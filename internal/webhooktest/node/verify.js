// Verifies webhook messages with the Standard Webhooks reference library.
// stdin: a JSON array of {"secret", "headers", "body", "now"} (now: unix
// seconds the verifier takes as the current time, so that messages signed
// at a test clock's time verify). stdout: a JSON array of {"ok", "error",
// "payload"}, one per message.
"use strict";
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const realNow = Date.now;
const out = input.map((m) => {
  Date.now = () => m.now * 1000;
  try {
    const payload = new Webhook(m.secret).verify(m.body, m.headers);
    return { ok: true, payload };
  } catch (e) {
    return { ok: false, error: String((e && e.message) || e) };
  } finally {
    Date.now = realNow;
  }
});
process.stdout.write(JSON.stringify(out));
