// headers, unsubscribe and content checks: they read the message (GMime facts and raw lines).
#include <algorithm>
#include <cctype>
#include <cstring>

#include "analyzers/checks/make.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/dns/idn.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::checks {

namespace json = boost::json;
using message::count;
using message::first;

namespace {

// A domain in A-labels or U-labels (SMTPUTF8), which must then be a valid IDN (RFC 5891);
// judged in A-labels.
bool valid_domain(const std::string& d) {
  const auto forms = dns::idn(d);
  const std::string& a = forms.ascii;
  if (!forms.valid() || a.find('.') == std::string::npos || a.size() > 253) return false;
  return std::all_of(a.begin(), a.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

// <URI> entries of a List-Unsubscribe value (RFC 2369 §2).
std::vector<std::string> bracketed(const std::string& v) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = v.find('<', pos)) != std::string::npos) {
    auto end = v.find('>', pos);
    if (end == std::string::npos) break;
    std::string uri;
    for (char c : v.substr(pos + 1, end - pos - 1))
      if (!std::isspace(static_cast<unsigned char>(c))) uri += c;
    out.push_back(uri);
    pos = end + 1;
  }
  return out;
}

bool starts_with_ci(const std::string& s, const char* prefix) {
  return core::lowercase(s.substr(0, std::strlen(prefix))) == prefix;
}

// hdr.received: the chain as its hops report it. Every hop of it came before mxlens (which writes
// no Received field), so a hop that says it went in clear text is named, the oldest first.
check received(const message::received_chain& chain) {
  if (chain.hops.empty()) return make("hdr.received", status::skip, "No Received header");
  json::object ev{{"hops", chain.fields}, {"kept", chain.hops.size()}};
  const auto clear = std::find_if(chain.hops.begin(), chain.hops.end(), message::in_clear_text);
  const auto tls = std::count_if(chain.hops.begin(), chain.hops.end(),
                                 [](const message::hop& h) { return h.tls.has_value(); });
  const bool cut = chain.hops.size() < static_cast<std::size_t>(chain.fields);
  const std::string counted =
      std::to_string(chain.fields) + (chain.fields == 1 ? " hop" : " hops") +
      (cut ? " (the newest " + std::to_string(chain.hops.size()) + " read)" : "") + ", " +
      std::to_string(tls) + " in TLS";
  if (clear == chain.hops.end())
    return make("hdr.received", status::info, counted + "; none says it went in clear text", ev);
  const auto n = clear - chain.hops.begin();
  ev["clear_text_hop"] = n + 1;
  return make("hdr.received", status::info,
              counted + "; hop " + std::to_string(n + 1) + " went in clear text: from " +
                  clear->from->substr(0, 80) + " by " + clear->by.value_or("?").substr(0, 80) +
                  " with " + *clear->with,
              ev);
}

