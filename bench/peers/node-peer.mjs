// The Node.js peer: smtp-server (STARTTLS) running mailauth (SPF, DKIM, DMARC) on every message
// against the benchmark's DNS server, and storing each result as a line of a file.
// Usage: node node-peer.mjs PORT DNS_PORT KEY CERT OUT
import { SMTPServer } from "smtp-server";
import smtpConnection from "smtp-server/lib/smtp-connection.js";
import { authenticate } from "mailauth";
import { setServers } from "node:dns";
import { Resolver } from "node:dns/promises";
import { createWriteStream, readFileSync } from "node:fs";

const [port, dnsPort, key, cert, outFile] = process.argv.slice(2);
const resolver = new Resolver();
resolver.setServers([`127.0.0.1:${dnsPort}`]);
// smtp-server looks up the client's reverse name with the global resolver: it asks the same
// server too (as mxlens does), and nothing leaves loopback.
setServers([`127.0.0.1:${dnsPort}`]);
// smtp-server sleeps 100 ms before every greeting to spot early talkers (hard-coded). mxlens greets
// at once, so the peer does too: one message per connection then measures work, not a timer.
smtpConnection.SMTPConnection.prototype.init = function init() {
  this._setListeners(() => {
    if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
      return this.send(421, this.name + " Too many connected clients, try again in a moment");
    }
    this.connectionReady();
  });
};

const out = createWriteStream(outFile, { flags: "a" });

const server = new SMTPServer({
  key: readFileSync(key), cert: readFileSync(cert), authOptional: true, disabledCommands: ["AUTH"],
  size: 60 * 1024 * 1024, logger: false, maxClients: 20000,
  onData(stream, session, callback) {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", async () => {
      try {
        const result = await authenticate(Buffer.concat(chunks), {
          ip: session.remoteAddress, helo: session.hostNameAppearsAs,
          sender: session.envelope.mailFrom?.address || "", mta: "node-peer.example",
          resolver: (name, type) => resolver.resolve(name, type),
        });
        out.write(JSON.stringify({ spf: result.spf?.status?.result, dkim: result.dkim?.results?.map((r) => r.status.result),
                                   dmarc: result.dmarc?.status?.result }) + "\n");
        callback();
      } catch (e) {
        callback(e);
      }
    });
  },
});
server.listen(Number(port), "127.0.0.1", () => console.log(`listening smtp 127.0.0.1:${port}`));
