// How bytes are shown: printable() for any text, ascii_escaped() and non_ascii_item() for
// records whose grammar is ASCII.
#include "core/text.hpp"

#include <catch2/catch.hpp>

using namespace mxlens;

TEST_CASE("printable shows only bytes that are not UTF-8 as \\xHH (RFC 3629 §4)", "[core]") {
  CHECK(core::printable("caf\xE9") == "caf\\xE9");
  CHECK(core::printable("caf\xC3\xA9") == "caf\xC3\xA9");
  CHECK(core::printable("\xEF\xBB\xBFv=spf1") == "\xEF\xBB\xBFv=spf1");  // a BOM is UTF-8
}

TEST_CASE("terminal_safe shows control characters instead of passing them on", "[core]") {
  // An escape sequence (ESC [ 2 J clears the screen), line ends, DEL: shown, not run.
  CHECK(core::terminal_safe("a\x1b[2Jb\r\nc\x7f\t") == "a\\x1B[2Jb\\x0D\\x0Ac\\x7F\\x09");
  // U+009B is CSI to a terminal reading C1 controls; the bidi overrides reorder what is shown.
  CHECK(core::terminal_safe("x\xC2\x9B"
                            "2Jy") == "x\\u009B2Jy");
  CHECK(core::terminal_safe("\xE2\x80\xAE"
                            "evil") == "\\u202Eevil");
  // Text that is not UTF-8 as printable() shows it; other UTF-8 as it is.
  CHECK(core::terminal_safe("caf\xE9 caf\xC3\xA9 \xE2\x9C\x93") ==
        "caf\\xE9 caf\xC3\xA9 \xE2\x9C\x93");
  CHECK(core::terminal_safe("plain") == "plain");
}

TEST_CASE("ascii_escaped shows every byte outside printable ASCII, UTF-8 or not", "[core]") {
  CHECK(core::ascii_escaped("\xEF\xBB\xBFv=spf1 -all") == "\\xEF\\xBB\\xBFv=spf1 -all");
  CHECK(core::ascii_escaped("a\x80z\tb") == "a\\x80z\\x09b");
  CHECK(core::ascii_escaped("plain text") == "plain text");
}

TEST_CASE("non_ascii_item names the item holding the first byte that is not ASCII", "[core]") {
  CHECK(core::non_ascii_item("v=spf1 ip4:192.0.2.1 -all", ' ').empty());
  CHECK(core::non_ascii_item("v=spf1 ip4:192.0.2.1 \x96"
                             "all",
                             ' ') == "\\x96all");
  CHECK(core::non_ascii_item("v=DMARC1;  p=rej\x80"
                             "ect ; rua=mailto:a@example.com",
                             ';') == "p=rej\\x80ect");
  CHECK(core::non_ascii_item("\xEF\xBB\xBFv=DKIM1; p=AAAA", ';') == "\\xEF\\xBB\\xBFv=DKIM1");
  // A long item: 16 characters either side of the bytes, after its name.
  const std::string p = "p=" + std::string(40, 'A') + "\xC3\xA9" + std::string(40, 'B');
  CHECK(core::non_ascii_item("v=DKIM1; " + p, ';') ==
        "p=..." + std::string(16, 'A') + "\\xC3\\xA9" + std::string(16, 'B') + "...");
  // Near the start of an item nothing is cut before the bytes.
  CHECK(core::non_ascii_item("x\x80" + std::string(40, 'y'), ' ') ==
        "x\\x80" + std::string(16, 'y') + "...");
}

TEST_CASE("terminal_safe shows control characters, C1 included, never sends them", "[core]") {
  CHECK(core::terminal_safe("a\x1b[31mred\x1b[0m") == "a\\x1B[31mred\\x1B[0m");
  CHECK(core::terminal_safe("\x1b]0;title\x07 tab\there\r\n") ==
        "\\x1B]0;title\\x07 tab\\x09here\\x0D\\x0A");
  CHECK(core::terminal_safe("del\x7f") == "del\\x7F");
  // U+009B is CSI to a terminal, as ESC [ is; U+0085 (NEL) moves the cursor.
  CHECK(core::terminal_safe("\xC2\x9B"
                            "31m \xC2\x85") == "\\u009B31m \\u0085");
  // Other UTF-8 stays, bytes that are not UTF-8 are shown as printable() shows them.
  CHECK(core::terminal_safe("caf\xC3\xA9 \xC2\xA0 caf\xE9") == "caf\xC3\xA9 \xC2\xA0 caf\\xE9");
}

TEST_CASE("printable_json writes control characters as \\u escapes, meaning the same", "[core]") {
  const std::string value =
      "a\x1b[31m \xC2\x9B"
      "31m \x7f \xC3\xA9";
  const auto text = core::printable_json(boost::json::value(value));
  CHECK(text == "\"a\\u001B[31m \\u009B31m \\u007F \xC3\xA9\"");
  CHECK(core::parse_stored(text).as_string() == value);
}
