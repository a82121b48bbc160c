#include "analyzers/arc/arc.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <map>
#include <memory>

#include "analyzers/dkim/dkim.hpp"
#include "analyzers/message/message.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::arc {

namespace {

constexpr std::size_t max_results_text = 1024;
// Echoed text from the headers (domains, selectors, authserv-id, tags in problems) is cut here,
// and an AMS signing more fields than max_signed_names is refused: real signers sign a few dozen.
constexpr std::size_t max_echoed = 255;
constexpr std::size_t max_signed_names = 1000;
constexpr std::size_t max_shown_names = 100;
// RFC 8301 §3.2: RSA keys under 1024 bits are not accepted.
constexpr int min_rsa_bits = 1024;

std::string cut(std::string v, std::size_t n = max_echoed) {
  if (v.size() > n) v.resize(n);
  return v;
}

bool wsp(char c) { return c == ' ' || c == '\t'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

std::string without_whitespace(std::string v) {
  std::erase_if(v, [](char c) { return wsp(c) || c == '\r' || c == '\n'; });
  return v;
}

// The value with the b= tag's value removed, everything else as written (RFC 6376 §3.5, b=;
// RFC 8617 §4.1.2 and §4.1.3 for the AMS and the AS).
std::string without_b_value(std::string_view value) {
  std::size_t pos = 0;
  while (pos < value.size()) {
    auto end = value.find(';', pos);
    if (end == std::string_view::npos) end = value.size();
    auto item = value.substr(pos, end - pos);
    auto eq = item.find('=');
    if (eq != std::string_view::npos) {
      auto name = core::trim(item.substr(0, eq));
      if (name == "b")
        return std::string(value.substr(0, pos + eq + 1)) + std::string(value.substr(end));
    }
    pos = end + 1;
  }
  return std::string(value);
}

std::string simple_header(std::string_view name, std::string_view raw_value) {
  return std::string(name) + ":" + std::string(raw_value) + "\r\n";
}

// The fields of each name, bottom-up (lowercase name -> indices, the last field first), made
// once per message so that a signature's h= costs one step per name (RFC 6376 §5.4.2).
using field_index = std::map<std::string, std::vector<std::size_t>>;

field_index index_fields(const std::vector<message::header_field>& fields) {
  field_index out;
  for (std::size_t i = fields.size(); i-- > 0;) out[core::lowercase(fields[i].name)].push_back(i);
  return out;
}

// The signed header fields of a signature (RFC 6376 §5.4.2): each name of h= takes the last
// field of that name not yet taken; a name with none left contributes nothing.
std::string selected_headers(const std::vector<message::header_field>& fields,
                             const field_index& index, const std::vector<std::string>& names,
                             bool relaxed) {
  std::map<std::string, std::size_t> taken;  // by lowercase name: how many from the bottom
  std::string out;
  for (const auto& n : names) {
    const auto lower = core::lowercase(n);
    auto it = index.find(lower);
    if (it == index.end()) continue;
    auto& used = taken[lower];
    if (used >= it->second.size()) continue;
    const auto& f = fields[it->second[used++]];
    out += relaxed ? relaxed_header(f.name, f.raw_value) : simple_header(f.name, f.raw_value);
  }
  return out;
}

struct key_result {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
  std::string problem;
  bool temporary = false;
};

key_result fetch_key(dns::lookups& dns, const std::string& selector, const std::string& domain) {
  key_result out;
  const auto name = selector + "._domainkey." + domain;
  const auto& a = dns.query(name, dns::rr_type::txt);
  if (a.state == dns::status::temperror) {
    out.temporary = true;
    out.problem = "the key " + name + " could not be fetched (temporary DNS error)";
    return out;
  }
  const std::string* chosen = nullptr;
  for (const auto& r : a.records)
    if (r.find("p=") != std::string::npos) {
      chosen = &r;
      break;
    }
  if (a.state != dns::status::ok || !chosen) {
    out.problem = "no key at " + name;
    return out;
  }
  auto facts = dkim::inspect_key(*chosen);
  if (!facts.problem.empty()) {
    out.problem = name + ": " + facts.problem;
    return out;
  }
  if (facts.type != "rsa") {
    out.problem = name + ": not an RSA key, as rsa-sha256 needs";
    return out;
  }
  if (facts.bits && *facts.bits < min_rsa_bits) {
    out.problem = name + ": a " + std::to_string(*facts.bits) +
                  "-bit RSA key, under the 1024 bits a verifier accepts (RFC 8301 §3.2)";
    return out;
  }
  auto t = dkim::tags(*chosen);
  // RFC 6376 §3.6.1: h= (hash algorithms) and s= (service types) of the key, when given.
  const auto listed = [&t](const char* tag, std::initializer_list<const char*> wanted) {
    if (!t.count(tag)) return true;
    for (const auto& item : dkim::colon_list(core::lowercase(without_whitespace(t[tag]))))
      for (const char* w : wanted)
        if (item == w) return true;
    return false;
  };
  if (!listed("h", {"sha256"})) {
    out.problem = name + ": the key's h= does not allow sha256 (RFC 6376 §3.6.1)";
    return out;
  }
  if (!listed("s", {"email", "*"})) {
    out.problem = name + ": the key's s= is not for email (RFC 6376 §3.6.1)";
    return out;
  }
  auto der = dkim::base64_decode(t["p"]);
  if (der) {
    const auto* data = reinterpret_cast<const unsigned char*>(der->data());
    out.key.reset(d2i_PUBKEY(nullptr, &data, static_cast<long>(der->size())));
    if (!out.key) {
      data = reinterpret_cast<const unsigned char*>(der->data());
      out.key.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &data, static_cast<long>(der->size())));
    }
  }
  if (!out.key) out.problem = name + ": p= is not an RSA public key";
  return out;
}

