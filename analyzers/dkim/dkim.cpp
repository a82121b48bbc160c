#include "analyzers/dkim/dkim.hpp"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/json/value_from.hpp>
#include <cctype>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

// clang-format off
#include <stdbool.h>  // dkim.h uses C's _Bool
#include <dkim.h>
// clang-format on

#include "analyzers/dns/idn.hpp"
#include "analyzers/message/message.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"

namespace mxlens::analyzers::dkim {

// tag=value; pairs of a key record (RFC 6376 §3.2).
std::map<std::string, std::string> tags(std::string_view record) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos <= record.size()) {
    auto end = record.find(';', pos);
    if (end == std::string_view::npos) end = record.size();
    auto item = record.substr(pos, end - pos);
    auto eq = item.find('=');
    if (eq != std::string_view::npos)
      out.emplace(core::trim(item.substr(0, eq)), core::trim(item.substr(eq + 1)));
    pos = end + 1;
  }
  return out;
}

std::vector<std::string> colon_list(std::string_view value) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos <= value.size();) {
    auto end = value.find(':', pos);
    if (end == std::string_view::npos) end = value.size();
    auto item = core::trim(value.substr(pos, end - pos));
    if (!item.empty()) out.push_back(std::move(item));
    pos = end + 1;
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string clean;
  for (char c : text)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') clean += c;
  if (clean.empty() || clean.size() % 4 != 0) return std::nullopt;
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

namespace {

// One library handle per process, configured before first use.
DKIM_LIB* library();

struct key_note {
  bool temporary = false;  // the DNS question failed temporarily
  std::string problem;     // the key record is unusable for a reason the library does not say
  key_facts facts;
  bool found = false;
};

struct context {
  dns::lookups* dns;
  std::map<std::string, key_note> keys;  // by "selector._domainkey.domain"
};

std::string key_name(DKIM_SIGINFO* sig) {
  auto s = dkim_sig_getselector(sig);
  auto d = dkim_sig_getdomain(sig);
  return std::string(s ? reinterpret_cast<const char*>(s) : "") + "._domainkey." +
         std::string(d ? reinterpret_cast<const char*>(d) : "");
}

DKIM_CBSTAT lookup_key(DKIM* d, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  auto* ctx = static_cast<context*>(dkim_get_user_context(d));
  const std::string name = key_name(sig);
  auto& note = ctx->keys[name];
  const auto& a = ctx->dns->query(name, dns::rr_type::txt);
  if (a.state == dns::status::temperror) {
    // A temporary failure would end the whole verification (CBTRYAGAIN); report it per signature.
    note.temporary = true;
    return DKIM_CBSTAT_NOTFOUND;
  }
  if (a.state != dns::status::ok || a.records.empty()) return DKIM_CBSTAT_NOTFOUND;
  // Several records: the first that carries a key (RFC 6376 §3.6.2.2 leaves the choice open).
  const std::string* chosen = &a.records.front();
  for (const auto& r : a.records)
    if (r.find("p=") != std::string::npos) {
      chosen = &r;
      break;
    }
  note.found = true;
  note.facts = inspect_key(*chosen);
  if (chosen->size() + 1 > buflen) {
    note.problem = "key record longer than " + std::to_string(buflen - 1) + " octets";
    return DKIM_CBSTAT_NOTFOUND;
  }
  std::memcpy(buf, chosen->c_str(), chosen->size() + 1);
  dkim_sig_setdnssec(sig, a.secure ? DKIM_DNSSEC_SECURE : DKIM_DNSSEC_INSECURE);
  return DKIM_CBSTAT_CONTINUE;
}

DKIM_CBSTAT prescreen(DKIM*, DKIM_SIGINFO** sigs, int n) {
  for (int i = max_verified_signatures; i < n; ++i) dkim_sig_ignore(sigs[i]);
  return DKIM_CBSTAT_CONTINUE;
}

DKIM_LIB* library() {
  static DKIM_LIB* lib = [] {
    DKIM_LIB* l = dkim_init(nullptr, nullptr);
    if (!l) throw std::runtime_error("libopendkim could not start");
    dkim_set_key_lookup(l, lookup_key);
    dkim_set_prescreen(l, prescreen);
    return l;
  }();
  return lib;
}

}  // namespace

void preload() { library(); }

namespace {

std::optional<std::string> tag_value(DKIM_SIGINFO* sig, const char* tag) {
  auto v = dkim_sig_gettagvalue(sig, false, reinterpret_cast<u_char*>(const_cast<char*>(tag)));
  if (!v) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(v));
}

std::optional<long long> number(const std::optional<std::string>& s) {
  if (!s || s->empty() || s->size() > 18) return std::nullopt;
  long long v = 0;
  for (char c : *s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// RFC 8601 §2.7.1 results from the library's per-signature error.
core::auth_result classify(int error) {
  switch (error) {
    case DKIM_SIGERROR_BADSIG:
    case DKIM_SIGERROR_EXPIRED:
    case DKIM_SIGERROR_FUTURE:
    case DKIM_SIGERROR_TIMESTAMPS:
    case DKIM_SIGERROR_KEYTOOSMALL:  // RFC 8301 §3.2: under 1024 bits is never valid
    case DKIM_SIGERROR_KEYHASHMISMATCH:
    case DKIM_SIGERROR_SUBDOMAIN:
    case DKIM_SIGERROR_TOOLARGE_L: return core::auth_result::fail;
    default:
      return core::auth_result::permerror;  // no key, revoked or malformed key, malformed signature
  }
}

}  // namespace

namespace {

// The size of an RSA key given as DER (SubjectPublicKeyInfo, or the bare RSAPublicKey some
// records carry), or nullopt. OpenSSL 3.0 builds a decoder for every d2i call, which costs more
// than the verification itself; a sender signs many messages with one key, so sizes are kept by
// key (a bounded map, emptied when full).
std::optional<int> rsa_bits(const std::string& der) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::optional<int>> known;
  {
    std::lock_guard lock(mutex);
    if (auto it = known.find(der); it != known.end()) return it->second;
  }
  auto data = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* key = d2i_PUBKEY(nullptr, &data, static_cast<long>(der.size()));
  if (!key) {
    data = reinterpret_cast<const unsigned char*>(der.data());
    key = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &data, static_cast<long>(der.size()));
  }
  std::optional<int> bits;
  if (key && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) bits = EVP_PKEY_get_bits(key);
  if (key) EVP_PKEY_free(key);
  std::lock_guard lock(mutex);
  if (known.size() >= 256) known.clear();
  known.emplace(der, bits);
  return bits;
}

}  // namespace

