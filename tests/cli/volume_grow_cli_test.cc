// kindling volume grow against a real API and worker: the image and its
// filesystem grow, followed to the end.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "api_cli_fixture.h"

namespace kindling::clitest {
namespace {

using json = nlohmann::json;

class VolumeGrowCliTest : public ApiCliTest {};

TEST_F(VolumeGrowCliTest, GrowsTheImageAndFollowsTheOperation) {
  const auto [project, volume_id] = MakeProjectWithVolume("grown");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Ok({"volume", "show", "--project", project})["health"] == "healthy";
      },
      std::chrono::seconds(30)));
  Fails({"volume", "grow", "--project", project, "--size-gb", "0"}, 2, "size-gb");

  json done = Ok({"volume", "grow", "--project", project, "--size-gb", "2", "--follow"});
  EXPECT_EQ(done["kind"], "grow") << done.dump();
  EXPECT_EQ(done["status"], "succeeded") << done.dump();
  json shown = Ok({"volume", "show", "--project", project});
  EXPECT_EQ(shown["size_gb"], 2) << shown.dump();
  EXPECT_EQ(std::filesystem::file_size(worker_->ImageOf(volume_id)), 2ull << 30);
  // Smaller is refused, and nothing changes.
  Fails({"volume", "grow", "--project", project, "--size-gb", "1"}, 2, "only grow");
  EXPECT_EQ(Ok({"volume", "show", "--project", project})["size_gb"], 2);
}

}  // namespace
}  // namespace kindling::clitest
