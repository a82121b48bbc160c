// The report of one delivery (report.schema.json) as a page section.
import { el, link, badge, scoreText } from "/static/common.js";

const ORDER = { fail: 0, error: 1, warn: 2, pass: 3, info: 4, skip: 5 };
const CATEGORY_NAMES = {
  transport: "Transport", tls: "TLS", dns: "DNS", spf: "SPF", dkim: "DKIM", dmarc: "DMARC",
  headers: "Headers", unsubscribe: "Unsubscribe", content: "Content", providers: "Providers",
};

function facts(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    dl.append(el("dt", {}, name),
              el("dd", {}, value === null ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value)));
  }
  return dl;
}

function check(c) {
  const d = el("details", { class: "check", "data-id": c.id, "data-status": c.status });
  d.append(el("summary", {}, badge(c.status), el("span", {}, c.summary), el("span", { class: "id" }, c.id)));
  if (c.fix) d.append(el("p", { class: "fix" }, el("strong", {}, "Fix: "), c.fix));
  if (c.evidence !== null && c.evidence !== undefined) {
    d.append(el("h4", {}, "Evidence"), el("pre", { class: "evidence" }, JSON.stringify(c.evidence, null, 2)));
  }
  if (c.refs?.length) {
    const ul = el("ul", { class: "refs" });
    for (const r of c.refs) ul.append(el("li", {}, link(r)));
    d.append(el("h4", {}, "References"), ul);
  }
  return d;
}

function checks(report) {
  const section = el("section", { class: "card", id: "checks" }, el("h2", {}, "Checks"));
  const groups = new Map();
  for (const c of report.checks) {
    if (!groups.has(c.category)) groups.set(c.category, []);
    groups.get(c.category).push(c);
  }
  for (const [category, list] of groups) {
    list.sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9));
    const bad = list.filter((c) => c.status === "fail" || c.status === "warn").length;
    section.append(el("h3", {}, CATEGORY_NAMES[category] || category, bad ? ` — ${bad} to fix` : ""));
    for (const c of list) section.append(check(c));
  }
  return section;
}

function tls(report) {
  const t = report.tls;
  const section = el("section", { class: "card", id: "tls" }, el("h2", {}, "TLS session"));
  section.append(facts([["STARTTLS offered", t.offered], ["Used", t.used], ["Version", t.version ?? null],
                        ["Cipher", t.cipher ?? null], ["Group", t.group ?? null], ["SNI", t.sni ?? null],
                        ["Client certificate", t.client_certificate?.subject ?? null]]));
  if (t.client_hello) {
    const h = t.client_hello;
    section.append(el("h3", {}, "What the client offered"),
                   facts([["Versions", (h.versions || []).join(", ")], ["Groups", (h.groups || []).join(", ")],
                          ["Fingerprint (JA4)", h.fingerprint ?? null]]),
                   el("pre", {}, (h.ciphers || []).join("\n")));
  }
  if (t.failed_handshakes?.length) {
    section.append(el("h3", {}, "Failed handshakes"), el("pre", {}, JSON.stringify(t.failed_handshakes, null, 2)));
  }
  return section;
}

// The terms of the domain's own SPF record as the evaluation met them (auth.spf.terms), the one
// that decided the result marked; then what libspf2 computes, when it differs.
function spfTerms(spf) {
  const table = el("table", { class: "spf-terms" },
                   el("tr", {}, el("th", {}, "Term"), el("th", {}, "At"), el("th", {}, "Lookups"),
                      el("th", {}, "Void"), el("th", {}, "Matched"), el("th", {}, "Error")));
  for (const t of spf.terms) {
    const decided = t.term === spf.decided_by && t.matched;
    table.append(el("tr", decided ? { class: "decided" } : {},
                    el("td", {}, el("code", {}, t.term), decided ? " ← decided the result" : ""),
                    el("td", {}, String(t.position)), el("td", {}, String(t.lookups)),
                    el("td", {}, String(t.void_lookups)), el("td", {}, t.matched ? "yes" : ""),
                    el("td", {}, t.error ?? "")));
  }
  const out = el("div", { class: "scroll" }, table);
  if (spf.libspf2) out.append(el("p", { class: "muted" }, `libspf2 computes ${spf.libspf2} for this record.`));
  return out;
}

// The ARC sets, oldest first (auth.arc.chain, RFC 8617): who sealed each, what it saw, and whether
// its two signatures hold; a broken chain says where and why above the table.
function arcChain(arc) {
  const out = el("div", {});
  const where = arc.failed_instance ? ` at i=${arc.failed_instance}` : "";
  out.append(el("p", { class: "arc-verdict" }, `cv=${arc.cv}${where}${arc.reason ? ": " + arc.reason : ""}`));
  const table = el("table", { class: "arc-chain" },
                   el("tr", {}, el("th", {}, "i"), el("th", {}, "Sealed by"), el("th", {}, "cv"),
                      el("th", {}, "AMS"), el("th", {}, "Seal"), el("th", {}, "What it saw"),
                      el("th", {}, "Problem")));
  for (const s of arc.chain) {
    table.append(el("tr", { "data-instance": String(s.instance) },
                    el("td", {}, String(s.instance)),
                    el("td", {}, `${s.seal_domain} (s=${s.seal_selector})`), el("td", {}, s.cv),
                    el("td", {}, s.ams), el("td", {}, s.seal),
                    el("td", {}, el("code", {}, `${s.authserv_id}; ${s.results}`)),
                    el("td", {}, s.problem ?? "")));
  }
  out.append(el("div", { class: "scroll" }, table));
  return out;
}

