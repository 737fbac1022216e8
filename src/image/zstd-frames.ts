// The seek index of a multi-frame zstd layer: spans of whole frames. Work in progress.
import { EodError } from "../errors.ts";
import type { LayerIndex, LayerIndexer } from "./layer-indexer.ts";

export class ZstdIndexer implements LayerIndexer {
  readonly spanSize: number;
  constructor(spanSize: number) {
    this.spanSize = spanSize;
  }
  push(_compressed: Uint8Array): Uint8Array[] {
    throw new EodError("SOURCE_UNSUPPORTED", "zstd layers cannot be indexed yet");
  }
  finish(): LayerIndex {
    throw new EodError("SOURCE_UNSUPPORTED", "zstd layers cannot be indexed yet");
  }
}