bool rsa_sha256_verifies(EVP_PKEY* key, std::string_view data, const std::string& signature) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1)
    return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

std::string sha256(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &n, EVP_sha256(), nullptr);
  return {reinterpret_cast<const char*>(md.data()), n};
}

// One ARC header field with its instance number.
struct arc_field {
  int number = 0;
  const message::header_field* field = nullptr;
};

struct set_fields {
  std::vector<const message::header_field*> aar, ams, seal;
};

// i= of an ARC header: the tag-list's i= (the AAR's first item is "i=N" too, RFC 8617 §4.1.1).
// 0 when absent or not a number from 1 to 50.
int instance_of(std::string_view raw_value) {
  auto t = dkim::tags(raw_value);
  auto i = without_whitespace(t["i"]);
  if (i.empty() || i.size() > 2 || !std::all_of(i.begin(), i.end(), digit) || i[0] == '0') return 0;
  int n = std::stoi(i);
  return n <= max_instances ? n : 0;
}

class validator {
 public:
  validator(dns::lookups& dns, std::string_view raw) : dns_(dns) {
    fields_ = message::header_fields(raw);
    index_ = index_fields(fields_);
    auto sep = raw.find("\r\n\r\n");
    body_ = sep == std::string_view::npos ? std::string_view() : raw.substr(sep + 4);
  }

  result run();

 private:
  result fail(result r, int number, std::string reason) {
    r.cv = "fail";
    r.failed_instance = number > 0 ? std::optional<int>(number) : std::nullopt;
    r.reason = std::move(reason);
    return r;
  }
  // Checks the AMS of set n (RFC 8617 §5.1.1 step 4; RFC 6376 §6.1.3); problem says why not.
  bool ams_holds(const message::header_field& ams, instance& out, bool& temporary);
  // Checks the AS of set n over sets 1..n (RFC 8617 §5.1.2).
  bool seal_holds(int n, instance& out, bool& temporary);

