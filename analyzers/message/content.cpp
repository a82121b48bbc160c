// The message as the header, unsubscribe and content checks see it: MIME structure, charsets and
// links through GMime (its parser reports what it found wrong), and the line-level facts from the
// raw header block. Every walk is bounded (parts, depth, decoded size, list lengths).
#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>

#include "analyzers/message/message.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::message {

namespace {

constexpr std::size_t max_findings = 20;
constexpr std::size_t max_line = 998;  // RFC 5322 §2.1.1

void add(std::vector<std::string>& list, std::string text) {
  if (list.size() < max_findings && std::find(list.begin(), list.end(), text) == list.end())
    list.push_back(std::move(text));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(const std::string& s) { return core::lowercase(s); }

bool charset_known(const std::string& charset) {
  iconv_t cd = g_mime_iconv_open("UTF-8", charset.c_str());
  // (iconv_t)-1 is iconv_open's documented error value (POSIX).
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;  // NOLINT(performance-no-int-to-ptr)
  g_mime_iconv_close(cd);
  return true;
}

// RFC 2047 §2: =?charset?encoding?encoded-text?= , at most 75 characters.
void check_encoded_words(const header_field& f, std::vector<std::string>& problems) {
  const std::string& v = f.raw_value;
  std::size_t pos = 0;
  while ((pos = v.find("=?", pos)) != std::string::npos) {
    auto q1 = v.find('?', pos + 2);
    auto q2 = q1 == std::string::npos ? q1 : v.find('?', q1 + 1);
    auto end = q2 == std::string::npos ? q2 : v.find("?=", q2 + 1);
    const std::string where = "encoded word in " + f.name;
    if (end == std::string::npos) {
      add(problems, where + " is not terminated");
      return;
    }
    std::string charset = v.substr(pos + 2, q1 - pos - 2);
    if (auto star = charset.find('*'); star != std::string::npos) charset.resize(star);  // RFC 2231
    const std::string enc = v.substr(q1 + 1, q2 - q1 - 1);
    const std::string text = v.substr(q2 + 1, end - q2 - 1);
    const std::size_t length = end + 2 - pos;
    if (length > 75) add(problems, where + " is longer than 75 characters");
    if (text.find_first_of(" \t\r\n") != std::string::npos) {
      add(problems, where + " contains white space");
    } else if (!iequals(enc, "B") && !iequals(enc, "Q")) {
      add(problems, where + " has unknown encoding '" + enc + "'");
    } else if (iequals(enc, "B") &&
               (text.size() % 4 != 0 ||
                text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789+/=") != std::string::npos)) {
      add(problems, where + " is not valid base64");
    } else if (charset.empty() || !charset_known(charset)) {
      add(problems, where + " has unknown charset '" + charset + "'");
    }
    pos = end + 2;
  }
}

void on_warning(gint64, GMimeParserWarning code, const gchar* item, gpointer data) {
  auto* out = static_cast<content_facts*>(data);
  static constexpr std::array<const char*, 17> names{"",
                                                     "duplicated header",
                                                     "duplicated parameter",
                                                     "unencoded 8-bit header",
                                                     "invalid content type",
                                                     "invalid RFC 2047 header value",
                                                     "malformed multipart",
                                                     "truncated message",
                                                     "malformed message",
                                                     "invalid header name",
                                                     "conflicting header",
                                                     "conflicting parameter",
                                                     "multipart without boundary",
                                                     "invalid parameter",
                                                     "invalid address list",
                                                     "MIME nesting too deep",
                                                     "part without content"};
  std::string text = static_cast<std::size_t>(code) < names.size() ? names[code] : "parser warning";
  if (code == GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT) text = "part without headers or content";
  if (item && *item) text += ": " + std::string(item).substr(0, 80);
  add(out->parser_warnings, text);
  if (code == GMIME_CRIT_NESTING_OVERFLOW) out->limited = true;
}

// The raw header block: line lengths, field names, 8-bit octets.
void check_header_lines(std::string_view raw, bool smtputf8, content_facts& out) {
  std::size_t pos = 0;
  bool eight_bit = false;
  while (pos < raw.size()) {
    auto eol = raw.find('\n', pos);
    auto end = eol == std::string_view::npos ? raw.size() : eol;
    auto line = raw.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line.size() > max_line)
      add(out.header_problems,
          "a header line is " + std::to_string(line.size()) + " octets (RFC 5322 limit: 998)");
    if (line.front() != ' ' && line.front() != '\t') {
      auto colon = line.find(':');
      auto name = line.substr(0, colon == std::string_view::npos ? 0 : colon);
      bool valid =
          colon != std::string_view::npos && !name.empty() &&
          std::all_of(name.begin(), name.end(), [](char c) {
            return static_cast<unsigned char>(c) >= 33 && static_cast<unsigned char>(c) <= 126;
          });
      if (!valid)
        add(out.header_problems,
            "malformed header line: '" + std::string(line.substr(0, 40)) + "'");
    }
    for (unsigned char c : line) {
      if (c == 0) add(out.header_problems, "NUL octet in the header");
      if (c >= 0x80) eight_bit = true;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  if (eight_bit && !smtputf8)
    add(out.header_problems, "raw 8-bit octets in the header without SMTPUTF8 (RFC 6532)");
}

std::string decoded_content(GMimePart* part, std::size_t limit, bool& too_big) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  too_big = false;
  if (!content) return {};
  GMimeStream* source = g_mime_data_wrapper_get_stream(content);
  if (source && g_mime_stream_length(source) > static_cast<gint64>(limit)) {
    too_big = true;
    return {};
  }
  GMimeStream* mem = g_mime_stream_mem_new();
  g_mime_data_wrapper_write_to_stream(content, mem);
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
  std::string out(reinterpret_cast<const char*>(bytes->data),
                  std::min<std::size_t>(bytes->len, limit));
  g_object_unref(mem);
  return out;
}

// The visible text of an HTML document (tags, scripts and styles removed, a space for each tag),
// and its images. A counting heuristic, not a renderer.
std::string scan_html(const std::string& html, content_facts& out) {
  const std::string l = lower(html);
  std::string text;
  std::size_t i = 0, visible = 0;
  while (i < l.size()) {
    if (l[i] == '<') {
      for (const char* block : {"script", "style"}) {
        if (l.compare(i + 1, std::strlen(block), block) == 0) {
          auto close = l.find(std::string("</") + block, i);
          i = close == std::string::npos ? l.size() : close;
          break;
        }
      }
      if (l.compare(i, 4, "<img") == 0) ++out.images;
      auto close = l.find('>', i);
      i = close == std::string::npos ? l.size() : close + 1;
      text += ' ';
      continue;
    }
    if (!std::isspace(static_cast<unsigned char>(l[i]))) ++visible;
    text += html[i];
    ++i;
  }
  out.text_chars += visible;
  return text;
}

void add_placeholders(std::string_view text, const std::string& where, content_facts& out) {
  for (auto& p : find_placeholders(text, max_placeholders)) {
    if (out.placeholders.size() >= max_placeholders) return;
    out.placeholders.push_back({std::move(p), where});
  }
}

void scan_links(const std::string& text, content_facts& out) {
  const std::string l = lower(text);
  for (const char* scheme : {"http://", "https://"}) {
    std::size_t pos = 0;
    while ((pos = l.find(scheme, pos)) != std::string::npos && out.links.size() < max_links) {
      auto end = l.find_first_of(" \t\r\n\"'<>()", pos);
      out.links.push_back(text.substr(pos, (end == std::string::npos ? l.size() : end) - pos));
      pos = end == std::string::npos ? l.size() : end;
    }
  }
}

void inspect_leaf(GMimeObject* obj, int depth, content_facts& out) {
  GMimeContentType* ct = g_mime_object_get_content_type(obj);
  part_facts p;
  p.depth = depth;
  if (ct) {
    char* mime = g_mime_content_type_get_mime_type(ct);
    p.content_type = lower(mime ? mime : "");
    g_free(mime);
    const char* cs = g_mime_content_type_get_parameter(ct, "charset");
    p.charset = cs ? cs : "";
  }
  const char* cte = g_mime_object_get_header(obj, "Content-Transfer-Encoding");
  p.encoding = cte ? lower(unfold(cte)) : "";
  const char* disposition = g_mime_object_get_disposition(obj);
  p.attachment = disposition && iequals(disposition, "attachment");
  if (!p.encoding.empty() && p.encoding != "7bit" && p.encoding != "8bit" &&
      p.encoding != "binary" && p.encoding != "quoted-printable" && p.encoding != "base64")
    add(out.mime_problems, "unknown Content-Transfer-Encoding '" + p.encoding + "'");

  if (p.content_type.rfind("image/", 0) == 0) ++out.images;
  const bool text = p.content_type.rfind("text/", 0) == 0 && !p.attachment;
  if (text && GMIME_IS_PART(obj)) {
    bool too_big = false;
    std::string body = decoded_content(GMIME_PART(obj), max_decoded_text, too_big);
    if (too_big) {
      out.limited = true;
      add(out.mime_problems, "a " + p.content_type + " part over " +
                                 std::to_string(max_decoded_text >> 20) + " MiB was not inspected");
    }
    p.decoded_size = body.size();
    const bool eight_bit = std::any_of(
        body.begin(), body.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    if (p.charset.empty()) {
      if (eight_bit)
        add(out.charset_problems, p.content_type + " part has 8-bit text but no charset");
    } else if (!charset_known(p.charset)) {
      add(out.charset_problems,
          p.content_type + " part declares unknown charset '" + p.charset + "'");
    } else if (eight_bit) {
      GError* err = nullptr;
      gsize read = 0, written = 0;
      gchar* utf8 = g_convert(body.data(), static_cast<gssize>(body.size()), "UTF-8",
                              p.charset.c_str(), &read, &written, &err);
      if (err || !utf8) {
        add(out.charset_problems, p.content_type + " part does not decode as " + p.charset);
      }
      if (err) g_error_free(err);
      g_free(utf8);
    }
    if (p.content_type == "text/html") {
      out.has_html = true;
      out.html_size = std::max(out.html_size, body.size());
      add_placeholders(scan_html(body, out), p.content_type, out);
      scan_links(body, out);
    } else if (p.content_type == "text/plain") {
      out.has_text_plain = true;
      out.text_chars +=
          static_cast<std::size_t>(std::count_if(body.begin(), body.end(), [](char c) {
            return !std::isspace(static_cast<unsigned char>(c));
          }));
      add_placeholders(body, p.content_type, out);
      scan_links(body, out);
    }
  }
  out.parts.push_back(std::move(p));
}

struct gobject_deleter {
  void operator()(gpointer p) const { g_object_unref(p); }
};

}  // namespace

int count(const std::vector<header_field>& fields, std::string_view name) {
  return static_cast<int>(std::count_if(
      fields.begin(), fields.end(), [&](const header_field& f) { return iequals(f.name, name); }));
}

std::optional<std::string> first(const std::vector<header_field>& fields, std::string_view name) {
  for (const auto& f : fields)
    if (iequals(f.name, name)) return unfold(f.raw_value);
  return std::nullopt;
}

content_facts inspect(std::string_view raw, bool smtputf8) {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
  content_facts out;
  out.fields = header_fields(raw);
  out.from = from(out.fields);
  out.received = read_received(out.fields);
  auto sep = raw.find("\r\n\r\n");
  auto sep_len = 4;
  if (sep == std::string_view::npos) {
    sep = raw.find("\n\n");
    sep_len = 2;
  }
  out.body_size = sep == std::string_view::npos ? 0 : raw.size() - sep - sep_len;
  check_header_lines(raw, smtputf8, out);
  for (const auto& f : out.fields) check_encoded_words(f, out.header_problems);

  GMimeParserOptions* options = g_mime_parser_options_new();
  g_mime_parser_options_set_warning_callback(options, on_warning, &out);
  GMimeStream* stream = g_mime_stream_mem_new_with_buffer(raw.data(), raw.size());
  GMimeParser* parser = g_mime_parser_new_with_stream(stream);
  g_object_unref(stream);
  std::unique_ptr<GMimeMessage, gobject_deleter> message(
      g_mime_parser_construct_message(parser, options));
  g_object_unref(parser);
  if (!message) {
    add(out.mime_problems, "the message could not be parsed");
    g_mime_parser_options_free(options);
    return out;
  }

  // The Subject as a reader sees it: RFC 2047 encoded words decoded by GMime.
  if (const char* subject = g_mime_message_get_subject(message.get()))
    add_placeholders(subject, "Subject", out);

  const bool has_version = count(out.fields, "MIME-Version") > 0;
  const bool has_mime_headers =
      count(out.fields, "Content-Type") > 0 || count(out.fields, "Content-Transfer-Encoding") > 0;
  out.mime_used = has_version || has_mime_headers;
  if (has_mime_headers && !has_version)
    add(out.mime_problems,
        "Content-Type or Content-Transfer-Encoding without MIME-Version (RFC 2045 §4)");

  // Iterative walk, bounded in parts and depth.
  std::vector<std::pair<GMimeObject*, int>> stack;
  if (GMimeObject* top = g_mime_message_get_mime_part(message.get())) stack.emplace_back(top, 0);
  while (!stack.empty()) {
    auto [obj, depth] = stack.back();
    stack.pop_back();
    if (++out.parts_seen > max_parts) {
      out.limited = true;
      continue;  // counted, not inspected
    }
    if (depth > max_depth) {
      out.limited = true;
      continue;
    }
    if (GMIME_IS_MULTIPART(obj)) {
      auto* mp = GMIME_MULTIPART(obj);
      const char* boundary = g_mime_multipart_get_boundary(mp);
      const int n = g_mime_multipart_get_count(mp);
      if (!boundary) {
        add(out.mime_problems, "a multipart has no boundary parameter");
      } else {
        const std::string close = "--" + std::string(boundary) + "--";
        if (raw.find(close) == std::string_view::npos)
          add(out.mime_problems,
              "multipart boundary '" + std::string(boundary).substr(0, 70) + "' is never closed");
      }
      if (n == 0) add(out.mime_problems, "a multipart has no parts");
      for (int i = n - 1; i >= 0; --i)
        stack.emplace_back(g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
      GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
      if (inner && g_mime_message_get_mime_part(inner))
        stack.emplace_back(g_mime_message_get_mime_part(inner), depth + 1);
    } else {
      inspect_leaf(obj, depth, out);
    }
  }
  if (out.limited)
    add(out.mime_problems, "more than " + std::to_string(max_parts) + " parts or " +
                               std::to_string(max_depth) + " levels: the rest was not inspected");
  for (const auto& w : out.parser_warnings) {
    if (w.rfind("malformed multipart", 0) == 0 || w.rfind("multipart without boundary", 0) == 0 ||
        w.rfind("part without", 0) == 0 || w.rfind("MIME nesting", 0) == 0 ||
        w.rfind("invalid content type", 0) == 0 || w.rfind("truncated message", 0) == 0)
      add(out.mime_problems, w);
    if (w.rfind("invalid RFC 2047", 0) == 0 || w.rfind("invalid header name", 0) == 0)
      add(out.header_problems, w);
  }
  g_mime_parser_options_free(options);
  return out;
}

}  // namespace mxlens::analyzers::message
