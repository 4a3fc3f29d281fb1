import { createContextKey } from "@connectrpc/connect";

/**
 * Set by a transport that streams an AddUploadPart's `data` field from the wire instead of
 * decoding the whole message first (the gRPC fast path): the request message then has no data,
 * and the part's bytes are read from here, as they arrive.
 */
export const STREAMED_PART_DATA = createContextKey<AsyncIterable<Uint8Array> | undefined>(undefined, { description: "an AddUploadPart's data, streamed" });
