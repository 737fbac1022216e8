// The referrers API call itself (`GET /v2/<name>/referrers/<digest>[?artifactType=…]`, distribution spec
// 1.1), page by page through `Link: <…>; rel="next"`. A registry without the API answers 404 (the spec
// forbids a 404 from one that has it); 405/501, or a 200 that is not an OCI image index, mean the same here.
// What to do then (the referrers tag) is referrers.ts's business.
import { EodError } from "../../errors.ts";
import { discard, one } from "../answer.ts";
import { checkDigest } from "./digest.ts";
import { MAX_MANIFEST_BYTES, MEDIA_TYPES } from "./manifest.ts";
import { nextLink, parseReferrersList, type Referrer } from "./referrers.ts";
import { name, readAll, type CallOptions, type Repo, type Session } from "./session.ts";

/** Pages followed at most (a registry's Link loop must not hold us forever). */
const MAX_PAGES = 64;

/** The referrers API's list of `subject`'s referrers; undefined when the registry has no referrers API. */
export async function fetchReferrers(s: Session, repo: Repo, subject: string, opts: CallOptions & { artifactType?: string } = {}): Promise<Referrer[] | undefined> {
  checkDigest(subject);
  let path: string | undefined = `/v2/${repo.repository}/referrers/${subject}${opts.artifactType ? `?artifactType=${encodeURIComponent(opts.artifactType)}` : ""}`;
  const out: Referrer[] = [];
  for (let page = 0; path !== undefined; page++) {
    if (page === MAX_PAGES) throw new EodError("IMAGE_INVALID", `referrers of ${subject} in ${name(repo)}: more than ${MAX_PAGES} pages`);
    const what = `GET referrers of ${name(repo)}@${subject}${page ? ` (page ${page + 1})` : ""}`;
    const at: string = path;
    const answer = await s.retry(opts.signal, async () => {
      const ex = await s.exchange(repo, "pull", "GET", at, { headers: { accept: MEDIA_TYPES.ociIndex }, signal: opts.signal, deadlineMs: s.timeoutMs });
      if (ex.status === 404 || ex.status === 405 || ex.status === 501) {
        discard(ex.body);
        return undefined;
      }
      if (ex.status !== 200) throw await s.statusError(ex, what, repo);
      const bytes = await readAll(ex, what, MAX_MANIFEST_BYTES, "referrers list");
      s.stats.bytes += bytes.length;
      return { bytes, contentType: one(ex.headers["content-type"]), link: one(ex.headers.link) };
    });
    const list = answer && parseReferrersList(answer.bytes, answer.contentType, what);
    if (!list) {
      if (page === 0) return undefined;
      throw new EodError("IMAGE_INVALID", `${what}: not an OCI image index`);
    }
    out.push(...list);
    path = nextLink(answer.link);
  }
  return out;
}
