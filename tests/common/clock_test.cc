#include "server/common/clock.h"

#include <gtest/gtest.h>

namespace switchyard {
namespace {

TEST(ManualClockTest, NowAndSteadyMoveTogetherOnlyWhenAdvanced) {
  ManualClock clock(absl::FromUnixSeconds(1000));
  const absl::Duration steady = clock.Steady();
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.Steady(), steady);
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000) + absl::Milliseconds(250));
  EXPECT_EQ(clock.Steady() - steady, absl::Milliseconds(250));
}

TEST(SystemClockTest, SteadyNeverGoesBack) {
  Clock& clock = SystemClock();
  absl::Duration last = clock.Steady();
  for (int i = 0; i < 1000; ++i) {
    const absl::Duration now = clock.Steady();
    ASSERT_GE(now, last);
    last = now;
  }
}

}  // namespace
}  // namespace switchyard