std::vector<check> headers(const inputs& in) {
  std::vector<check> out;
  const auto& c = in.content;
  const auto& f = c.fields;

  // From
  json::object fev{{"fields", c.from.fields}, {"addresses", core::string_array(c.from.addresses)}};
  if (auto v = first(f, "From")) fev["value"] = v->substr(0, 200);
  if (c.from.fields == 0) {
    out.push_back(make("hdr.from", status::fail, "The message has no From header", fev,
                       "Add exactly one From header with one address (Gmail: 550 5.7.1)."));
  } else if (c.from.fields > 1) {
    out.push_back(make("hdr.from", status::fail,
                       "The message has " + std::to_string(c.from.fields) + " From headers", fev,
                       "Send exactly one From header (Gmail: 550 5.7.1)."));
  } else if (c.from.addresses.size() != 1) {
    out.push_back(
        make("hdr.from", status::fail,
             c.from.addresses.empty()
                 ? "The From header has no valid address"
                 : "The From header has " + std::to_string(c.from.addresses.size()) + " addresses",
             fev, "Put exactly one address in From; use Sender or Reply-To for others."));
  } else if (c.from.domains.empty() || !valid_domain(c.from.domains.front())) {
    out.push_back(make("hdr.from", status::fail, "The From address has no valid domain", fev,
                       "Use an address with a fully qualified domain in From."));
  } else {
    out.push_back(make("hdr.from", status::pass, "From: " + c.from.addresses.front(), fev));
  }

  // Date
  const int dates = count(f, "Date");
  auto date = first(f, "Date");
  json::object dev{{"value", date ? json::value(*date) : nullptr}, {"count", dates}};
  if (!date) {
    out.push_back(make(
        "hdr.date", status::fail, "The message has no Date header", dev,
        "Add a Date header (RFC 5322 requires it), e.g. \"Mon, 23 Nov 2026 10:00:00 +0000\"."));
  } else if (auto t = message::parse_date(*date); !t || dates > 1) {
    out.push_back(
        make("hdr.date", status::fail,
             dates > 1 ? "The message has several Date headers"
                       : "The Date is not valid RFC 5322 syntax",
             dev, "Write the date as RFC 5322 §3.3 does: \"Mon, 23 Nov 2026 10:00:00 +0000\"."));
  } else {
    const auto skew = *t - in.session.received_at / 1000;
    dev["skew_seconds"] = skew;
    if (skew > 86400 || skew < -86400) {
      out.push_back(make("hdr.date", status::warn,
                         "The Date is more than 24 hours from the arrival time", dev,
                         "Check the sending host's clock and time zone."));
    } else {
      out.push_back(make("hdr.date", status::pass, "Date: " + *date, dev));
    }
  }

  // Message-ID
  auto mid = first(f, "Message-ID");
  json::object mev{{"value", mid ? json::value(mid->substr(0, 200)) : nullptr},
                   {"count", count(f, "Message-ID")}};
  if (!mid) {
    out.push_back(make("hdr.message_id", status::fail, "The message has no Message-ID", mev,
                       "Add a Message-ID such as <unique@your.host.example> (Gmail: 550 5.7.1)."));
  } else {
    std::string id = core::trim(*mid);
    auto at = id.find('@');
    bool ok = id.size() > 4 && id.front() == '<' && id.back() == '>' && at != std::string::npos &&
              id.find_first_of(" \t<>", 1) == id.size() - 1 && at > 1;
    std::string right = ok ? id.substr(at + 1, id.size() - at - 2) : "";
    if (ok && right.find('.') != std::string::npos && right.find('@') == std::string::npos) {
      out.push_back(make("hdr.message_id", status::pass, "Message-ID: " + id.substr(0, 100), mev));
    } else {
      out.push_back(make("hdr.message_id", status::warn, "The Message-ID is malformed", mev,
                         "Use <unique-left-part@fully.qualified.host>."));
    }
  }

  // Subject
  auto subject = first(f, "Subject");
  json::object sev{{"value", subject ? json::value(subject->substr(0, 200)) : nullptr}};
  if (!subject || subject->empty()) {
    out.push_back(make("hdr.subject", status::warn,
                       subject ? "The Subject is empty" : "The message has no Subject", sev,
                       "Give the message a Subject."));
  } else {
    out.push_back(make("hdr.subject", status::pass, "Subject present", sev));
  }

  const int to = count(f, "To"), cc = count(f, "Cc");
  out.push_back(
      to + cc > 0
          ? make("hdr.to", status::pass, "To or Cc present", json::object{{"to", to}, {"cc", cc}})
          : make("hdr.to", status::warn, "Neither To nor Cc is present",
                 json::object{{"to", 0}, {"cc", 0}}, "Address the message with a To header."));

  const auto dups = duplicated_singletons(f);
  out.push_back(
      dups.empty() ? make("hdr.duplicates", status::pass, "No singleton header appears twice")
                   : make("hdr.duplicates", status::fail, "Repeated header: " + dups.front(),
                          json::object{{"duplicated", core::string_array(dups)}},
                          "Send each of From, Sender, Reply-To, To, Cc, Subject, Date, Message-ID, "
                          "In-Reply-To and References at most once (Gmail: 550 5.7.1)."));

  out.push_back(c.header_problems.empty()
                    ? make("hdr.syntax", status::pass, "Every header line is well formed")
                    : make("hdr.syntax", status::fail, c.header_problems.front(),
                           json::object{{"problems", core::string_array(c.header_problems)}},
                           "Fold header lines under 998 octets, encode non-ASCII text as RFC 2047 "
                           "encoded words (or send with SMTPUTF8), and use valid field names."));

  json::object miev{{"mime_version", count(f, "MIME-Version") > 0},
                    {"parts", c.parts_seen},
                    {"problems", core::string_array(c.mime_problems)}};
  out.push_back(
      !c.mime_problems.empty()
          ? make("hdr.mime", status::fail, c.mime_problems.front(), miev,
                 "Add MIME-Version: 1.0 with Content-Type, close every multipart boundary, and "
                 "use 7bit, 8bit, quoted-printable or base64.")
          : make("hdr.mime", status::pass,
                 c.mime_used ? "The MIME structure is valid" : "Plain RFC 5322 message", miev));

  auto reply_to = first(f, "Reply-To");
  if (!reply_to) {
    out.push_back(make("hdr.reply_to", status::skip, "No Reply-To"));
  } else {
    auto addrs = message::parse_addresses(*reply_to);
    bool valid =
        !addrs.empty() && std::all_of(addrs.begin(), addrs.end(), [](const std::string& a) {
          auto at = a.rfind('@');
          return at != std::string::npos && at > 0 && valid_domain(a.substr(at + 1));
        });
    json::object rev{{"value", reply_to->substr(0, 200)}, {"addresses", core::string_array(addrs)}};
    out.push_back(valid
                      ? make("hdr.reply_to", status::pass, "Reply-To holds valid addresses", rev)
                      : make("hdr.reply_to", status::warn, "Reply-To does not hold valid addresses",
                             rev, "Put valid addresses in Reply-To, or leave it out."));
  }

  const std::string& mail_from = in.session.envelope.mail_from;
  // Both in A-labels (RFC 8616 §4): an SMTPUTF8 MAIL FROM may carry U-labels.
  const auto bounce_forms =
      dns::idn(mail_from.empty() ? "" : mail_from.substr(mail_from.rfind('@') + 1));
  const std::string& bounce = bounce_forms.ascii;
  const std::string from_domain = c.from.domains.empty() ? "" : c.from.domains.front();
  out.push_back(make("hdr.return_path", status::info,
                     mail_from.empty()
                         ? "Null sender (MAIL FROM:<>)"
                         : "Bounces go to " + bounce_forms.shown() +
                               (bounce == from_domain ? ", the From domain"
                                : dmarc::aligned(from_domain, bounce, 'r')
                                    ? ", within the From organization"
                                    : ", not the From domain " + dns::idn(from_domain).shown()),
                     json::object{{"mail_from", mail_from}, {"from_domain", from_domain}}));
  out.push_back(received(c.received));
  return out;
}