  dns::lookups& dns_;
  std::string_view body_;
  std::vector<message::header_field> fields_;
  field_index index_;
  std::map<int, std::vector<std::string>> signed_names_;  // each AMS's h=, by instance
  std::map<int, set_fields> sets_;
  std::map<std::string, std::string> body_hashes_;       // by canonicalization and l=
  std::map<std::string, std::string> canonical_bodies_;  // by canonicalization
};

bool validator::ams_holds(const message::header_field& ams, instance& out, bool& temporary) {
  auto t = dkim::tags(ams.raw_value);
  for (const char* required : {"i", "a", "b", "bh", "d", "h", "s"})
    if (!t.count(required)) {
      out.problem = std::string("ARC-Message-Signature has no ") + required + "= tag";
      return false;
    }
  if (core::lowercase(without_whitespace(t["a"])) != "rsa-sha256") {
    out.problem =
        "ARC-Message-Signature a=" + cut(t["a"], 40) + " is not rsa-sha256 (RFC 8617 §4.1.2)";
    return false;
  }
  const auto& names = signed_names_[out.number];
  if (std::any_of(names.begin(), names.end(),
                  [](const std::string& h) { return core::lowercase(h) == "arc-seal"; })) {
    out.problem = "ARC-Message-Signature signs ARC-Seal, which it must not (RFC 8617 §4.1.2)";
    return false;
  }
  // c= as in DKIM (RFC 6376 §3.5): simple/simple when absent, simple for a missing body part.
  auto c = core::lowercase(without_whitespace(t.count("c") ? t["c"] : "simple/simple"));
  auto slash = c.find('/');
  auto hc = c.substr(0, slash), bc = slash == std::string::npos ? "simple" : c.substr(slash + 1);
  if ((hc != "simple" && hc != "relaxed") || (bc != "simple" && bc != "relaxed")) {
    out.problem = "ARC-Message-Signature has an unknown canonicalization c=" + cut(c, 40);
    return false;
  }
  std::optional<std::size_t> length;
  if (t.count("l")) {
    auto l = without_whitespace(t["l"]);
    if (l.empty() || l.size() > 18 || !std::all_of(l.begin(), l.end(), digit)) {
      out.problem = "ARC-Message-Signature has an invalid l=";
      return false;
    }
    length = std::stoull(l);
  }
  const auto bkey = bc + "/" + (length ? std::to_string(*length) : "");
  auto& hash = body_hashes_[bkey];
  if (hash.empty()) {
    auto& body = canonical_bodies_[bc];
    if (body.empty()) body = canonical_body(body_, bc == "relaxed");
    std::string_view hashed = body;
    if (length && *length < hashed.size()) hashed = hashed.substr(0, *length);
    hash = sha256(hashed);
  }
  auto bh = dkim::base64_decode(t["bh"]);
  if (!bh || *bh != hash) {
    out.problem = "ARC-Message-Signature body hash does not match: the body was changed";
    return false;
  }
  auto key = fetch_key(dns_, without_whitespace(t["s"]), without_whitespace(t["d"]));
  if (!key.key) {
    temporary = key.temporary;
    out.problem = "ARC-Message-Signature: " + key.problem;
    return false;
  }
  if (names.size() > max_signed_names) {
    out.problem = "ARC-Message-Signature signs more than " + std::to_string(max_signed_names) +
                  " header fields";
    return false;
  }
  std::string input = selected_headers(fields_, index_, names, hc == "relaxed");
  auto stripped = without_b_value(ams.raw_value);
  auto self =
      hc == "relaxed" ? relaxed_header(ams.name, stripped) : simple_header(ams.name, stripped);
  self.resize(self.size() - 2);  // without its CRLF (RFC 6376 §3.7)
  input += self;
  auto b = dkim::base64_decode(t["b"]);
  if (!b || !rsa_sha256_verifies(key.key.get(), input, *b)) {
    out.problem = "ARC-Message-Signature signature does not verify: a signed header was changed";
    return false;
  }
  return true;
}

