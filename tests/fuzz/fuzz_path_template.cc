// Route path templates (dataplane/routing/path_template.h): the first line of the input is a
// template, the rest a request path. Invariants: a template that parses parses again from its own
// text to the same shape and segments; a match binds exactly the template's parameters, in order.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/routing/path_template.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using wsgate::dataplane::PathTemplate;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view text = input.substr(0, nl);
  const std::string_view path =
      nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);

  auto tmpl = PathTemplate::Parse(text);
  if (!tmpl.ok()) {
    (void)PathTemplate::Parse(input);
    return 0;
  }
  FUZZ_CHECK(tmpl->text() == text);
  const std::string shape = tmpl->Shape();
  auto again = PathTemplate::Parse(tmpl->text());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->Shape() == shape);
  FUZZ_CHECK(again->segments().size() == tmpl->segments().size());
  size_t params = 0;
  for (const auto& seg : tmpl->segments()) params += seg.is_param ? 1 : 0;

  for (std::string_view p : {path, text, std::string_view("/"), input}) {
    auto match = tmpl->Match(p);
    if (!match) continue;
    FUZZ_CHECK(match->size() == params);
    size_t i = 0;
    for (const auto& seg : tmpl->segments()) {
      if (!seg.is_param) continue;
      FUZZ_CHECK((*match)[i].first == seg.text);
      ++i;
    }
  }
  return 0;
}
