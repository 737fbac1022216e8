// contrib/eod-daemon.service is checked by systemd itself: `systemd-analyze verify` loads it in a scratch root
// (the host's unit files, a stand-in /usr/local/bin/eod) and reports unknown keys, bad values, missing
// binaries and broken dependencies. Our machines do not boot systemd, so this is as far as it can be run here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { REPO, haveTool } from "../helpers/cli.ts";
import { tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const UNIT = path.join(REPO, "contrib/eod-daemon.service");
const SYSTEM_UNITS = "/usr/lib/systemd/system";

test("contrib/eod-daemon.service passes systemd-analyze verify", { skip: unavailable(haveTool("systemd-analyze") && fs.existsSync(SYSTEM_UNITS) ? false : "systemd-analyze not installed (apt-get install systemd)") }, () => {
  const root = tempDir("eod-unit-");
  fs.cpSync(SYSTEM_UNITS, path.join(root, SYSTEM_UNITS), { recursive: true, verbatimSymlinks: true });
  fs.mkdirSync(path.join(root, "usr/local/bin"), { recursive: true });
  fs.writeFileSync(path.join(root, "usr/local/bin/eod"), "#!/bin/sh\n", { mode: 0o755 });
  fs.mkdirSync(path.join(root, "bin"), { recursive: true });
  fs.copyFileSync("/bin/kill", path.join(root, "bin/kill"));
  fs.mkdirSync(path.join(root, "etc/systemd/system"), { recursive: true });
  fs.copyFileSync(UNIT, path.join(root, "etc/systemd/system/eod-daemon.service"));
  const r = spawnSync("systemd-analyze", ["verify", `--root=${root}`, "--man=no", "/etc/systemd/system/eod-daemon.service"], { encoding: "utf8" });
  assert.equal(r.status, 0, `systemd-analyze verify failed:\n${r.stderr}${r.stdout}`);
  assert.equal(r.stderr.trim(), "", `systemd-analyze verify warns:\n${r.stderr}`);
});