bool validator::seal_holds(int n, instance& out, bool& temporary) {
  const auto& seal = *sets_[n].seal.front();
  auto t = dkim::tags(seal.raw_value);
  for (const char* required : {"i", "a", "b", "cv", "d", "s"})
    if (!t.count(required)) {
      out.problem = std::string("ARC-Seal has no ") + required + "= tag";
      return false;
    }
  if (t.count("h")) {
    out.problem = "ARC-Seal has an h= tag, which it must not (RFC 8617 §4.1.3)";
    return false;
  }
  if (core::lowercase(without_whitespace(t["a"])) != "rsa-sha256") {
    out.problem = "ARC-Seal a=" + cut(t["a"], 40) + " is not rsa-sha256 (RFC 8617 §4.1.3)";
    return false;
  }
  auto key = fetch_key(dns_, without_whitespace(t["s"]), without_whitespace(t["d"]));
  if (!key.key) {
    temporary = key.temporary;
    out.problem = "ARC-Seal: " + key.problem;
    return false;
  }
  // Every set up to this one, oldest first, each as AAR, AMS, AS, relaxed (§5.1.2); this AS last,
  // with its b= value removed and without its CRLF.
  std::string input;
  for (int k = 1; k <= n; ++k) {
    const auto& s = sets_[k];
    input += relaxed_header(s.aar.front()->name, s.aar.front()->raw_value);
    input += relaxed_header(s.ams.front()->name, s.ams.front()->raw_value);
    if (k < n) input += relaxed_header(s.seal.front()->name, s.seal.front()->raw_value);
  }
  auto self = relaxed_header(seal.name, without_b_value(seal.raw_value));
  self.resize(self.size() - 2);
  input += self;
  auto b = dkim::base64_decode(t["b"]);
  if (!b || !rsa_sha256_verifies(key.key.get(), input, *b)) {
    out.problem =
        "ARC-Seal signature does not verify: an earlier ARC header was changed or removed";
    return false;
  }
  return true;
}