std::optional<std::string> key_name(std::string_view signature_value) {
  auto t = tags(signature_value);
  auto strip = [](std::string v) {
    std::erase_if(v, [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
    return v;
  };
  auto s = t.find("s"), d = t.find("d");
  if (s == t.end() || d == t.end()) return std::nullopt;
  auto selector = strip(s->second), domain = strip(d->second);
  if (selector.empty() || domain.empty()) return std::nullopt;
  return selector + "._domainkey." + domain;
}

key_facts inspect_key(std::string_view record) {
  key_facts out;
  // The tag-list (§3.2, §3.6.1) is ASCII: a record with another byte does not parse, a PERMFAIL
  // (key syntax error, §6.1.2), whatever the library makes of it.
  if (auto item = core::non_ascii_item(record, ';'); !item.empty()) {
    out.problem = "key syntax error: a byte that is not ASCII in " + item;
    return out;
  }
  auto t = tags(record);
  auto k = t.count("k") ? core::lowercase(t["k"]) : std::string("rsa");
  out.type = k;
  if (k != "rsa" && k != "ed25519") {
    out.type.reset();
    out.problem = "unknown key type k=" + k;
    return out;
  }
  auto p = t.find("p");
  if (p == t.end()) {
    out.problem = "key record has no p= tag";
    return out;
  }
  if (p->second.empty()) {
    out.problem = "key revoked (empty p=)";
    return out;
  }
  auto der = base64_decode(p->second);
  if (!der) {
    out.problem = "p= is not valid base64";
    return out;
  }
  if (k == "ed25519") {
    // RFC 8463 §4: the raw 32-octet public key.
    if (der->size() != 32) {
      out.problem = "ed25519 key is not 32 octets";
      return out;
    }
    out.bits = 256;
    return out;
  }
  out.bits = rsa_bits(*der);
  if (!out.bits) out.problem = "p= is not an RSA public key";
  return out;
}

namespace {

// Debian's libopendkim refuses a d= with a character outside [A-Za-z0-9._-] (docs/libraries.md
// §1), U-labels included, and leaves that signature out of its list as if it were not there. It
// is a signature all the same, and a permerror: d= is a domain name in A-labels (RFC 6376 §3.5,
// RFC 8616 §4). Its key is not asked.
void add_refused(std::string_view raw, std::vector<signature>& out) {
  const auto a_label_char = [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
  };
  for (const auto& f : message::header_fields(raw)) {
    if (core::lowercase(f.name) != "dkim-signature") continue;
    auto t = tags(f.raw_value);
    const auto value = [&t](const char* tag) {
      auto v = t[tag];
      std::erase_if(v, [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
      return v;
    };
    const auto d = value("d");
    if (d.empty() || std::all_of(d.begin(), d.end(), a_label_char)) continue;
    const auto forms = dns::idn(d);
    signature s;
    s.result = core::auth_result::permerror;
    s.domain = forms.ascii;
    s.domain_unicode = forms.unicode;
    s.selector = value("s");
    s.algorithm = value("a");
    s.identity = "@" + forms.ascii;
    s.reason = "d=" + d + " is not in A-labels (RFC 6376 §3.5, RFC 8616 §4)" +
               (forms.valid() ? "; in A-labels: " + forms.ascii : "");
    s.b_prefix = value("b").substr(0, 12);
    if (const auto c = value("c"); !c.empty()) s.canonicalization = c;
    // h= as signed (§3.5: colon-separated field names), for dkim.coverage and the report.
    for (const auto& name : colon_list(value("h")))
      s.signed_headers.push_back(core::lowercase(name));
    out.push_back(std::move(s));
  }
}

}  // namespace

std::vector<signature> verify(dns::lookups& dns, std::string_view raw) {
  std::vector<signature> out;
  DKIM_LIB* lib = library();
  DKIM_STAT st = DKIM_STAT_OK;
  DKIM* d = dkim_verify(lib, reinterpret_cast<const u_char*>("mxlens"), nullptr, &st);
  if (!d) throw std::runtime_error("libopendkim could not start a verification");
  context ctx{&dns, {}};
  dkim_set_user_context(d, &ctx);
  st = dkim_chunk(d, reinterpret_cast<u_char*>(const_cast<char*>(raw.data())), raw.size());
  if (st == DKIM_STAT_OK) st = dkim_chunk(d, nullptr, 0);
  if (st == DKIM_STAT_NOSIG) {
    dkim_free(d);
    add_refused(raw, out);
    return out;
  }
  dkim_eom(d, nullptr);
  DKIM_SIGINFO** sigs = nullptr;
  int n = 0;
  if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK) n = 0;
  for (int i = 0; i < n; ++i) {
    DKIM_SIGINFO* sig = sigs[i];
    signature s;
    auto dom = dkim_sig_getdomain(sig);
    auto sel = dkim_sig_getselector(sig);
    s.domain = dom ? core::lowercase(reinterpret_cast<const char*>(dom)) : "";
    // d= is in A-labels (RFC 8616 §4; libopendkim refuses others, docs/libraries.md §1).
    s.domain_unicode = dns::idn(s.domain).unicode;
    s.selector = sel ? reinterpret_cast<const char*>(sel) : "";
    s.algorithm = tag_value(sig, "a").value_or("");
    u_char idbuf[512] = {};
    if (dkim_sig_getidentity(d, sig, idbuf, sizeof idbuf) == DKIM_STAT_OK)
      s.identity = reinterpret_cast<const char*>(idbuf);
    if (auto c = tag_value(sig, "c")) {
      auto slash = c->find('/');
      s.canonicalization = slash == std::string::npos ? *c + "/simple" : *c;
    } else {
      s.canonicalization = "simple/simple";
    }
    if (auto h = tag_value(sig, "h")) s.signed_headers = colon_list(*h);
    s.body_length = number(tag_value(sig, "l"));
    s.timestamp = number(tag_value(sig, "t"));
    s.expiration = number(tag_value(sig, "x"));
    s.b_prefix = tag_value(sig, "b").value_or("").substr(0, 12);
    const int bh = dkim_sig_getbh(sig);
    if (bh == DKIM_SIGBH_MATCH) s.body_hash_ok = true;
    if (bh == DKIM_SIGBH_MISMATCH) s.body_hash_ok = false;

    auto note_it = ctx.keys.find(key_name(sig));  // the name lookup_key stored it under
    const key_note* note = note_it == ctx.keys.end() ? nullptr : &note_it->second;
    if (note && note->found) {
      s.key_type = note->facts.type;
      s.key_bits = note->facts.bits;
    }

    const unsigned flags = dkim_sig_getflags(sig);
    const int error = dkim_sig_geterror(sig);
    if (flags & DKIM_SIGFLAG_IGNORE) {
      s.result = core::auth_result::policy;
      s.reason =
          "not verified: more than " + std::to_string(max_verified_signatures) + " signatures";
    } else if (DKIM_SIG_CHECK(sig)) {
      if (core::lowercase(s.algorithm) == "rsa-sha1") {
        s.result = core::auth_result::fail;
        s.reason = "rsa-sha1 is not a valid algorithm (RFC 8301)";
      } else {
        s.result = core::auth_result::pass;
      }
    } else if (note && note->temporary) {
      s.result = core::auth_result::temperror;
      s.reason = "key lookup failed temporarily";
    } else if (note && !note->problem.empty()) {
      s.result = core::auth_result::permerror;  // a key record the library was not given
      s.reason = note->problem;
    } else if (note && note->found && !note->facts.problem.empty()) {
      s.result = core::auth_result::permerror;  // revoked or malformed key (RFC 6376 §6.1.2)
      s.reason = note->facts.problem;
    } else if (bh == DKIM_SIGBH_MISMATCH) {
      s.result = core::auth_result::fail;
      s.reason = "body hash did not verify";
    } else if (error == DKIM_SIGERROR_NOKEY) {
      s.result = core::auth_result::permerror;
      s.reason = "no key for signature";
    } else {
      s.result = classify(error);
      const char* text = dkim_sig_geterrorstr(static_cast<DKIM_SIGERROR>(error));
      s.reason = error == DKIM_SIGERROR_BADSIG ? "signature did not verify"
                                               : (text ? text : "verification failed");
    }
    out.push_back(std::move(s));
  }
  dkim_free(d);
  add_refused(raw, out);
  return out;
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const signature& s) {
  using core::optional_json;
  v = boost::json::object{{"result", core::to_string(s.result)},
                          {"reason", optional_json(s.reason)},
                          {"domain", s.domain},
                          {"domain_unicode", s.domain_unicode},
                          {"selector", s.selector},
                          {"algorithm", s.algorithm},
                          {"identity", s.identity},
                          {"key_type", optional_json(s.key_type)},
                          {"key_bits", optional_json(s.key_bits)},
                          {"canonicalization", optional_json(s.canonicalization)},
                          {"signed_headers", core::string_array(s.signed_headers)},
                          {"body_length", optional_json(s.body_length)},
                          {"body_hash_ok", optional_json(s.body_hash_ok)},
                          {"timestamp", optional_json(s.timestamp)},
                          {"expiration", optional_json(s.expiration)},
                          {"b_prefix", s.b_prefix},
                          {"aligned", s.aligned}};
}

signature tag_invoke(boost::json::value_to_tag<signature>, const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  signature s;
  s.result = core::auth_result_of(text(o, "result"));
  s.reason = optional_field<std::string>(o, "reason");
  s.domain = text(o, "domain");
  // Absent in reports stored before both forms were shown: derived from d=.
  s.domain_unicode =
      o.contains("domain_unicode") ? text(o, "domain_unicode") : dns::idn(s.domain).unicode;
  s.selector = text(o, "selector");
  s.algorithm = text(o, "algorithm");
  s.identity = text(o, "identity");
  s.key_type = optional_field<std::string>(o, "key_type");
  s.key_bits = optional_field<int>(o, "key_bits");
  s.canonicalization = optional_field<std::string>(o, "canonicalization");
  s.signed_headers = field<std::vector<std::string>>(o, "signed_headers");
  s.body_length = optional_field<long long>(o, "body_length");
  s.body_hash_ok = optional_field<bool>(o, "body_hash_ok");
  s.timestamp = optional_field<long long>(o, "timestamp");
  s.expiration = optional_field<long long>(o, "expiration");
  s.b_prefix = text(o, "b_prefix");
  s.aligned = field<bool>(o, "aligned");
  return s;
}

}  // namespace mxlens::analyzers::dkim
