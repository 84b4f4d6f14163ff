// The ISA port's byte-level contract: classification and slot encoding.
#include <gtest/gtest.h>

#include <vector>

#include "arch.h"

namespace padhook::arch {
namespace {

std::vector<uint8_t> Nops(size_t n) { return std::vector<uint8_t>(n, 0x90); }

TEST(ArchTest, GccNopRunWithEmptySlot) {
  const auto prefix = Nops(8);
  std::vector<uint8_t> entry = Nops(5);
  entry.insert(entry.end(), {0x8d, 0x47, 0x01, 0xc3});  // lea 1(%rdi),%eax; ret
  const PatchSite site = ClassifyPatchArea(prefix, entry, 0x1008);
  EXPECT_EQ(site.kind, SiteKind::kNopRun);
  EXPECT_EQ(site.slot, SlotState::kEmpty);
  EXPECT_EQ(site.landing_pad, 0);
  EXPECT_EQ(site.site_size, 5);
  EXPECT_EQ(site.prefix_size, 8);
  EXPECT_TRUE(site.site_in_one_word);
  EXPECT_TRUE(site.usable());
}

TEST(ArchTest, ClangNopWithEndbr) {
  const auto prefix = Nops(12);
  const std::vector<uint8_t> entry = {0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x08, 0xc3};
  const PatchSite site = ClassifyPatchArea(prefix, entry, 0x100c);
  EXPECT_EQ(site.kind, SiteKind::kSingleNop);
  EXPECT_EQ(site.landing_pad, 4);
  EXPECT_TRUE(site.site_in_one_word);  // 0x1010..0x1014
  EXPECT_EQ(DescribeSite(site), "endbr64, clang 5-byte NOP");
}

TEST(ArchTest, SiteCrossingAWordIsReported) {
  const std::vector<uint8_t> entry = {0x0f, 0x1f, 0x44, 0x00, 0x08};
  EXPECT_FALSE(ClassifyPatchArea(Nops(8), entry, 0x1005).site_in_one_word);
  EXPECT_TRUE(ClassifyPatchArea(Nops(8), entry, 0x1003).site_in_one_word);
}

TEST(ArchTest, UnexpectedEntryBytes) {
  const std::vector<uint8_t> int3 = {0xcc, 0x90, 0x90, 0x90, 0x90};
  EXPECT_EQ(ClassifyPatchArea(Nops(8), int3, 0x1008).kind, SiteKind::kUnexpected);
  const std::vector<uint8_t> call = {0xe8, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(ClassifyPatchArea(Nops(8), call, 0x1008).kind, SiteKind::kUnexpected);
  const std::vector<uint8_t> short_run = {0x90, 0x90, 0x55};
  const PatchSite site = ClassifyPatchArea(Nops(8), short_run, 0x1008);
  EXPECT_EQ(site.kind, SiteKind::kUnexpected);
  EXPECT_FALSE(site.usable());
}

TEST(ArchTest, SlotStates) {
  const auto entry = Nops(5);
  EXPECT_EQ(ClassifyPatchArea(Nops(4), entry, 0x1004).slot, SlotState::kTooSmall);
  EXPECT_EQ(ClassifyPatchArea({}, entry, 0x1000).slot, SlotState::kTooSmall);
  std::vector<uint8_t> with_index = {0x90, 0x90, 0x90, 0xb8, 7, 0, 0, 0};
  EXPECT_EQ(ClassifyPatchArea(with_index, entry, 0x1008).slot, SlotState::kIndex);
  std::vector<uint8_t> foreign = {0x90, 0x90, 0x90, 0xe8, 1, 2, 3, 4};  // someone's call
  EXPECT_EQ(ClassifyPatchArea(foreign, entry, 0x1008).slot, SlotState::kUnexpected);
  std::vector<uint8_t> dirty_head = {0xcc, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
  EXPECT_EQ(ClassifyPatchArea(dirty_head, entry, 0x1008).slot, SlotState::kUnexpected);
}

TEST(ArchTest, SlotEncodingRoundTrips) {
  for (uint32_t index : {0u, 1u, 255u, 0x12345678u, 0xffffffffu}) {
    std::array<uint8_t, kMetaSlotSize> slot;
    EncodeMetaSlot(index, slot);
    EXPECT_EQ(slot[kMetaSlotCommitOffset], 0xB8);
    uint32_t decoded = 0;
    ASSERT_TRUE(DecodeMetaSlot(slot, &decoded));
    EXPECT_EQ(decoded, index);
  }
  std::array<uint8_t, kMetaSlotSize> empty;
  EncodeEmptyMetaSlot(empty);
  uint32_t ignored;
  EXPECT_FALSE(DecodeMetaSlot(empty, &ignored));
  EXPECT_EQ(empty, (std::array<uint8_t, 5>{0x90, 0x90, 0x90, 0x90, 0x90}));
}

TEST(ArchTest, ReadMetaIndexReadsTheBytesBeforeTheEntry) {
  alignas(16) uint8_t buffer[16] = {0x90, 0x90, 0x90, 0xb8, 0x2a, 0x00, 0x00, 0x00,
                                    0x90, 0x90, 0x90, 0x90, 0x90, 0xc3, 0x00, 0x00};
  uint32_t index = 0;
  ASSERT_TRUE(ReadMetaIndex(reinterpret_cast<uintptr_t>(buffer + 8), &index));
  EXPECT_EQ(index, 42u);
  buffer[3] = 0x90;
  EXPECT_FALSE(ReadMetaIndex(reinterpret_cast<uintptr_t>(buffer + 8), &index));
}

TEST(ArchTest, RecommendedLayoutsKeepIndexAndSiteAligned) {
  for (bool landing_pads : {false, true}) {
    const Layout layout = RecommendedLayout(landing_pads);
    const unsigned entry = layout.nops_before_entry;  // offset from the aligned patch area
    const unsigned index_at = entry - 4;
    const unsigned site_at = entry + (landing_pads ? 4 : 0);
    EXPECT_EQ(index_at % 4, 0u) << landing_pads;
    EXPECT_LE(site_at % 8 + kSiteSize, 8u) << landing_pads;
    EXPECT_EQ(layout.total_nops - layout.nops_before_entry, kSiteSize);
    EXPECT_EQ(layout.function_alignment % 8, 0u);
  }
  const auto flags = CompilerFlags(Compiler::kGcc, false);
  ASSERT_EQ(flags.size(), 2u);
  EXPECT_EQ(flags[0], "-fpatchable-function-entry=13,8");
  EXPECT_EQ(flags[1], "-falign-functions=16");
  const auto cet = CompilerFlags(Compiler::kClang, true);
  ASSERT_EQ(cet.size(), 3u);
  EXPECT_EQ(cet[0], "-fpatchable-function-entry=17,12");
  EXPECT_EQ(cet[2], "-fcf-protection=full");
}

}  // namespace
}  // namespace padhook::arch
