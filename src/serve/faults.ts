// Fault injection for `eod serve`: the rules a test switches on at run time (POST /_eod/faults) or the
// user gives with --fault, and the choice of which request a rule hits. The server applies them; this file
// only parses, validates and decides, so the rules are easy to test and to describe.
//
//   corrupt  the body has the right length but some bytes flipped (the client must verify digests)
//   stall    headers and part of the body, then nothing, with the socket left open (client timeouts)
//   drop     headers and part of the body, then the socket is destroyed (resets, short bodies)
//   status   an error answer with the given status instead of the file (503, 429, 404, …)

export type FaultMode = "corrupt" | "stall" | "drop" | "status";

/** One rule; the first rule that matches a request and still has a count left is applied to it. */
export interface FaultRule {
  mode: FaultMode;
  /** HTTP status for mode "status" (default 503). */
  status?: number;
  /** Only requests whose path (relative, e.g. "blobs/ab12…") contains this substring. */
  match?: string;
  /** How many requests to affect; omitted = all. */
  count?: number;
  /** Chance that a matching request is affected, 0..1 (default 1); a miss does not use up the count. */
  probability?: number;
}

const MODES: readonly FaultMode[] = ["corrupt", "stall", "drop", "status"];

/**
 * Validates rules from JSON: one rule object or an array of them. Throws TypeError/RangeError with a
 * message fit for a 400 answer.
 */
export function parseFaultRules(value: unknown): FaultRule[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((v, i) => {
    const at = Array.isArray(value) ? ` (rule ${i})` : "";
    if (typeof v !== "object" || v === null) throw new TypeError(`Cannot parse fault${at}: expected an object`);
    const r = v as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (!["mode", "status", "match", "count", "probability"].includes(k)) throw new TypeError(`Cannot parse fault${at}: unknown field ${JSON.stringify(k)}`);
    }
    if (!MODES.includes(r.mode as FaultMode)) throw new TypeError(`Cannot parse fault${at}: mode must be one of ${MODES.join(", ")}, got ${JSON.stringify(r.mode)}`);
    const rule: FaultRule = { mode: r.mode as FaultMode };
    if (r.status !== undefined) {
      if (!Number.isInteger(r.status) || (r.status as number) < 200 || (r.status as number) > 599) throw new RangeError(`Cannot parse fault${at}: status must be an HTTP status 200..599, got ${JSON.stringify(r.status)}`);
      rule.status = r.status as number;
    }
    if (r.match !== undefined) {
      if (typeof r.match !== "string") throw new TypeError(`Cannot parse fault${at}: match must be a string`);
      rule.match = r.match;
    }
    if (r.count !== undefined) {
      if (!Number.isInteger(r.count) || (r.count as number) < 0) throw new RangeError(`Cannot parse fault${at}: count must be a non-negative integer, got ${JSON.stringify(r.count)}`);
      rule.count = r.count as number;
    }
    if (r.probability !== undefined) {
      if (typeof r.probability !== "number" || !(r.probability >= 0 && r.probability <= 1)) throw new RangeError(`Cannot parse fault${at}: probability must be 0..1, got ${JSON.stringify(r.probability)}`);
      rule.probability = r.probability;
    }
    return rule;
  });
}

/**
 * Parses the command-line form `<mode>[,status=N][,match=S][,count=N][,probability=P]`, e.g.
 * `status,status=503,count=2` or `drop,match=blobs/,probability=0.1`; a JSON object is accepted too.
 */
export function parseFaultSpec(text: string): FaultRule[] {
  const t = text.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    let json: unknown;
    try { json = JSON.parse(t); } catch (err) { throw new TypeError(`Cannot parse fault ${JSON.stringify(text)}: ${(err as Error).message}`); }
    return parseFaultRules(json);
  }
  const [mode, ...pairs] = t.split(",");
  const obj: Record<string, unknown> = { mode };
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq < 0) throw new TypeError(`Cannot parse fault ${JSON.stringify(text)}: expected key=value, got ${JSON.stringify(p)}`);
    const k = p.slice(0, eq);
    const v = p.slice(eq + 1);
    obj[k] = k === "match" ? v : Number(v);
  }
  return parseFaultRules(obj);
}

/** The active rules with their remaining counts. Not shared between servers. */
export class FaultSet {
  #rules: Array<FaultRule & { remaining: number }> = [];
  readonly #random: () => number;

  constructor(rules: FaultRule[] = [], random: () => number = Math.random) {
    this.#random = random;
    this.set(rules);
  }

  /** Replaces every rule. */
  set(rules: FaultRule[]): void {
    this.#rules = rules.map((r) => ({ ...r, remaining: r.count ?? Infinity }));
  }

  clear(): void {
    this.#rules = [];
  }

  /** The rules as they stand, `count` being what is left (omitted = unlimited). */
  list(): FaultRule[] {
    return this.#rules.map(({ remaining, ...r }) => (remaining === Infinity ? r : { ...r, count: remaining }));
  }

  /**
   * The fault to apply to a request for `relPath`, using up one of its count. `hasBody` is false for HEAD:
   * only "status" can apply then (there is no body to corrupt, stall or cut).
   */
  pick(relPath: string, hasBody: boolean): FaultRule | undefined {
    for (const r of this.#rules) {
      if (r.remaining <= 0 || (!hasBody && r.mode !== "status")) continue;
      if (r.match !== undefined && !relPath.includes(r.match)) continue;
      if (r.probability !== undefined && this.#random() >= r.probability) continue;
      r.remaining--;
      const { remaining: _, ...rule } = r;
      return rule;
    }
    return undefined;
  }
}

/** Flips one byte in every KiB of a body slice that starts `bodyOffset` bytes into the body, in place. */
export function corruptSlice(buf: Uint8Array, bodyOffset: number): void {
  // Positions are relative to the body so that every KiB window of what the client gets has a flipped byte,
  // whatever the slicing: any chunk digest the client checks must fail.
  for (let i = (1024 - (bodyOffset % 1024)) % 1024; i < buf.length; i += 1024) buf[i] ^= 0xff;
}
