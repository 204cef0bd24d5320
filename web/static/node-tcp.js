// Node-only transport for curvebus.js: the ZMTP stream straight over TCP to
// the broker, with no relay in between.  For tests and benchmarks in Node;
// the browser never imports this file (it has no TCP).
//
//   import { tcpTransport } from './node-tcp.js';
//   new Client({ transport: tcpTransport('tcp://127.0.0.1:7690'), ... });
//
// tcpTransport(endpoint) -> transport, as connection.js defines it:
// (onBytes, onClose, onOpen) -> { send, close, buffered }.  One call opens one
// TCP connection (the Client calls it again for every reconnect).  Nagle is
// off, as libzmq sets TCP_NODELAY.  endpoint: 'tcp://HOST:PORT' (an IPv6 host
// in brackets).

import net from 'node:net';

export function parseTcpEndpoint(endpoint) {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(String(endpoint));
  if (!m) throw new TypeError(`not a tcp://HOST:PORT endpoint: ${endpoint}`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export function tcpTransport(endpoint) {
  const { host, port } = parseTcpEndpoint(endpoint);
  return (onBytes, onClose, onOpen) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    let opened = false;
    let closed = false;
    let lastError = null;
    socket.on('connect', () => {
      opened = true;
      if (!closed && onOpen) onOpen();
    });
    socket.on('data', (chunk) => {
      if (!closed) onBytes(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    });
    socket.on('error', (e) => {
      lastError = e;
    });
    socket.on('close', () => {
      if (closed) return;
      closed = true;
      onClose({ code: 0, reason: lastError ? lastError.message : 'connection closed', opened });
    });
    return {
      send(bytes) {
        if (!closed) socket.write(bytes);
      },
      close() {
        // Graceful: what was written (a BYE) still leaves, then FIN.
        if (closed) return;
        closed = true;
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      },
      buffered() {
        return socket.writableLength;
      },
    };
  };
}
