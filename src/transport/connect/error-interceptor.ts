import type { Interceptor } from "@connectrpc/connect";
import { toConnectError } from "./errors.js";

/** Maps core errors to Connect codes at one place, for unary calls and for errors raised mid-stream. */
export function errorInterceptor(onUnexpected: (err: unknown) => void): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: mapStreamErrors(res.message, onUnexpected) };
    } catch (err) {
      throw toConnectError(err, onUnexpected);
    }
  };
}

async function* mapStreamErrors<T>(source: AsyncIterable<T>, onUnexpected: (err: unknown) => void): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw toConnectError(err, onUnexpected);
  }
}
