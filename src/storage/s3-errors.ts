import { UNTRUSTED_CERTIFICATE_CODES } from "../config/ca-file.js";
import { FilesError, unavailable } from "../files/errors.js";

/** The HTTP status of an S3 service error; undefined for network errors and timeouts. */
export function s3Status(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

function s3Name(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

/** The Node/OpenSSL error code of a failure (a dual-stack connect reports an AggregateError with the codes inside). */
export function networkErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: { code?: unknown }[] } | undefined;
  const code = e?.code ?? e?.errors?.find((x) => typeof x?.code === "string")?.code;
  return typeof code === "string" && code !== "" ? code : undefined;
}

/**
 * What went wrong in a TLS handshake with the endpoint, worded for an operator with the fix, or
 * undefined when `err` is not a TLS failure. `caBundle` is the configured CA file, if any.
 */
export function describeTlsFailure(err: unknown, caBundle?: string): string | undefined {
  const code = networkErrorCode(err);
  if (code === undefined) return undefined;
  if (UNTRUSTED_CERTIFICATE_CODES.has(code)) {
    const fix =
      caBundle === undefined
        ? "set config.ca_bundle to the PEM file of the CA that signs it"
        : `config.ca_bundle (${caBundle}) does not hold the CA that signs it (nor its chain)`;
    return `its certificate is not trusted (${code}); ${fix}`;
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return `its certificate is ${code === "CERT_HAS_EXPIRED" ? "expired" : "not valid yet"} (${code}); renew it, or check the clocks`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `its certificate does not name the host in endpoint_url (${code}); use a host name the certificate was issued for`;
  }
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG") {
    return `it does not speak TLS on that port (${code}); use http:// in endpoint_url, or the endpoint's TLS port`;
  }
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code === "EPROTO") return `the TLS handshake failed (${code})`;
  return undefined;
}

/** True for "no such key" in all its spellings (HEAD answers carry no error code, only 404). */
export function isS3NotFound(err: unknown): boolean {
  const name = s3Name(err);
  return name === "NoSuchKey" || name === "NotFound" || (s3Status(err) === 404 && name !== "NoSuchBucket");
}

/**
 * Maps an S3 failure to the core's error set, keeping keys, buckets and SDK text out of the
 * message (the SDK error stays as `cause` for logs). Everything but a missing object or a bad
 * range is `unavailable`: network, 5xx, throttling, but also 400 RequestTimeout (a slow body),
 * expired tokens and access denied after a credential rotation, which a retry may well cure.
 */
export function fromS3Error(err: unknown): FilesError {
  if (err instanceof FilesError) return err;
  if (isS3NotFound(err)) return new FilesError("not_found", "The stored object does not exist", undefined, { cause: err });
  const status = s3Status(err);
  if (status === 416 || s3Name(err) === "InvalidRange") {
    return new FilesError("out_of_range", "The requested range starts past the end of the stored object", "offset", { cause: err });
  }
  return unavailable("object storage", err);
}
