import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";

/** One log line per RPC, written when the call (including any response stream) ends. */
export function logInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const done = (err?: unknown) => {
      const code = err === undefined ? "ok" : Code[ConnectError.from(err).code];
      const fields = { rpc, code, ms: Math.round(performance.now() - started) };
      if (err === undefined) logger.info(fields, "rpc");
      else logger.info({ ...fields, error: ConnectError.from(err).rawMessage }, "rpc");
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done();
        return res;
      }
      return { ...res, message: logStreamEnd(res.message, done) };
    } catch (err) {
      done(err);
      throw err;
    }
  };
}

async function* logStreamEnd<T>(source: AsyncIterable<T>, done: (err?: unknown) => void): AsyncGenerator<T> {
  try {
    yield* source;
    done();
  } catch (err) {
    done(err);
    throw err;
  }
}
