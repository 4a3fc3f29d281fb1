import net from "node:net";

/**
 * A TCP proxy on loopback that forwards to `targetPort` and, when armed, destroys the next
 * connection once `afterBytes` have gone from the server to the client: a broken stream as a
 * network would break it, for resume tests. Later connections pass untouched.
 */
export interface CuttingProxy {
  port: number;
  /** Cut the connection that carries the next `afterBytes` server-to-client bytes. */
  arm(afterBytes: number): void;
  /** Connections cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

export async function startCuttingProxy(targetPort: number): Promise<CuttingProxy> {
  let armed: number | undefined;
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    let down = 0;
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end).on("data", (d) => upstream.write(d));
    upstream.on("error", end).on("close", end).on("data", (d: Buffer) => {
      down += d.length;
      if (armed !== undefined && down >= armed) {
        armed = undefined;
        cuts++;
        // resetAndDestroy sends RST, as a dropped connection looks to the client.
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    arm(afterBytes) {
      armed = afterBytes;
    },
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
