// libFuzzer target for everything that parses untrusted credentials and
// tokens: API keys and connection tokens, master keyrings and page tokens.
// Built and run by run_fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
//
// Properties checked beyond "no crash, no sanitizer report":
//   - a token that parses is exactly kTokenLength long and carries the prefix
//     of the kind it parsed as;
//   - a page token decodes only for the scope it was made for.

#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "server/auth/token_format.h"
#include "server/common/names.h"
#include "server/crypto/keyring.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  auto kind = switchyard::auth::ParseToken(input);
  if (kind.ok()) {
    if (input.size() != switchyard::auth::kTokenLength) std::abort();
    const char expected = *kind == switchyard::auth::TokenKind::kOperator ? 'o'
                          : *kind == switchyard::auth::TokenKind::kTenant ? 't'
                                                                          : 'c';
    if (input[2] != expected) std::abort();
  }

  (void)switchyard::crypto::MasterKeyring::Parse(input);

  auto key = switchyard::DecodePageToken(input, "scope-a");
  if (key.ok() && !key->empty()) {
    if (switchyard::DecodePageToken(input, "scope-b").ok()) std::abort();
  }
  (void)switchyard::ParseName("name", input, {"tenants", "connections"});
  (void)switchyard::ValidateRequestId(input);
  return 0;
}