result validator::run() {
  result r;
  // §5.2 step 1: collect the sets. An ARC header whose i= is unusable breaks the structure.
  int bad = 0;
  std::size_t count = 0;
  for (const auto& f : fields_) {
    const auto name = core::lowercase(f.name);
    const bool aar = name == "arc-authentication-results", ams = name == "arc-message-signature",
               seal = name == "arc-seal";
    if (!aar && !ams && !seal) continue;
    ++count;
    const int n = instance_of(f.raw_value);
    if (n == 0) {
      ++bad;
      continue;
    }
    auto& s = sets_[n];
    (aar ? s.aar : ams ? s.ams : s.seal).push_back(&f);
  }
  if (count == 0) return r;
  const int newest = sets_.empty() ? 0 : sets_.rbegin()->first;
  r.instances = newest;

  for (int k = 1; k <= newest; ++k) {
    instance in;
    in.number = k;
    auto it = sets_.find(k);
    if (it != sets_.end()) {
      const auto& s = it->second;
      if (!s.seal.empty()) {
        auto t = dkim::tags(s.seal.front()->raw_value);
        in.cv = cut(core::lowercase(without_whitespace(t["cv"])));
        in.seal_domain = cut(without_whitespace(t["d"]));
        in.seal_selector = cut(without_whitespace(t["s"]));
      }
      if (!s.ams.empty()) {
        auto t = dkim::tags(s.ams.front()->raw_value);
        in.ams_domain = cut(without_whitespace(t["d"]));
        in.ams_selector = cut(without_whitespace(t["s"]));
        signed_names_[k] = dkim::colon_list(without_whitespace(t["h"]));
        // The report shows the first of them, each cut; the check reads them all.
        for (const auto& n : signed_names_[k]) {
          if (in.ams_headers.size() == max_shown_names) break;
          in.ams_headers.push_back(cut(n, 64));
        }
      }
      if (!s.aar.empty()) {
        auto v = message::unfold(s.aar.front()->raw_value);
        auto semi = v.find(';');
        auto rest = semi == std::string::npos ? std::string() : core::trim(v.substr(semi + 1));
        auto next = rest.find(';');
        in.authserv_id = cut(core::trim(rest.substr(0, next)));
        in.results = next == std::string::npos ? "" : core::trim(rest.substr(next + 1));
        auto run = std::unique(in.results.begin(), in.results.end(),
                               [](char x, char y) { return wsp(x) && wsp(y); });
        in.results.erase(run, in.results.end());
        if (in.results.size() > max_results_text) in.results.resize(max_results_text);
      }
    }
    r.chain.push_back(std::move(in));
  }

  if (bad > 0)
    return fail(std::move(r), 0,
                "an ARC header has no usable i= (a number from 1 to 50, RFC 8617 §4.2.1)");
  // Step 2: a chain its newest sealer already judged failed stays failed.
  if (r.chain.back().cv == "fail")
    return fail(std::move(r), newest,
                "ARC-Seal i=" + std::to_string(newest) +
                    " carries cv=fail: the chain was "
                    "already broken when it was sealed (RFC 8617 §5.2 step 2)");
  // Step 3: the structure (§5.1.1): one of each header per instance, 1 to N without a gap, cv=
  // none on the first set and pass on the others.
  for (auto& in : r.chain) {
    auto it = sets_.find(in.number);
    const std::string i = "i=" + std::to_string(in.number);
    if (it == sets_.end())
      return fail(std::move(r), in.number,
                  "no ARC set " + i + ": the instances must run from 1 to " +
                      std::to_string(newest) + " (RFC 8617 §5.1.1)");
    const auto& s = it->second;
    for (const auto& [v, what] :
         {std::pair{&s.aar, "ARC-Authentication-Results"},
          std::pair{&s.ams, "ARC-Message-Signature"}, std::pair{&s.seal, "ARC-Seal"}}) {
      if (v->empty())
        return fail(std::move(r), in.number,
                    std::string("ARC set ") + i + " has no " + what + " (RFC 8617 §5.1.1)");
      if (v->size() > 1)
        return fail(std::move(r), in.number,
                    std::string("ARC set ") + i + " has " + std::to_string(v->size()) + " " + what +
                        " fields (RFC 8617 §5.1.1)");
    }
    const std::string want = in.number == 1 ? "none" : "pass";
    if (in.cv != want)
      return fail(std::move(r), in.number,
                  "ARC-Seal " + i + " has cv=" + (in.cv.empty() ? "(none)" : in.cv) +
                      " where cv=" + want + " belongs (RFC 8617 §4.1.3, §5.1.1)");
  }
  // Step 4: the newest AMS must hold. Step 5: the older ones, for oldest_pass (the sets whose
  // AMS still hold show where the message was changed).
  bool temporary = false;
  for (int k = newest; k >= 1; --k) {
    auto& in = r.chain[static_cast<std::size_t>(k - 1)];
    bool temp = false;
    in.ams_valid = ams_holds(*sets_[k].ams.front(), in, temp);
    if (k == newest && !*in.ams_valid) {
      r.temporary = temp;
      return fail(std::move(r), k, in.problem);
    }
    if (!*in.ams_valid) {
      r.oldest_pass = k + 1;  // §5.2 step 5: the next newer set
      break;
    }
  }
  if (!r.oldest_pass) r.oldest_pass = 0;  // every AMS validates
  // Step 6: every AS, newest first.
  for (int k = newest; k >= 1; --k) {
    auto& in = r.chain[static_cast<std::size_t>(k - 1)];
    in.seal_valid = seal_holds(k, in, temporary);
    if (!*in.seal_valid) {
      r.temporary = temporary;
      return fail(std::move(r), k, in.problem);
    }
  }
  r.cv = "pass";
  return r;
}

}  // namespace

std::string relaxed_header(std::string_view name, std::string_view raw_value) {
  // RFC 6376 §3.4.2: lowercase name; unfold; runs of WSP become one SP; WSP at the end of the
  // value and around the colon removed.
  std::string out = core::lowercase(core::trim(name)) + ":";
  std::string v;
  bool space = false;
  for (char c : raw_value) {
    if (c == '\r' || c == '\n') continue;
    if (wsp(c)) {
      space = true;
      continue;
    }
    if (space && !v.empty()) v += ' ';
    space = false;
    v += c;
  }
  return out + v + "\r\n";
}

