#include "analyzers/message/message.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <iterator>
#include <mutex>

#include "analyzers/dns/idn.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::message {

std::vector<header_field> header_fields(std::string_view raw) {
  std::vector<header_field> out;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    auto eol = raw.find('\n', pos);
    auto line_end = eol == std::string_view::npos ? raw.size() : eol;
    auto line = raw.substr(pos, line_end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of the header block
    if ((line.front() == ' ' || line.front() == '\t') && !out.empty()) {
      out.back().raw_value += "\r\n";
      out.back().raw_value += line;
    } else {
      auto colon = line.find(':');
      if (colon != std::string_view::npos) {
        auto name = line.substr(0, colon);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
        out.push_back({std::string(name), std::string(line.substr(colon + 1))});
      }
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return out;
}

std::string unfold(std::string_view value) {
  std::string out;
  for (char c : value)
    if (c != '\r' && c != '\n') out += c;
  auto b = out.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  auto e = out.find_last_not_of(" \t");
  return out.substr(b, e - b + 1);
}

namespace {

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

// The mailboxes of the list, groups expanded, as GMime gives them.
void collect(InternetAddressList* list, std::vector<std::string>& out) {
  for (int i = 0; i < internet_address_list_length(list); ++i) {
    InternetAddress* ia = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_GROUP(ia)) {
      collect(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out);
    } else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
      const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
      if (addr) out.emplace_back(addr);
    }
  }
}

std::vector<std::string> mailboxes(const std::string& value) {
  std::vector<std::string> out;
  InternetAddressList* list = internet_address_list_parse(nullptr, value.c_str());
  if (!list) return out;
  collect(list, out);
  g_object_unref(list);
  return out;
}

// GMime turns each label that starts with a lowercase "xn--" into U-labels, and one that is
// not valid Punycode into something else ("xn--abc" into nothing, docs/libraries.md §7). The
// domains are read from the value with that prefix in capitals, which GMime leaves as written,
// so that libidn2 judges the A-labels the sender wrote.
std::vector<std::string> written_mailboxes(std::string value) {
  for (auto at = value.find("xn--"); at != std::string::npos; at = value.find("xn--", at))
    value.replace(at, 2, "XN");
  return mailboxes(value);
}

}  // namespace

std::vector<std::string> parse_addresses(const std::string& value) {
  init_gmime();
  return mailboxes(value);
}

from_addresses from(const std::vector<header_field>& fields) {
  from_addresses out;
  const header_field* field = nullptr;
  for (const auto& f : fields) {
    if (core::lowercase(f.name) == "from") {
      ++out.fields;
      if (!field) field = &f;
    }
  }
  if (out.fields != 1) return out;
  init_gmime();
  const std::string value = unfold(field->raw_value);
  out.addresses = mailboxes(value);
  auto written = value.find("xn--") == std::string::npos ? out.addresses : written_mailboxes(value);
  if (written.size() != out.addresses.size()) written = out.addresses;
  for (const auto& a : written) {
    const auto at = a.rfind('@');
    if (at == std::string::npos || at + 1 == a.size()) continue;
    // RFC 8616 §3: the domain is read in A-labels, whichever form the field used.
    auto domain = dns::idn(a.substr(at + 1)).ascii;
    if (std::find(out.domains.begin(), out.domains.end(), domain) == out.domains.end())
      out.domains.push_back(std::move(domain));
  }
  return out;
}

std::optional<std::int64_t> parse_date(std::string v) {
  // Comments are not expected in Date; drop a trailing one such as "(UTC)".
  if (auto paren = v.find('('); paren != std::string::npos) v.resize(paren);
  std::vector<std::string> tok;
  std::string cur;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == ',') {
      if (!cur.empty()) tok.push_back(cur);
      cur.clear();
      if (c == ',') tok.push_back(",");
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) tok.push_back(cur);
  static const char* days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::size_t i = 0;
  if (tok.size() >= 2 && tok[1] == ",") {
    if (std::find(std::begin(days), std::end(days), tok[0]) == std::end(days)) return std::nullopt;
    i = 2;
  }
  if (tok.size() != i + 5) return std::nullopt;
  auto digits = [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
  };
  const auto &day = tok[i], &mon = tok[i + 1], &year = tok[i + 2], &time = tok[i + 3],
             &zone = tok[i + 4];
  if (!digits(day) || day.size() > 2) return std::nullopt;
  auto m = std::find(std::begin(months), std::end(months), mon);
  if (m == std::end(months)) return std::nullopt;
  if (!digits(year) || year.size() < 2 || year.size() > 4) return std::nullopt;
  int hh = 0, mm = 0, ss = 0;
  if (time.size() == 8 && time[2] == ':' && time[5] == ':' && digits(time.substr(0, 2)) &&
      digits(time.substr(3, 2)) && digits(time.substr(6, 2))) {
    hh = std::stoi(time.substr(0, 2));
    mm = std::stoi(time.substr(3, 2));
    ss = std::stoi(time.substr(6, 2));
  } else if (time.size() == 5 && time[2] == ':' && digits(time.substr(0, 2)) &&
             digits(time.substr(3, 2))) {
    hh = std::stoi(time.substr(0, 2));
    mm = std::stoi(time.substr(3, 2));
  } else {
    return std::nullopt;
  }
  int offset = 0;
  if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-') && digits(zone.substr(1))) {
    offset = (std::stoi(zone.substr(1, 2)) * 60 + std::stoi(zone.substr(3, 2))) *
             (zone[0] == '-' ? -1 : 1);
  } else {
    static const std::pair<const char*, int> named[] = {
        {"UT", 0},     {"GMT", 0},    {"EST", -300}, {"EDT", -240}, {"CST", -360},
        {"CDT", -300}, {"MST", -420}, {"MDT", -360}, {"PST", -480}, {"PDT", -420}};
    auto z =
        std::find_if(std::begin(named), std::end(named), [&](auto& p) { return zone == p.first; });
    if (z == std::end(named)) return std::nullopt;
    offset = z->second;
  }
  int y = std::stoi(year);
  if (year.size() == 2) y += y < 50 ? 2000 : 1900;  // §4.3
  int d = std::stoi(day);
  if (d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = static_cast<int>(m - std::begin(months));
  tm.tm_mday = d;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  return static_cast<std::int64_t>(timegm(&tm)) - std::int64_t{offset} * 60;
}

}  // namespace mxlens::analyzers::message
