// What `eod mount` and `eod pull` were given, made unambiguous before it goes to the daemon (whose working
// directory is not the user's): an http(s) URL as is, an existing path made absolute, a registry reference as
// `docker://<reference>`. A reference must name its registry (`host[:port]/repo[:tag]`), or be written
// `docker://repo:tag`, so that a mistyped directory never becomes a request to Docker Hub.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { REGISTRY_SCHEME } from "../remote/registry/image-remote.ts";
import { formatReference, parseReference } from "../remote/registry/reference.ts";

export function imageSource(arg: string): string {
  if (/^https?:\/\//i.test(arg)) return arg;
  if (arg.startsWith(REGISTRY_SCHEME)) return REGISTRY_SCHEME + formatReference(parseReference(arg.slice(REGISTRY_SCHEME.length)));
  if (fs.existsSync(arg)) return path.resolve(arg);
  const first = arg.split("/")[0];
  if (arg.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("["))) {
    return REGISTRY_SCHEME + formatReference(parseReference(arg)); // written in full, as the daemon records it
  }
  throw new EodError("USAGE", `${JSON.stringify(arg)} is not an image directory, an http(s):// URL or a registry reference (host[:port]/repo[:tag], or docker://repo:tag for Docker Hub)`);
}
