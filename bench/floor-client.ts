/**
 * The floor's client (target floor): plain node:http with a keep-alive agent, as the REST target's,
 * speaking bench/floor-server.ts's three routes: PUT /x/{key} with the payload as the whole body,
 * GET /x/{key} hashed as it arrives, DELETE /x/{key}.
 */
import http from "node:http";
import type { BenchClient } from "./clients.js";
import type { Payload } from "./payload.js";
import { expectOk, hashedGet, sendBody } from "./rest-client.js";

export function floorBenchClient(baseUrl: string): BenchClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const request = (method: string, key: string, headers: http.OutgoingHttpHeaders = {}) => http.request(new URL(`/x/${key}`, baseUrl), { method, agent, headers });
  let counter = 0;
  return {
    name: "floor (PUT /x/{key}, GET /x/{key})",
    upload(payload: Payload) {
      const req = request("PUT", `bench-${Date.now()}-${counter++}`, { "content-type": "application/octet-stream", "content-length": payload.bytes });
      return sendBody<{ id: string; bytes: number; sha256: string }>(req, "floor PUT", "", payload.blocks(), "");
    },
    download: (key) => hashedGet(request("GET", key), "floor GET"),
    remove: (key) => expectOk(request("DELETE", key), "floor DELETE"),
    close: () => agent.destroy(),
  };
}