// The Received chain, oldest hop first (report.received_chain): who handed the message to whom
// and the TLS each hop says it used.
function receivedChain(hops) {
  const table = el("table", { class: "received-chain" },
                   el("tr", {}, el("th", {}, "#"), el("th", {}, "From"), el("th", {}, "By"),
                      el("th", {}, "With"), el("th", {}, "TLS"), el("th", {}, "At")));
  hops.forEach((h, i) => {
    table.append(el("tr", {}, el("td", {}, String(i + 1)), el("td", {}, h.from ?? ""),
                    el("td", {}, h.by ?? ""), el("td", {}, h.with ?? ""),
                    el("td", {}, h.tls ?? ""), el("td", {}, h.at ?? "")));
  });
  return el("div", { class: "scroll" }, table);
}

// A domain in both forms when its U-labels differ (RFC 8616): "пример.рф (xn--e1afmkfd.xn--p1ai)".
function domain(ascii, unicode) {
  return unicode && unicode !== ascii ? `${unicode} (${ascii})` : ascii;
}

function auth(report) {
  const a = report.auth;
  const section = el("section", { class: "card", id: "auth" }, el("h2", {}, "Authentication"));
  section.append(facts([["SPF", `${a.spf.result} (${a.spf.domain ? domain(a.spf.domain, a.spf.domain_unicode) : "no domain"})`],
                        ["SPF record", a.spf.record ?? null],
                        ["DKIM", a.dkim.length ? a.dkim.map((s) => `${s.result} d=${domain(s.domain, s.domain_unicode)} s=${s.selector}`).join("; ") : "none"],
                        ["DMARC", `${a.dmarc.result} (${a.dmarc.from_domain ? domain(a.dmarc.from_domain, a.dmarc.from_domain_unicode) : "no From domain"})`],
                        ["DMARC record", a.dmarc.record ?? null],
                        ["Reverse DNS", (report.connection.ptr || []).join(", ") || "none"],
                        ["Forward-confirmed", report.connection.fcrdns]]));
  if (a.spf.terms?.length) section.append(el("h3", {}, "SPF record, term by term"), spfTerms(a.spf));
  if (a.arc?.chain?.length) section.append(el("h3", {}, "ARC chain (oldest set first)"), arcChain(a.arc));
  if (report.received_chain?.length) {
    section.append(el("h3", {}, "Received chain (oldest hop first)"), receivedChain(report.received_chain));
  }
  if (a.authentication_results) {
    section.append(el("h3", {}, "Authentication-Results"), el("pre", {}, a.authentication_results));
  }
  return section;
}

function providers(report) {
  const section = el("section", { class: "card", id: "providers" }, el("h2", {}, "What the providers would answer"));
  const grid = el("div", { class: "providers" });
  for (const [name, p] of Object.entries(report.providers)) {
    grid.append(el("div", { "data-provider": name },
                   el("h3", {}, name[0].toUpperCase() + name.slice(1)),
                   el("p", {}, "Ordinary sender: ", badge(p.verdict)), el("pre", {}, p.reply),
                   p.bulk_verdict ? el("p", {}, "Bulk sender: ", badge(p.bulk_verdict)) : null,
                   p.bulk_reply ? el("pre", {}, p.bulk_reply) : null));
  }
  section.append(grid);
  return section;
}

function transcript(report) {
  const lines = report.transcript.map((l) => `${String(Math.round(l.t_ms)).padStart(6)} ms ${l.dir === "c" ? "C:" : l.dir === "s" ? "S:" : "--"} ${l.line}`);
  return el("section", { class: "card", id: "transcript" }, el("h2", {}, "SMTP transcript"),
            el("pre", {}, lines.join("\n") || "(not recorded)"));
}

// The message's header section, as the report carries it (report.headers); a report stored
// before it was kept has none, and the download link is all there is.
function headers(report) {
  const h = report.headers;
  const section = el("section", { class: "card", id: "headers" }, el("h2", {}, "Headers"));
  if (!h) {
    section.append(el("p", { class: "muted" }, "This report was stored without the headers: download the message to see them."));
    return section;
  }
  if (h.truncated) {
    section.append(el("p", { class: "muted", id: "headers-cut" },
                      `The first ${h.text.length.toLocaleString("en")} characters of ${h.size.toLocaleString("en")} octets of headers; download the message for the rest.`));
  }
  section.append(el("pre", {}, h.text));
  return section;
}

// The score, or why there is none: an unscored report says "not analysed" and its reason.
function score(s) {
  const errors = s.errors ? `, ${s.errors} could not be evaluated` : "";
  const counts = el("span", {}, `${s.passed} of ${s.total} checks passed${errors}`);
  if (typeof s.value === "number") {
    return [el("span", { class: "value", id: "score" }, scoreText(s)), counts];
  }
  return [el("span", { class: "value unscored", id: "score" }, scoreText(s)),
          el("span", { id: "unscored" }, `unscored: ${s.unscored ?? "no score"}`), counts];
}

export function renderReport(report, container, { rawUrl } = {}) {
  const head = el("section", { class: "card", id: "summary" },
                  el("div", { class: "score" }, score(report.score),
                     el("span", { class: "muted" }, `from ${report.connection.client_ip} (${report.connection.helo || "no EHLO"}) at ${report.received_at}`)),
                  el("p", {}, "Reply given: ", `${report.disposition.code} ${report.disposition.enhanced ?? ""} ${report.disposition.text}`),
                  rawUrl ? el("p", {}, el("a", { href: rawUrl, download: "", id: "download" }, "Download the message as received")) : null);
  const sections = [head, checks(report), tls(report), auth(report), providers(report), transcript(report), headers(report)];
  container.replaceChildren(...sections);
}
