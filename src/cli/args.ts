// Shared argument helpers: parse with node:util and turn its errors into USAGE errors with the command's help.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { EodError } from "../errors.ts";

export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new EodError("USAGE", `${(err as Error).message}\n\n${usage}`);
  }
}

/** Parses a size like 4096, 64K, 1M, 1MiB. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)\s*([kmg]i?b?)?$/i.exec(text.trim());
  if (!m) throw new EodError("USAGE", `Cannot parse ${what} ${JSON.stringify(text)}: expected a number with an optional K/M/G suffix`);
  const unit = (m[2] ?? "").toLowerCase()[0];
  return Number(m[1]) * (unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? 1024 ** 3 : 1);
}

export function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}
