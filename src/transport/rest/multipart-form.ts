import type { Readable } from "node:stream";
import busboy from "busboy";
import { RestError } from "./errors.js";
import { mediaType, type HttpRequest } from "./http-io.js";

/** A form's text fields; each name may appear once. */
export class FormFields {
  private readonly values = new Map<string, string[]>();

  add(name: string, value: string): void {
    const list = this.values.get(name) ?? [];
    list.push(value);
    this.values.set(name, list);
  }

  /** The field's one value; a field sent twice is ambiguous, and refused rather than guessed at. */
  get(name: string): string | undefined {
    const list = this.values.get(name);
    if (list && list.length > 1) throw new RestError(400, `The form field '${name}' was given more than once`, name);
    return list?.[0];
  }
}

export interface FormFile {
  filename: string;
  mimeType: string;
  stream: Readable;
}

export interface MultipartOptions<T> {
  /** The one field that carries the file ("file", or "data" for Upload parts). */
  fileField: string;
  /**
   * Called as soon as the file part starts, with the fields sent before it and a promise of all of
   * them. It must consume `file.stream`; the rest of the form is parsed only after the file.
   */
  onFile: (file: FormFile, fieldsSoFar: FormFields, allFields: Promise<FormFields>) => Promise<T>;
}

const LIMITS = {
  fieldSize: 64 * 1024,
  fields: 64,
  parts: 72,
  headerPairs: 32,
};
// Parser and file-stream buffers: large enough that a fast client is not throttled by
// 16 KiB reads, small enough that a slow store holds at most this much per upload.
const STREAM_HWM = 1024 * 1024;

/**
 * Parses a multipart/form-data body as a stream: the file part goes straight to `onFile` and is
 * never buffered whole. Every way a form can be wrong (not multipart, malformed, truncated, a
 * missing or repeated file, too many or too long fields) rejects with a RestError naming it,
 * and only after the file's consumer has settled, so its clean-up is done before anyone answers.
 */
export async function parseMultipart<T>(req: HttpRequest, options: MultipartOptions<T>): Promise<{ fields: FormFields; file: T | undefined }> {
  const type = mediaType(req.headers["content-type"]);
  if (type !== "multipart/form-data") {
    throw new RestError(415, `Expected a multipart/form-data body, got ${type ? `'${type}'` : "none"}`);
  }
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers as busboy.BusboyConfig["headers"],
      limits: LIMITS,
      defParamCharset: "utf8",
      highWaterMark: STREAM_HWM,
      fileHwm: STREAM_HWM,
    });
  } catch (err) {
    throw new RestError(400, `Malformed multipart/form-data: ${(err as Error).message}`);
  }

  const fields = new FormFields();
  let fileStream: Readable | undefined;
  let fileResult: Promise<T> | undefined;
  let settleForm!: { resolve: (f: FormFields) => void; reject: (e: Error) => void };
  const formDone = new Promise<FormFields>((resolve, reject) => (settleForm = { resolve, reject }));
  formDone.catch(() => {}); // observed through `allFields` and below; never unhandled

  let firstFailure: Error | undefined;
  const fail = (err: Error) => {
    firstFailure ??= err;
    req.unpipe(parser);
    fileStream?.destroy(err);
    settleForm.reject(err);
  };

  // The parser may still hold buffered input after a failure: whatever it emits then is ignored,
  // or a file part starting now would wait forever for bytes that will never be piped in.
  parser.on("field", (name, value, info) => {
    if (firstFailure) return;
    if (info.valueTruncated) return fail(new RestError(400, `The form field '${name}' is longer than ${LIMITS.fieldSize} bytes`, name));
    if (name === options.fileField) {
      return fail(new RestError(400, `'${name}' must be sent as a file part (with a filename), not as a text field`, name));
    }
    fields.add(name, value);
  });
  parser.on("file", (name, stream, info) => {
    if (firstFailure) return void stream.resume();
    if (name !== options.fileField || fileResult) {
      stream.resume();
      const why = name === options.fileField ? "was given more than once" : `is not expected; send the file as '${options.fileField}'`;
      return fail(new RestError(400, `The file part '${name}' ${why}`, name));
    }
    fileStream = stream;
    // fail() destroys the stream with the cause; that error is reported once, from here, never
    // as an unhandled 'error' event (a consumer that refused the upload may never read the stream).
    stream.on("error", () => {});
    try {
      fileResult = options.onFile({ filename: info.filename ?? "", mimeType: info.mimeType, stream }, fields, formDone);
    } catch (err) {
      fileResult = Promise.reject(err as Error); // e.g. a field sent twice before the file
    }
    // A consumer that fails (too large, storage down) ends the form at once: nothing more is read.
    fileResult.catch((err: Error) => fail(err));
  });
  parser.on("fieldsLimit", () => fail(new RestError(400, `The form has more than ${LIMITS.fields} fields`)));
  parser.on("partsLimit", () => fail(new RestError(400, `The form has more than ${LIMITS.parts} parts`)));
  parser.on("error", (err: Error) => fail(new RestError(400, `Malformed multipart/form-data: ${err.message}`)));
  parser.on("close", () => settleForm.resolve(fields));
  req.on("error", (err: Error) => fail(err));
  req.on("aborted", () => fail(new RestError(499, "The client closed the connection mid-upload")));
  req.pipe(parser);

  await formDone.catch(() => {});
  // Once the form has settled, any file part has started: wait for its consumer to finish or clean up.
  const file = fileResult ? await Promise.allSettled([fileResult]).then(([r]) => r) : undefined;
  // The first failure is the cause; later ones (a destroyed stream, a refused describe) are its echoes.
  if (firstFailure) throw firstFailure;
  if (file?.status === "rejected") throw file.reason;
  return { fields, file: file?.value };
}