std::string canonical_body(std::string_view body, bool relaxed) {
  std::string out;
  out.reserve(body.size());
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto eol = body.find("\r\n", pos);
    auto line =
        body.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (relaxed) {
      // §3.4.4: WSP at the end of the line removed, other runs of WSP one SP.
      std::string l;
      bool space = false;
      for (char c : line) {
        if (wsp(c)) {
          space = true;
          continue;
        }
        if (space) l += ' ';
        space = false;
        l += c;
      }
      out += l;
    } else {
      out += line;
    }
    out += "\r\n";
    if (eol == std::string_view::npos) break;
    pos = eol + 2;
  }
  // Empty lines at the end removed (§3.4.3, §3.4.4); simple keeps one CRLF for an empty body.
  while (out.size() >= 4 && out.compare(out.size() - 4, 4, "\r\n\r\n") == 0)
    out.resize(out.size() - 2);
  if (out == "\r\n") out.clear();
  if (out.empty() && !relaxed) out = "\r\n";
  return out;
}

result validate(dns::lookups& dns, std::string_view raw) { return validator(dns, raw).run(); }

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r) {
  boost::json::array chain;
  const auto verdict = [](const std::optional<bool>& b) -> boost::json::value {
    if (!b) return "not_checked";
    return *b ? "pass" : "fail";
  };
  for (const auto& in : r.chain)
    chain.push_back({{"instance", in.number},
                     {"cv", in.cv},
                     {"seal_domain", in.seal_domain},
                     {"seal_selector", in.seal_selector},
                     {"ams_domain", in.ams_domain},
                     {"ams_selector", in.ams_selector},
                     {"ams_headers", core::string_array(in.ams_headers)},
                     {"ams", verdict(in.ams_valid)},
                     {"seal", verdict(in.seal_valid)},
                     {"authserv_id", in.authserv_id},
                     {"results", in.results},
                     {"problem", in.problem.empty() ? boost::json::value(nullptr)
                                                    : boost::json::value(in.problem)}});
  v = {{"cv", r.cv},
       {"reason", core::optional_json(r.reason)},
       {"failed_instance", core::optional_json(r.failed_instance)},
       {"temporary", r.temporary},
       {"instances", r.instances},
       {"oldest_pass", core::optional_json(r.oldest_pass)},
       {"chain", std::move(chain)}};
}

result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  result r;
  r.cv = text(o, "cv");
  r.reason = optional_field<std::string>(o, "reason");
  r.failed_instance = optional_field<int>(o, "failed_instance");
  r.temporary = field<bool>(o, "temporary");
  r.instances = field<int>(o, "instances");
  r.oldest_pass = optional_field<int>(o, "oldest_pass");
  for (const auto& item : member(o, "chain").as_array()) {
    const auto& c = object_of(item);
    instance in;
    in.number = field<int>(c, "instance");
    in.cv = text(c, "cv");
    in.seal_domain = text(c, "seal_domain");
    in.seal_selector = text(c, "seal_selector");
    in.ams_domain = text(c, "ams_domain");
    in.ams_selector = text(c, "ams_selector");
    in.ams_headers = field<std::vector<std::string>>(c, "ams_headers");
    const auto verdict = [&](std::string_view key) -> std::optional<bool> {
      auto s = text(c, key);
      if (s == "not_checked") return std::nullopt;
      return s == "pass";
    };
    in.ams_valid = verdict("ams");
    in.seal_valid = verdict("seal");
    in.authserv_id = text(c, "authserv_id");
    in.results = text(c, "results");
    in.problem = optional_field<std::string>(c, "problem").value_or("");
    r.chain.push_back(std::move(in));
  }
  return r;
}

}  // namespace mxlens::analyzers::arc
