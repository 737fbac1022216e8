// undici's Agent and Pool without the rest of undici: its index.js also loads fetch, WebSocket, caches, mocks
// and more, ~70 ms of every remote command's start-up (~35 ms this way). The same classes as
// `import { Agent, Pool } from "undici"`, with request() and the other API methods attached as index.js does.
import { createRequire } from "node:module";
import type { Agent as UndiciAgent, Pool as UndiciPool } from "undici";

const require = createRequire(import.meta.url);
Object.assign(require("undici/lib/dispatcher/dispatcher.js").prototype, require("undici/lib/api/index.js"));

export const Agent: typeof UndiciAgent = require("undici/lib/dispatcher/agent.js");
export type Agent = UndiciAgent;
export const Pool: typeof UndiciPool = require("undici/lib/dispatcher/pool.js");
export type Pool = UndiciPool;
