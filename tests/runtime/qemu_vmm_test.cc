#include "runtime/qemu_vmm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/detect.h"

namespace kindling::vmm {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

VmSpec SampleSpec() {
  return VmSpec{.name = "canary-1",
                .kernel = "/guest/vmlinux",
                .initramfs = "/guest/initramfs.cpio.gz",
                .cmdline = "kindling.mount=/data",
                .memory_mib = 128,
                .vcpus = 1,
                .volume_image = "/volumes/v1.img",
                .host_port = 18080,
                .guest_port = 8080,
                .console_log = "/run/vm/console.log",
                .runtime_dir = "/run/vm"};
}

// The value that follows `flag` in `args` (the first occurrence).
std::string After(const std::vector<std::string>& args, const std::string& flag) {
  auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end() || it + 1 == args.end()) return "<missing " + flag + ">";
  return *(it + 1);
}

TEST(QemuArgsTest, TcgMicrovmWithVolumeNetworkConsoleAndQmp) {
  const QemuConfig config{.binary = "/usr/bin/qemu-system-x86_64",
                          .runtime = RuntimeKind::kQemuMicrovmTcg,
                          .tsc_khz = 2596094};
  const auto args = RenderQemuArgs(config, SampleSpec(), {.qmp_socket = "/run/vm/qmp.sock"});
  EXPECT_EQ(args.front(), "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(After(args, "-M"), "microvm,acpi=on");
  EXPECT_EQ(After(args, "-accel"), "tcg");
  EXPECT_THAT(args, Not(Contains("-cpu")));
  EXPECT_EQ(After(args, "-m"), "128");
  EXPECT_EQ(After(args, "-smp"), "1");
  EXPECT_THAT(args, Contains("-nodefaults"));
  EXPECT_THAT(args, Contains("-no-user-config"));
  EXPECT_THAT(args, Contains("-no-reboot"));
  EXPECT_EQ(After(args, "-kernel"), "/guest/vmlinux");
  EXPECT_EQ(After(args, "-initrd"), "/guest/initramfs.cpio.gz");
  EXPECT_EQ(After(args, "-append"),
            "console=ttyS0 panic=-1 tsc_early_khz=2596094 kindling.mount=/data");
  // The image lock stays on: a second VM on the image must fail.
  EXPECT_EQ(After(args, "-drive"),
            "file=/volumes/v1.img,format=raw,if=none,id=volume,file.locking=on");
  EXPECT_THAT(args, Contains("virtio-blk-device,drive=volume"));
  EXPECT_EQ(After(args, "-netdev"), "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:18080-:8080");
  EXPECT_THAT(args, Contains("virtio-net-device,netdev=net0"));
  EXPECT_EQ(After(args, "-chardev"), "file,id=console,path=/run/vm/console.log");
  EXPECT_EQ(After(args, "-serial"), "chardev:console");
  EXPECT_EQ(After(args, "-qmp"), "unix:/run/vm/qmp.sock,server=on,wait=off");
}

TEST(QemuArgsTest, KvmUsesTheHostCpuAndNoTscHint) {
  const QemuConfig config{.runtime = RuntimeKind::kQemuMicrovmKvm, .tsc_khz = 2596094};
  VmSpec spec = SampleSpec();
  spec.memory_mib = 512;
  spec.vcpus = 2;
  spec.cmdline.clear();
  const auto args = RenderQemuArgs(config, spec, {.qmp_socket = "/q"});
  EXPECT_EQ(After(args, "-accel"), "kvm");
  EXPECT_EQ(After(args, "-cpu"), "host");
  EXPECT_EQ(After(args, "-m"), "512");
  EXPECT_EQ(After(args, "-smp"), "2");
  EXPECT_EQ(After(args, "-append"), "console=ttyS0 panic=-1");
}

TEST(QemuArgsTest, CommasInPathsAreEscapedAndOptionalPartsLeftOut) {
  VmSpec spec = SampleSpec();
  spec.volume_image = "/volumes/a,b.img";
  spec.console_log = "/logs/x,y.log";
  spec.initramfs.clear();
  spec.host_port = 0;
  const auto args = RenderQemuArgs({}, spec, {.qmp_socket = "/run/a,b/qmp.sock"});
  EXPECT_THAT(After(args, "-drive"), HasSubstr("file=/volumes/a,,b.img,format=raw"));
  EXPECT_EQ(After(args, "-chardev"), "file,id=console,path=/logs/x,,y.log");
  EXPECT_EQ(After(args, "-qmp"), "unix:/run/a,,b/qmp.sock,server=on,wait=off");
  EXPECT_THAT(args, Not(Contains("-initrd")));
  EXPECT_THAT(After(args, "-netdev"), HasSubstr("hostfwd=tcp:127.0.0.1:0-:8080"));

  spec.volume_image.clear();
  const auto no_volume = RenderQemuArgs({}, spec, {.qmp_socket = "/q"});
  EXPECT_THAT(no_volume, Not(Contains("-drive")));
  EXPECT_THAT(no_volume, Not(Contains("virtio-blk-device,drive=volume")));
}

TEST(QemuArgsTest, ForwardedPortFromInfoUsernet) {
  const std::string text =
      "Hub -1 (net0):\r\n"
      "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"
      "  TCP[SYN_SENT]      17       127.0.0.1 41191       10.0.2.15  8080     0     0\r\n"
      "  TCP[HOST_FORWARD]   9       127.0.0.1 40000       10.0.2.15  9090     0     0\r\n"
      "  TCP[HOST_FORWARD]   8       127.0.0.1 41191       10.0.2.15  8080     0     0\r\n";
  auto port = ParseForwardedPort(text, 8080);
  ASSERT_TRUE(port) << port.error().message();
  EXPECT_EQ(*port, 41191);
  auto other = ParseForwardedPort(text, 9090);
  ASSERT_TRUE(other);
  EXPECT_EQ(*other, 40000);
  auto none = ParseForwardedPort(text, 22);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is_not_found());
}

TEST(QemuArgsTest, RuntimeNamesRoundTrip) {
  for (RuntimeKind kind :
       {RuntimeKind::kCloudHypervisor, RuntimeKind::kQemuMicrovmKvm, RuntimeKind::kQemuMicrovmTcg})
    EXPECT_EQ(ParseRuntimeName(RuntimeName(kind)), kind);
  EXPECT_EQ(RuntimeName(RuntimeKind::kQemuMicrovmTcg), "qemu-microvm-tcg");
  EXPECT_FALSE(ParseRuntimeName("firecracker"));
}

TEST(QemuArgsTest, HostTscRateIsPlausible) {
  auto khz = HostTscKhz();
  ASSERT_TRUE(khz);
  EXPECT_GT(*khz, 100'000u);     // 100 MHz
  EXPECT_LT(*khz, 10'000'000u);  // 10 GHz
}

TEST(QemuArgsTest, ProbeElfHasAPvhEntryNote) {
  const std::string elf = DebugExitProbeElf(0x2a);
  ASSERT_GE(elf.size(), 52u);
  EXPECT_EQ(elf.substr(0, 4),
            "\x7f"
            "ELF");
  EXPECT_NE(elf.find(std::string("Xen\0", 4)), std::string::npos);
  // The code writes the chosen byte to port 0xf4.
  EXPECT_NE(elf.find(std::string("\x66\xba\xf4\x00\xb0\x2a\xee", 7)), std::string::npos);
}

}  // namespace
}  // namespace kindling::vmm
