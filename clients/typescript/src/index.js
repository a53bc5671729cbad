// A typed client for creditd's HTTP API. The types (schema.d.ts) are
// generated from api/openapi.yaml by openapi-typescript (`npm run
// generate`); the runtime is openapi-fetch. Every path, parameter, body
// and answer is checked by TypeScript, also from plain JavaScript with
// `// @ts-check`.
//
//   import { createCreditdClient } from "@creditd/client";
//   const creditd = createCreditdClient({ baseUrl: "http://127.0.0.1:8080", key: process.env.CREDITD_ADMIN_KEY });
//   const { data, error } = await creditd.GET("/v1/accounts/{id}/balance", { params: { path: { id: "alice" } } });
import createClient from "openapi-fetch";

/** @typedef {import("./schema.js").paths} paths */
/** @typedef {import("./schema.js").components} components */
/** @typedef {import("./schema.js").webhooks} webhooks */
/** @typedef {import("openapi-fetch").Client<paths>} CreditdClient */
/** @template {keyof components["schemas"]} K @typedef {components["schemas"][K]} Schema */

/**
 * A client with a key: the admin key, the worker key or a user token.
 * @param {{ baseUrl: string, key: string, fetch?: typeof globalThis.fetch }} options
 * @returns {CreditdClient}
 */
export function createCreditdClient({ baseUrl, key, fetch }) {
  return createClient({
    baseUrl,
    headers: { Authorization: `Bearer ${key}` },
    ...(fetch ? { fetch } : {}),
  });
}