std::vector<check> unsubscribe(const inputs& in) {
  std::vector<check> out;
  const auto& f = in.content.fields;
  const auto bad = in.bulk ? status::fail : status::warn;
  auto lu = first(f, "List-Unsubscribe");
  auto post = first(f, "List-Unsubscribe-Post");
  std::vector<std::string> uris = lu ? bracketed(*lu) : std::vector<std::string>{};
  const bool https =
      std::any_of(uris.begin(), uris.end(), [](auto& u) { return starts_with_ci(u, "https://"); });
  const bool mailto =
      std::any_of(uris.begin(), uris.end(), [](auto& u) { return starts_with_ci(u, "mailto:"); });
  json::object ev{{"list_unsubscribe", lu ? json::value(lu->substr(0, 300)) : nullptr},
                  {"uris", core::string_array(uris)},
                  {"bulk", in.bulk}};
  if (!lu) {
    out.push_back(make("unsub.header", bad, "No List-Unsubscribe header", ev,
                       "Add List-Unsubscribe: <https://...>, <mailto:...> (required by Gmail and "
                       "Yahoo for bulk mail)."));
  } else if (https) {
    out.push_back(make("unsub.header", status::pass, "List-Unsubscribe with an https URI", ev));
  } else {
    out.push_back(make(
        "unsub.header", status::warn,
        mailto ? "List-Unsubscribe has only a mailto URI" : "List-Unsubscribe has no https URI", ev,
        "Add an https URI to List-Unsubscribe (Gmail does not accept mailto alone)."));
  }

  // RFC 8058 §3.1: the Post header, an https URI, and both headers under a valid DKIM signature.
  bool both_signed = false;
  for (const auto& s : in.dkim) {
    if (s.result != core::auth_result::pass) continue;
    bool lu_signed = false, post_signed = false;
    for (const auto& h : s.signed_headers) {
      if (core::lowercase(h) == "list-unsubscribe") lu_signed = true;
      if (core::lowercase(h) == "list-unsubscribe-post") post_signed = true;
    }
    if (lu_signed && post_signed) both_signed = true;
  }
  const bool post_ok = post && core::trim(*post) == "List-Unsubscribe=One-Click" &&
                       count(f, "List-Unsubscribe-Post") == 1;
  json::object oev{{"list_unsubscribe_post", post ? json::value(*post) : nullptr},
                   {"https_uri", https},
                   {"dkim_signed", both_signed},
                   {"bulk", in.bulk}};
  if (post_ok && https && both_signed) {
    out.push_back(
        make("unsub.one_click", status::pass, "One-click unsubscribe (RFC 8058), signed", oev));
  } else {
    std::string why = !post      ? "No List-Unsubscribe-Post header"
                      : !post_ok ? "List-Unsubscribe-Post is not exactly List-Unsubscribe=One-Click"
                      : !https   ? "One-click needs an https URI in List-Unsubscribe"
                               : "List-Unsubscribe and List-Unsubscribe-Post are not both under a "
                                 "passing DKIM signature";
    out.push_back(make("unsub.one_click", bad, why, oev,
                       "Send List-Unsubscribe-Post: List-Unsubscribe=One-Click with an https "
                       "List-Unsubscribe URI, and sign both headers with DKIM."));
  }
  return out;
}

