#include "runtime/canary/guest_cmdline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kindling::canary {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(GuestCmdlineTest, ServeByDefault) {
  EXPECT_EQ(GuestKernelCmdline({}),
            "quiet cryptomgr.notests pci=off 8250.nr_uarts=1 kindling.mount=/data "
            "kindling.mode=serve kindling.port=8080");
}

TEST(GuestCmdlineTest, VerifyAndIgnoredPowerButton) {
  const std::string verify = GuestKernelCmdline({.mode = GuestMode::kVerify, .mount = "/vol"});
  EXPECT_THAT(verify, HasSubstr(" kindling.mount=/vol "));
  EXPECT_THAT(verify, HasSubstr(" kindling.mode=verify "));
  EXPECT_THAT(verify, Not(HasSubstr("powerdown")));
  const std::string stubborn = GuestKernelCmdline({.port = 9000, .ignore_powerdown = true});
  EXPECT_THAT(stubborn, HasSubstr(" kindling.port=9000"));
  EXPECT_THAT(stubborn, EndsWith(" kindling.powerdown=ignore"));
}

}  // namespace
}  // namespace kindling::canary
