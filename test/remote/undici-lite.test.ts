// src/remote/undici-lite.ts reaches into undici's lib/ (package.json allows minor upgrades): its classes must
// stay undici's own, with request() attached, or an upgrade that moved them fails here rather than at start-up.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Agent, Pool } from "../../src/remote/undici-lite.ts";

test("undici-lite gives undici's own Agent and Pool, with request()", async () => {
  const undici = await import("undici");
  assert.equal(Agent, undici.Agent);
  assert.equal(Pool, undici.Pool);
  const agent = new Agent();
  assert.equal(typeof agent.request, "function");
  await agent.close();
});
