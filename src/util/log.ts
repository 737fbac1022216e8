// Structured logs: one JSON object per line ({"time","level","msg",...fields}) to the daemon's log file or
// stderr. Errors are flattened to {code, message} so a log line never carries a stack the user must parse.
import { EodError } from "../errors.ts";

export type Level = "debug" | "info" | "warn" | "error";
export type Log = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

export function jsonLog(write: (line: string) => void, minLevel: Level = "info"): Log {
  const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  return (level, msg, fields = {}) => {
    if (order[level] < order[minLevel]) return;
    const out: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? errorFields(v) : v;
    write(`${JSON.stringify(out)}\n`);
  };
}

export function errorFields(err: Error): { code?: string; message: string } {
  return err instanceof EodError ? { code: err.code, message: err.message } : { message: err.message };
}
