#ifndef SWITCHYARD_TESTS_SUPPORT_TEMP_DIR_H_
#define SWITCHYARD_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace switchyard::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object is destroyed. Not thread-safe.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole content of the file at `path` ("" when it cannot be read).
std::string ReadFile(const std::string& path);
// The same without leading and trailing whitespace (one-line files: keys,
// URLs, passwords).
std::string ReadTrimmedFile(const std::string& path);

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_TEMP_DIR_H_
