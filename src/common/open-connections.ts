import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const tracked = new WeakMap<Server, OpenConnections>();

/**
 * The HTTP server's open connections, for shutdown. Fastify's close waits for every connection
 * Node does not count as idle, and Node stops enforcing request timeouts once the server is
 * closing: one client that sent half a request (or a body shorter than its Content-Length)
 * held every graceful shutdown until SHUTDOWN_TIMEOUT_MS, then exit 1. `dropUnanswerable`
 * closes those once they have sent nothing for a while, and only those: a complete request
 * still being answered (a POST /refresh waiting for its run, an SSE stream) is left to finish.
 */
export class OpenConnections {
  private readonly sockets = new Set<Socket>();
  /** bytesRead of each connection at the previous dropUnanswerable. */
  private readonly bytesSeen = new WeakMap<Socket, number>();

  private constructor(server: Server) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // Upgraded connections stay tracked: by the time the shutdown sweeps, the gateway has closed
    // its WebSockets, and a handshake that arrived after it went had nobody to answer or close
    // it (it held every such shutdown until SHUTDOWN_TIMEOUT_MS). No 'upgrade' listener here
    // either: with the gateway's gone, Node then serves a late handshake as a plain request (503).
  }

  static track(server: Server): OpenConnections {
    const connections = new OpenConnections(server);
    tracked.set(server, connections);
    return connections;
  }

  static of(server: Server): OpenConnections | undefined {
    return tracked.get(server);
  }

  /**
   * Closes every connection that holds no complete request waiting for its answer and received
   * nothing since the previous call: idle, or stuck in the middle of a request's head or body.
   * One whose bytes are still coming is left for the next call. Returns how many it closed.
   */
  dropUnanswerable(): number {
    let dropped = 0;
    for (const socket of this.sockets) {
      if (socket.destroyed) continue; // closed by an earlier look; it leaves the set on 'close'
      // The response Node is writing on this connection (it leaves once finished), read here
      // rather than noted per request: a map of each connection's last response kept it alive
      // into the next young-generation GC, ~200 KB copied per scavenge under load (measured).
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      const awaited = res != null && !res.writableFinished && res.req.complete;
      const seen = this.bytesSeen.get(socket);
      this.bytesSeen.set(socket, socket.bytesRead);
      if (awaited || seen !== socket.bytesRead) continue;
      socket.destroy();
      dropped++;
    }
    return dropped;
  }
}
