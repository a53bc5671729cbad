// @ts-check
// Runs against a live `creditd serve` started by the Go test
// e2e.TestTypeScriptClient (go test ./e2e -run TestTypeScriptClient),
// which passes CREDITD_URL, CREDITD_ADMIN_KEY, CREDITD_TEST_PNG and
// CREDITD_TEST_WEBHOOKS (1 when the server has webhook endpoints).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { createCreditdClient } from "../src/index.js";

const baseUrl = need("CREDITD_URL");
const adminKey = need("CREDITD_ADMIN_KEY");
const pngPath = need("CREDITD_TEST_PNG");

/** @param {string} name */
function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run go test ./e2e -run TestTypeScriptClient`);
  return v;
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A webhook receiver on a free loopback port: it keeps every delivery
 * (headers and raw body) and answers 204.
 */
async function startReceiver() {
  /** @type {{ headers: Record<string, string>, body: string }[]} */
  const got = [];
  const srv = http.createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      /** @type {Record<string, string>} */
      const headers = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      got.push({ headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", () => r(undefined)));
  const addr = srv.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  return { url: `http://127.0.0.1:${addr.port}/hooks`, got, close: () => srv.close() };
}

test("an account runs a job to completion, and a signed webhook tells", async (t) => {
  const admin = createCreditdClient({ baseUrl, key: adminKey });
  const receiver = await startReceiver();
  t.after(() => receiver.close());

  // Webhook endpoints, where the server has them (the Go test says).
  /** @type {string | undefined} */
  let secret;
  if (process.env.CREDITD_TEST_WEBHOOKS === "1") {
    const ep = await admin.POST("/v1/webhook-endpoints", {
      body: { url: receiver.url, events: ["*"], description: "typescript client test" },
    });
    assert.ok(ep.data, JSON.stringify(ep.error));
    assert.match(ep.data.secret, /^whsec_/);
    secret = ep.data.secret;
  }

  const id = `ts-${randomUUID().slice(0, 8)}`;
  const acct = await admin.PUT("/v1/accounts/{id}", { params: { path: { id } }, body: { plan: "free" } });
  assert.equal(acct.response.status, 201, JSON.stringify(acct.error));
  assert.equal(acct.data?.id, id);

  const before = await admin.GET("/v1/accounts/{id}/balance", { params: { path: { id } } });
  assert.ok(before.data, JSON.stringify(before.error));

  // The user's own token does the rest, as a product's backend would.
  const tok = await admin.POST("/v1/accounts/{id}/tokens", { params: { path: { id } }, body: {} });
  assert.ok(tok.data, JSON.stringify(tok.error));
  const user = createCreditdClient({ baseUrl, key: tok.data.token });

  const png = await readFile(pngPath);
  const up = await user.POST("/v1/accounts/{id}/assets", {
    params: { path: { id } },
    headers: { "Content-Type": "image/png" },
    body: /** @type {any} */ (png),
    bodySerializer: (b) => b,
  });
  assert.equal(up.response.status, 201, JSON.stringify(up.error));
  assert.ok(up.data);
  assert.equal(up.data.kind, "upload");

  const created = await user.POST("/v1/jobs", {
    body: { action: "crop", params: { source: up.data.id, x: 0, y: 0, width: 4, height: 4 } },
  });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  assert.ok(created.data);
  const jobID = created.data.id;

  /** @type {import("../src/index.js").Schema<"Job"> | undefined} */
  let job;
  for (let i = 0; i < 300; i++) {
    const r = await user.GET("/v1/jobs/{id}", { params: { path: { id: jobID } } });
    assert.ok(r.data, JSON.stringify(r.error));
    job = r.data;
    if (!["queued", "running"].includes(job.status)) break;
    await sleep(100);
  }
  assert.ok(job);
  assert.equal(job.status, "succeeded", JSON.stringify(job));
  assert.equal(job.charged, job.cost);
  assert.equal(job.outputs.length, 1);

  const out = await user.GET("/v1/assets/{id}", { params: { path: { id: job.outputs[0] } }, parseAs: "arrayBuffer" });
  assert.equal(out.response.status, 200);
  assert.equal(out.response.headers.get("content-type"), "image/png");

  const after = await user.GET("/v1/accounts/{id}/balance", { params: { path: { id } } });
  assert.ok(after.data && before.data);
  assert.equal(after.data.available, before.data.available - job.charged);

  await t.test("the job.succeeded webhook verifies with standardwebhooks", async (st) => {
    if (secret === undefined) {
      st.skip("this server has no webhook endpoints (GET /v1/webhook-endpoints is 404)");
      return;
    }
    const wh = new Webhook(secret);
    /** @type {any} */
    let payload;
    for (let i = 0; i < 300 && !payload; i++) {
      for (const d of receiver.got) {
        const p = /** @type {any} */ (wh.verify(d.body, d.headers));
        if (p.type === "job.succeeded" && p.data?.job?.id === jobID) {
          payload = p;
          assert.equal(p.data.account_id, id);
          assert.ok(d.headers["webhook-id"]?.startsWith("evt_"));
        }
      }
      if (!payload) await sleep(100);
    }
    assert.ok(payload, `no job.succeeded delivery among ${receiver.got.length}`);
    // A tampered body does not verify.
    const d = receiver.got[0];
    assert.throws(() => wh.verify(d.body + " ", d.headers));
  });
});
