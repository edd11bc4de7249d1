import { connect } from 'node:net';

/** Sends raw bytes on a new connection; resolves with all the server sent once it closed the connection. */
export function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    socket.on('data', (chunk) => (raw += chunk.toString('latin1')));
    socket.on('close', () => resolve(raw));
    socket.on('error', reject);
    socket.write(bytes);
  });
}

/** The status code of a raw HTTP/1.1 response (0 when there is none). */
export const statusOf = (raw: string) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1] ?? 0);

/** The JSON body of a raw HTTP/1.1 response. */
export const bodyOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
