// transport, tls and dns checks: they read the recorded SMTP session and the reverse DNS.
#include <arpa/inet.h>
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "analyzers/checks/make.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/dns/idn.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::checks {

namespace json = boost::json;

namespace {

bool is_ip_literal(const std::string& name) {
  if (!name.empty() && name.front() == '[') return true;
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// RFC 1035 host name with at least two labels, each 1-63 letters, digits or hyphens. A name in
// U-labels (an SMTPUTF8 client's, RFC 6531 §3.7.1) is judged by its A-labels; an invalid IDN is
// none (RFC 5891).
bool is_fqdn(const std::string& written) {
  const auto forms = dns::idn(written);
  if (!forms.valid()) return false;
  const std::string& name = forms.ascii;
  if (name.empty() || name.size() > 253 || name.find('.') == std::string::npos) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-') return false;
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(name[i])) || name[i] == '-') {
      ++label;
    } else {
      return false;
    }
  }
  // The top-level label is not all digits (that would be an address written without brackets).
  auto tld = name.substr(name.rfind('.') + 1);
  return !std::all_of(tld.begin(), tld.end(),
                      [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

check no_session(const char* id) {
  return make(id, status::skip,
              "No SMTP session was recorded (the message was analyzed from a file)");
}

bool weak_suite(const std::string& upper) {
  for (const char* bad :
       {"RC4", "DES", "NULL", "EXPORT", "EXP-", "ANON", "_ANON_", "ADH", "AECDH", "MD5"})
    if (upper.find(bad) != std::string::npos) return true;
  return false;
}

// Anonymous key exchange (OpenSSL ADH-/AECDH-, IANA *_anon_*): no certificate authenticates the
// server (RFC 5246 §A.5, RFC 4492 §2.5).
bool anonymous_suite(const std::string& upper) {
  return upper.rfind("ADH-", 0) == 0 || upper.rfind("AECDH-", 0) == 0 ||
         upper.find("_ANON_") != std::string::npos;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Forward secrecy, server authentication and AEAD of a negotiated suite (OpenSSL or IANA name).
// TLS 1.3 suites have all three.
struct suite_facts {
  bool forward_secret = false;
  bool authenticated = true;
  bool aead = false;
  bool broken = false;  // RC4, 3DES, NULL, EXPORT, MD5
};
suite_facts classify_suite(const std::string& name, const std::string& version) {
  suite_facts f;
  const std::string u = upper(name);
  f.authenticated = !anonymous_suite(u);
  f.broken = f.authenticated && weak_suite(u);
  if (!f.authenticated)  // anonymous DH and ECDH are ephemeral: weak only in what they cipher
    for (const char* bad : {"RC4", "DES", "NULL", "EXPORT", "EXP-", "MD5"})
      if (u.find(bad) != std::string::npos) f.broken = true;
  if (version == "TLSv1.3" || u.rfind("TLS_AES_", 0) == 0 || u.rfind("TLS_CHACHA20_", 0) == 0) {
    f.forward_secret = f.aead = true;
    return f;
  }
  f.forward_secret = u.rfind("ECDHE", 0) == 0 || u.rfind("DHE", 0) == 0 ||
                     u.find("_ECDHE_") != std::string::npos ||
                     u.find("_DHE_") != std::string::npos || u.rfind("ADH-", 0) == 0 ||
                     u.rfind("AECDH-", 0) == 0 || u.find("DH_ANON") != std::string::npos;
  f.aead = u.find("GCM") != std::string::npos || u.find("CHACHA20") != std::string::npos ||
           u.find("CCM") != std::string::npos;
  return f;
}

std::vector<check> transport(const inputs& in) {
  std::vector<check> out;
  const auto& c = in.session.connection;
  const std::string& helo = c.helo;
  if (!in.have_session) {
    for (auto id : {"smtp.ehlo", "smtp.early_talker", "smtp.8bit", "smtp.bare_lf"})
      out.push_back(no_session(id));
  } else {
    out.push_back(c.esmtp
                      ? make("smtp.ehlo", status::pass, "The client greeted with EHLO",
                             json::object{{"helo", helo}})
                      : make("smtp.ehlo", status::warn, "The client greeted with HELO, not EHLO",
                             json::object{{"helo", helo}},
                             "Use EHLO: extensions such as STARTTLS, SIZE and 8BITMIME are offered "
                             "only to EHLO."));
    const json::object talk{{"early_talker", c.early_talker}, {"greet_pause_ms", c.greet_pause_ms}};
    out.push_back(
        c.early_talker
            ? make("smtp.early_talker", status::warn,
                   "The client sent commands before the server's reply allowed it", talk,
                   "Wait for the 220 greeting and for each reply where PIPELINING does not allow "
                   "sending ahead (after EHLO, DATA, STARTTLS).")
        : c.greet_pause_ms > 0
            ? make("smtp.early_talker", status::pass,
                   "The client waited for the greeting (held back " +
                       std::to_string(c.greet_pause_ms) + " ms) and for its replies",
                   talk)
            : make("smtp.early_talker", status::pass,
                   "The client waited for its replies; the greeting was not held back, so "
                   "talking before it was not tested (mxlens serve --greet-pause)",
                   talk));
    const auto body = in.session.envelope.body;
    const bool utf8 = in.session.envelope.smtputf8;
    const auto eight = in.session.data.eight_bit;
    json::object ev{{"eight_bit_octets", eight},
                    {"body", body == core::body_type::none ? json::value(nullptr)
                                                           : json::value(core::to_string(body))},
                    {"smtputf8", utf8}};
    if (eight > 0 && body != core::body_type::eight_bit_mime &&
        body != core::body_type::binary_mime && !utf8) {
      out.push_back(
          make("smtp.8bit", status::fail,
               std::to_string(eight) +
                   " octets with the high bit set, without BODY=8BITMIME or SMTPUTF8",
               std::move(ev),
               "Declare MAIL FROM:<...> BODY=8BITMIME (or SMTPUTF8), or encode the content "
               "as quoted-printable or base64."));
    } else {
      out.push_back(make("smtp.8bit", status::pass,
                         eight > 0 ? "8-bit content was declared" : "The message is 7-bit",
                         std::move(ev)));
    }
    const auto lf = in.session.data.bare_lf, cr = in.session.data.bare_cr;
    json::object lev{{"bare_lf", lf}, {"bare_cr", cr}};
    out.push_back(
        lf + cr > 0 ? make("smtp.bare_lf", status::fail,
                           "The DATA had " + std::to_string(lf) + " bare LF and " +
                               std::to_string(cr) + " bare CR line ends",
                           std::move(lev),
                           "End every line with CRLF; bare LF or CR in DATA is how SMTP smuggling "
                           "works (RFC 5321 §2.3.8).")
                    : make("smtp.bare_lf", status::pass, "Every line of the DATA ended in CRLF",
                           std::move(lev)));
  }

  // The EHLO name.
  const std::string lname = core::lowercase(helo);
  json::object hev{{"helo", helo}};
  if (helo.empty() && !in.have_session) {
    out.push_back(no_session("smtp.helo_name"));
  } else if (is_ip_literal(helo)) {
    out.push_back(
        make("smtp.helo_name", status::fail, "The EHLO name is an address literal", hev,
             "Greet with the host's fully qualified domain name, the one its PTR record names."));
  } else if (lname == "localhost" || lname == "localhost.localdomain" || !is_fqdn(helo)) {
    out.push_back(
        make("smtp.helo_name", status::fail,
             "The EHLO name '" + helo + "' is not a fully qualified domain name", hev,
             "Greet with the host's fully qualified domain name, the one its PTR record names."));
  } else {
    out.push_back(make("smtp.helo_name", status::pass,
                       "The EHLO name is a fully qualified domain name", hev));
  }

  const auto helo_dns = in.rdns.helo_dns;
  json::object dev{{"helo", helo},
                   {"addresses", core::string_array(in.rdns.helo_addresses)},
                   {"client_ip", c.client_ip}};
  if (helo_dns == rdns::helo_match::match) {
    out.push_back(make("smtp.helo_dns", status::pass,
                       "The EHLO name resolves to the connecting address", dev));
  } else if (helo_dns == rdns::helo_match::mismatch) {
    out.push_back(make("smtp.helo_dns", status::warn,
                       "The EHLO name resolves, but not to the connecting address", dev,
                       "Give the EHLO name an A/AAAA record with the sending address."));
  } else if (helo_dns == rdns::helo_match::temperror) {
    out.push_back(make("smtp.helo_dns", status::error,
                       "The EHLO name could not be resolved (DNS error)", dev));
  } else if (helo_dns == rdns::helo_match::literal) {
    out.push_back(make("smtp.helo_dns", status::skip,
                       "The EHLO argument is an address literal, not a name", dev));
  } else {
    out.push_back(make("smtp.helo_dns", status::fail, "The EHLO name does not resolve", dev,
                       "Greet with a name that has an A/AAAA record with the sending address."));
  }

  out.push_back(
      make("net.ipv6", status::info,
           c.ipv6 ? "The client connected over IPv6: Gmail requires PTR and authentication"
                  : "The client connected over IPv4",
           json::object{{"family", c.ipv6 ? "ipv6" : "ipv4"}, {"client_ip", c.client_ip}}));
  return out;
}

std::vector<check> tls(const inputs& in) {
  std::vector<check> out;
  const auto& t = in.session.tls;
  if (!in.have_session) {
    for (auto id : {"tls.starttls", "tls.version", "tls.cipher", "tls.offer", "tls.handshake",
                    "tls.fallback", "tls.sni", "tls.client_cert"})
      out.push_back(no_session(id));
    return out;
  }
  const bool used = t.used;
  const bool offered = t.offered;
  const std::string version = t.version.value_or("");
  const std::string cipher = t.cipher.value_or("");
  json::object ev{{"offered", offered}, {"used", used}};
  if (used) {
    out.push_back(make("tls.starttls", status::pass,
                       "The message was sent inside TLS (" + version + ")", ev));
  } else if (offered) {
    out.push_back(
        make("tls.starttls", status::fail,
             "The message was sent in plaintext although STARTTLS was offered", ev,
             "Enable opportunistic TLS on the sending MTA (e.g. Postfix "
             "smtp_tls_security_level = may); Gmail defers bulk mail without TLS (421 4.7.29)."));
  } else {
    out.push_back(
        make("tls.starttls", status::skip, "STARTTLS was not offered to this client", ev));
  }

  if (!used) {
    for (auto id : {"tls.version", "tls.cipher"})
      out.push_back(make(id, status::skip, "No TLS session: the message was sent in plaintext"));
  } else {
    json::object vev{{"version", version}};
    if (version == "TLSv1.3") {
      out.push_back(make("tls.version", status::pass, "TLS 1.3, the best version", vev));
    } else if (version == "TLSv1.2") {
      out.push_back(make("tls.version", status::pass, "TLS 1.2", vev));
    } else {
      out.push_back(
          make("tls.version", status::fail, version + " is obsolete (RFC 8996)", vev,
               "Allow TLS 1.2 and 1.3 on the sending MTA and disable older versions (e.g. "
               "Postfix smtp_tls_protocols = >=TLSv1.2)."));
    }
    auto f = classify_suite(cipher, version);
    json::object cev{{"cipher", cipher},
                     {"version", version},
                     {"forward_secrecy", f.forward_secret},
                     {"authenticated", f.authenticated},
                     {"aead", f.aead}};
    if (f.broken || !f.forward_secret) {
      out.push_back(
          make("tls.cipher", status::fail,
               cipher + (f.broken ? " is a broken cipher suite" : " has no forward secrecy"), cev,
               "Prefer ECDHE key exchange with AES-GCM or ChaCha20-Poly1305."));
    } else if (!f.authenticated) {
      out.push_back(make("tls.cipher", status::fail,
                         cipher +
                             " is anonymous: an ephemeral key exchange (forward secrecy), but no "
                             "certificate authenticates the receiving server",
                         cev,
                         "Offer suites with certificate authentication (ECDHE-RSA or ECDHE-ECDSA "
                         "with AES-GCM or ChaCha20-Poly1305); the providers never choose an "
                         "anonymous suite."));
    } else if (!f.aead) {
      out.push_back(make("tls.cipher", status::warn, cipher + " uses CBC mode", cev,
                         "Prefer AEAD suites (AES-GCM, ChaCha20-Poly1305) over CBC."));
    } else {
      out.push_back(make("tls.cipher", status::pass, cipher + ": AEAD with forward secrecy", cev));
    }
  }

  if (!t.client_hello) {
    out.push_back(make("tls.offer", status::skip, "No ClientHello was recorded"));
  } else {
    std::vector<std::string> old_versions, weak;
    for (const auto& v : t.client_hello->versions)
      if (v == "SSLv3" || v == "TLSv1" || v == "TLSv1.1" || v == "SSLv2") old_versions.push_back(v);
    for (const auto& s : t.client_hello->ciphers)
      if (weak_suite(upper(s))) weak.push_back(s);
    json::object oev{{"versions", core::string_array(t.client_hello->versions)},
                     {"obsolete_versions", core::string_array(old_versions)},
                     {"weak_ciphers", core::string_array(weak)}};
    if (!old_versions.empty() || !weak.empty()) {
      out.push_back(
          make("tls.offer", status::warn,
               "The client still offers obsolete versions or weak suites", oev,
               "Remove TLS 1.0/1.1 and RC4, 3DES, NULL, EXPORT and anonymous suites from the "
               "sending MTA's configuration."));
    } else {
      out.push_back(make("tls.offer", status::pass, "The client offered nothing obsolete", oev));
    }
  }

  const auto& failed = t.failed_handshakes;
  if (failed.empty()) {
    out.push_back(make("tls.handshake", status::pass, "No failed TLS handshake from this client",
                       json::object{{"failed_handshakes", 0}}));
  } else {
    const auto& last = failed.back();
    out.push_back(
        make("tls.handshake", status::warn,
             std::to_string(failed.size()) + " failed TLS handshake(s) before this delivery, the " +
                 "last one " + std::string(core::to_string(last.kind)) + ": " + last.reason,
             json::object{{"failed_handshakes", json::value_from(failed)}},
             "Look at the recorded class, reason and offer: the client and this server had no "
             "version or suite in common, the client rejected the certificate, or it went on "
             "in clear text after STARTTLS."));
  }
  // RFC 3207 §4.1: a client whose handshake failed decides what to do next; delivering the same
  // mail in clear text right after is the fallback Gmail answers with 421-4.7.29.
  if (used) {
    out.push_back(make("tls.fallback", status::pass, "The message came over TLS",
                       json::object{{"used", true}}));
  } else if (failed.empty()) {
    out.push_back(make("tls.fallback", status::pass,
                       "Plaintext, with no failed TLS handshake from this client in the 15 minutes "
                       "before",
                       json::object{{"used", false}, {"failed_handshakes", 0}}));
  } else {
    const auto& last = failed.back();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", last.seconds_before.value_or(0));
    out.push_back(
        make("tls.fallback", status::fail,
             "Sent in plaintext " + std::string(seconds) + " s after a failed TLS handshake (" +
                 std::string(core::to_string(last.kind)) + ": " + last.reason + ")",
             json::object{{"used", false},
                          {"failed_handshakes", static_cast<std::int64_t>(failed.size())},
                          {"last", json::value_from(last)}},
             "The sender fell back to clear text after TLS failed: fix what the failed handshake "
             "shows (a version or suite in common, the certificate it expects), or let it defer "
             "instead of sending in plaintext (Postfix smtp_tls_security_level = encrypt)."));
  }
  const auto& sni = t.sni;
  out.push_back(make("tls.sni", status::info,
                     !used ? "No TLS session"
                     : sni ? "SNI sent: " + *sni
                           : "No SNI was sent",
                     json::object{{"sni", sni ? json::value(*sni) : nullptr}}));
  const auto& cert = t.client_certificate;
  out.push_back(
      make("tls.client_cert", status::info,
           !cert ? "No client certificate was presented" : "Client certificate: " + cert->subject,
           core::optional_json(cert)));
  return out;
}

// Dynamic-looking PTR names: the ones an access network generates, which carry the address's
// digits (dashed, dotted or as one hex number), alone or beside the usual access words. A name
// without them is somebody's choice, whatever it says: "pool-a.shop.example" names a sending pool.
bool looks_generic(const std::string& name, const std::string& ip) {
  const std::string l = core::lowercase(name);
  unsigned char a[4];
  if (inet_pton(AF_INET, ip.c_str(), a) != 1) return false;
  int found = 0;
  for (int i = 0; i < 4; ++i)
    if (l.find(std::to_string(a[i])) != std::string::npos) ++found;
  const auto has = [&](const std::string& s) { return l.find(s) != std::string::npos; };
  const auto d = [&](int i) { return std::to_string(a[i]); };
  const bool last_two = has(d(2) + "-" + d(3)) || has(d(3) + "-" + d(2)) ||
                        has(d(2) + "." + d(3) + ".") || has(d(3) + "." + d(2) + ".");
  char packed[9];
  std::snprintf(packed, sizeof packed, "%02x%02x%02x%02x", a[0], a[1], a[2], a[3]);
  if ((found >= 3 && last_two) || has(packed)) return true;
  bool access_word = false;
  for (const char* word : {"dsl", "dyn", "dhcp", "cable", "ppp", "dial", "broadband", "customer",
                           "client", "pool", "host-", "ip-", "user", "res.", "residential"})
    if (has(word)) access_word = true;
  return access_word && found >= 2 && (last_two || has(d(3)));
}

std::vector<check> dns(const inputs& in) {
  std::vector<check> out;
  const auto& ptr = in.rdns.ptr;
  const auto fcrdns = in.rdns.fcrdns;
  const std::string& ip = in.session.connection.client_ip;
  json::object ev{{"client_ip", ip},
                  {"ptr", core::string_array(ptr)},
                  {"confirmed", core::string_array(in.rdns.confirmed)}};
  if (in.rdns.iprev == core::auth_result::temperror) {
    out.push_back(make("dns.ptr", status::error, "The PTR lookup failed (DNS error)", ev));
    out.push_back(make("dns.fcrdns", status::error,
                       "The reverse lookup could not be completed (DNS error)", ev));
  } else if (ptr.empty()) {
    const char* fix =
        "Ask whoever controls the address (the ISP or cloud provider) for a PTR record "
        "naming the host, and give that name an A/AAAA record with the address.";
    out.push_back(
        make("dns.ptr", status::fail, "The client address " + ip + " has no PTR record", ev, fix));
    out.push_back(make("dns.fcrdns", status::fail, "No PTR name, so nothing resolves back to " + ip,
                       ev, fix));
  } else {
    out.push_back(make("dns.ptr", status::pass, "PTR: " + ptr.front(), ev));
    if (fcrdns.value_or(false)) {
      out.push_back(make("dns.fcrdns", status::pass, "The PTR name resolves back to " + ip, ev));
    } else {
      out.push_back(
          make("dns.fcrdns", status::fail, "No PTR name resolves back to " + ip, ev,
               "Give the PTR name an A/AAAA record with the sending address (Gmail: 550 5.7.25)."));
    }
  }

  if (ptr.empty()) {
    out.push_back(make("dns.ptr_generic", status::skip, "No PTR name to judge"));
    out.push_back(make("dns.helo_ptr", status::skip, "No PTR name to compare the EHLO name with"));
    return out;
  }
  std::vector<std::string> generic;
  for (const auto& p : ptr)
    if (looks_generic(p, ip)) generic.push_back(p);
  json::object gev{{"ptr", core::string_array(ptr)}, {"generic", core::string_array(generic)}};
  out.push_back(
      generic.empty()
          ? make("dns.ptr_generic", status::pass, "The PTR name does not look dynamic", gev)
          : make("dns.ptr_generic", status::warn,
                 "The PTR name " + generic.front() + " looks like a dynamic address", gev,
                 "Use a PTR name of your own domain that names the mail host, e.g. "
                 "mail.example.com."));

  const std::string helo = core::lowercase(in.session.connection.helo);
  json::object hev{{"helo", in.session.connection.helo}, {"ptr", core::string_array(ptr)}};
  bool same = false;
  for (const auto& p : ptr) {
    if (p == helo ||
        (!helo.empty() && dmarc::organizational_domain(p) == dmarc::organizational_domain(helo)))
      same = true;
  }
  out.push_back(
      same ? make("dns.helo_ptr", status::pass, "The EHLO name matches the PTR name's domain", hev)
           : make("dns.helo_ptr", status::warn,
                  "The EHLO name and the PTR name belong to different domains", hev,
                  "Greet with the name the PTR record gives."));
  return out;
}

}  // namespace

std::vector<check> transport_checks(const inputs& in) {
  auto out = transport(in);
  append(out, tls(in));
  append(out, dns(in));
  return out;
}

}  // namespace mxlens::analyzers::checks
