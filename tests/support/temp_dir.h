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

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_TEMP_DIR_H_
