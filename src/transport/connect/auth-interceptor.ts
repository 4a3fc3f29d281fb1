import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { AuthenticationError, identifyCaller, type Authenticator } from "../../auth/authenticator.js";
import type { User } from "../../files/access-policy.js";
import { isFilesError } from "../../files/errors.js";
import { CALLER, CERTIFICATE_PRINCIPAL, PRINCIPAL } from "./principal.js";

/** Health checks answer load balancers and orchestrators, which carry no tokens. */
const OPEN_SERVICES = new Set(["grpc.health.v1.Health"]);

/**
 * Every other RPC needs `authorization: Bearer <token>` (gRPC metadata or HTTP header), or a
 * verified client certificate when certificates name principals; the
 * principal it names is put in the call's context values for the handlers and the log line.
 */
export function authInterceptor(authenticator: Authenticator): Interceptor {
  return (next) => async (req) => {
    if (OPEN_SERVICES.has(req.service.typeName)) return next(req);
    let user: User;
    try {
      user = await identifyCaller(authenticator, req.header.get("authorization") ?? undefined, req.contextValues.get(CERTIFICATE_PRINCIPAL), {
        method: req.requestMethod,
        path: `/${req.service.typeName}/${req.method.name}`,
      });
    } catch (err) {
      if (err instanceof AuthenticationError) throw new ConnectError(err.message, Code.Unauthenticated);
      // An authentication endpoint that does not answer: the caller may retry, it is not refused.
      if (isFilesError(err) && err.code === "unavailable") throw new ConnectError(err.message, Code.Unavailable);
      throw err;
    }
    req.contextValues.set(PRINCIPAL, user.principal);
    req.contextValues.set(CALLER, user);
    return next(req);
  };
}