std::vector<check> content(const inputs& in) {
  std::vector<check> out;
  const auto& c = in.content;
  json::object tev{{"text_plain", c.has_text_plain}, {"html", c.has_html}};
  out.push_back(c.has_html && !c.has_text_plain
                    ? make("body.text_part", status::warn, "HTML only: no text/plain alternative",
                           tev,
                           "Send multipart/alternative with a text/plain part beside the HTML.")
                    : make("body.text_part", status::pass,
                           c.has_html ? "text/plain alongside HTML" : "Plain text", tev));

  constexpr std::size_t clip = std::size_t{102} * 1024;  // Gmail clips HTML above about 102 KB
  json::object sev{
      {"html_octets", c.html_size}, {"message_octets", c.body_size}, {"clip_at", clip}};
  out.push_back(
      c.html_size > clip
          ? make("body.size", status::warn,
                 "The HTML is " + std::to_string(c.html_size / 1024) + " KB: Gmail clips it", sev,
                 "Keep the HTML under 102 KB (inline CSS and tracking markup count).")
          : make("body.size", status::pass, "The HTML fits under Gmail's clipping size", sev));

  json::object iev{{"images", c.images}, {"text_characters", c.text_chars}};
  const bool image_heavy = c.images > 0 &&
                           c.text_chars < 200u * static_cast<std::size_t>(c.images) &&
                           c.text_chars < 500;
  out.push_back(image_heavy
                    ? make("body.images", status::warn, "The message is mostly images", iev,
                           "Carry the message in text; use images for illustration only.")
                    : make("body.images", status::pass, "The text carries the message", iev));

  std::vector<std::string> http, shorteners;
  static const char* short_hosts[] = {"bit.ly",  "tinyurl.com", "goo.gl",  "t.co",
                                      "ow.ly",   "is.gd",       "buff.ly", "rebrand.ly",
                                      "cutt.ly", "shorturl.at", "tiny.cc", "t.ly"};
  for (const auto& link : c.links) {
    const std::string l = core::lowercase(link);
    if (l.rfind("http://", 0) == 0) http.push_back(link);
    auto host_start = l.find("://") + 3;
    auto host = l.substr(host_start, l.find_first_of("/?#:", host_start) - host_start);
    for (const char* s : short_hosts)
      if (host == s || (host.size() > std::strlen(s) && host.ends_with(std::string(".") + s)))
        shorteners.push_back(link);
  }
  json::object lev{{"links", c.links.size()},
                   {"http", core::string_array(http)},
                   {"shorteners", core::string_array(shorteners)}};
  if (!http.empty() || !shorteners.empty()) {
    out.push_back(make("body.links", status::warn,
                       !shorteners.empty() ? "A URL shortener is used: " + shorteners.front()
                                           : "Plain http link: " + http.front(),
                       lev, "Link with https to your own domain; shorteners are a spam signal."));
  } else {
    out.push_back(make("body.links", status::pass,
                       c.links.empty() ? "No links" : "Every link uses https", lev));
  }

  out.push_back(
      c.charset_problems.empty()
          ? make("body.charset", status::pass, "Every text part declares its charset and decodes")
          : make("body.charset", status::warn, c.charset_problems.front(),
                 json::object{{"problems", core::string_array(c.charset_problems)}},
                 "Declare charset=utf-8 on every text part and send valid UTF-8."));

  json::array found;
  for (const auto& p : c.placeholders)
    found.push_back(json::object{{"text", p.text}, {"in", p.where}});
  out.push_back(
      c.placeholders.empty()
          ? make("body.placeholders", status::pass, "No unreplaced template placeholder")
          : make("body.placeholders", status::warn,
                 "Unreplaced template placeholder in " +
                     (c.placeholders.front().where == "Subject"
                          ? "the Subject"
                          : "a " + c.placeholders.front().where + " part") +
                     ": " + c.placeholders.front().text,
                 json::object{{"placeholders", std::move(found)}},
                 "Fill in every merge field before sending: check that the template's variable "
                 "names match the recipient data and that the substitution step ran."));
  return out;
}

}  // namespace

std::vector<std::string> duplicated_singletons(const std::vector<message::header_field>& fields) {
  std::vector<std::string> dups;
  for (const char* name : {"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date",
                           "Message-ID", "In-Reply-To", "References"})
    if (count(fields, name) > 1) dups.push_back(name);
  return dups;
}

std::vector<check> message_checks(const inputs& in) {
  auto out = headers(in);
  append(out, unsubscribe(in));
  append(out, content(in));
  return out;
}

}  // namespace mxlens::analyzers::checks
