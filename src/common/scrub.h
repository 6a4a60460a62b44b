// The one place secrets are masked out of text that leaves a layer: error
// messages built from a server's answer, log lines. Defence in depth: no
// message is built from a secret on purpose, but a server may echo what it
// was sent, or an exception may quote it.
//
// Thread-safety: a pure function.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

namespace kindling {

// Secrets shorter than this are left alone: no credential is that short, and
// masking every "a" or "key" would garble the text without protecting
// anything.
inline constexpr std::size_t kMinScrubbedSecretSize = 4;

// `text` with every occurrence of each of `secrets` replaced by `mark`, in one
// left-to-right pass over `text`: where occurrences overlap, the one that
// starts first is masked (the longest of those starting at the same place),
// and the text after it is searched on. Only the input is searched, never
// what was written, so a mark that holds a secret (or the reverse) cannot
// make it loop or mask the mark. Empty and short secrets
// (kMinScrubbedSecretSize) are ignored.
std::string ScrubSecrets(std::string_view text, std::initializer_list<std::string_view> secrets,
                         std::string_view mark = "[redacted]");

}  // namespace kindling
