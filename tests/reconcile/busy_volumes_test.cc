#include "reconcile/busy_volumes.h"

#include <gtest/gtest.h>

namespace kindling::reconcile {
namespace {

TEST(BusyVolumesTest, MarksAreCountedSoAnOperationOutlivesAReconcilerScope) {
  BusyVolumes busy;
  {
    BusyScope reconciler(busy, "v");
    ASSERT_TRUE(reconciler.acquired());
    busy.Mark("v");  // an operation claimed meanwhile
  }
  // The reconciler's scope ended; the operation still holds the volume.
  EXPECT_FALSE(BusyScope(busy, "v").acquired());
  busy.Release("v");
  EXPECT_TRUE(BusyScope(busy, "v").acquired());
}

TEST(BusyVolumesTest, VolumesAreIndependent) {
  BusyVolumes busy;
  BusyScope a(busy, "a");
  EXPECT_TRUE(a.acquired());
  EXPECT_FALSE(BusyScope(busy, "a").acquired());
  EXPECT_TRUE(BusyScope(busy, "b").acquired());
  busy.Release("never-marked");  // harmless
  EXPECT_FALSE(BusyScope(busy, "a").acquired());
}

}  // namespace
}  // namespace kindling::reconcile
