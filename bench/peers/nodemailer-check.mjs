// An independent client for a cross-check of the load generator: nodemailer's pooled SMTP
// transport sends the same messages to the same server, and its messages per second are set
// beside the load generator's.
// Usage: node nodemailer-check.mjs PORT COUNT CORPUS_DIR CONNECTIONS PER_CONNECTION plain|starttls
import nodemailer from "nodemailer";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [port, count, corpus, connections, perConnection, mode] = process.argv.slice(2);
const messages = readdirSync(corpus).filter((f) => f.endsWith(".eml")).map((f) => readFileSync(join(corpus, f)));
const transport = nodemailer.createTransport({
  pool: true, host: "127.0.0.1", port: Number(port), secure: false,
  ignoreTLS: mode !== "starttls", requireTLS: mode === "starttls", tls: { rejectUnauthorized: false },
  maxConnections: Number(connections), maxMessages: Number(perConnection), name: "mail.sender.example",
});

const total = Number(count);
let failed = 0;
const started = process.hrtime.bigint();
await Promise.all(Array.from({ length: total }, (_, i) =>
  transport.sendMail({
    envelope: { from: "bounce@sender.example", to: ["benchmark1@mx.bench.example"] },
    raw: messages[i % messages.length],
  }).catch(() => { failed += 1; })));
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
transport.close();
console.log(JSON.stringify({ messages: total - failed, errors: failed, seconds, rate: (total - failed) / seconds }));
