#include "db/quarantine.h"

#include <gtest/gtest.h>

#include <thread>

#include "db_test_util.h"

namespace kindling::db {
namespace {

class QuarantineTest : public DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    org_ = MakeOrganization();
    server_ = MakeServer("w1");
    other_server_ = MakeServer("w2");
    project_ = MakeProject(org_, "web");
    volume_ = MakeVolume(project_, server_);
  }

  QuarantineEntry Entry(const std::string& server_id, const std::string& volume_id,
                        QuarantineReason reason) {
    QuarantineEntry e;
    e.id = NewUuidV4();
    e.server_id = server_id;
    e.project_volume_id = volume_id;
    e.reason = reason;
    e.detail = "because";
    e.path = "/state/quarantine/" + e.id + "/image.img";
    e.size_bytes = 1ll << 30;
    e.allocated_bytes = 8ll << 20;
    e.image_mtime = Timestamp(std::chrono::seconds(1'700'000'000));
    e.quarantined_at = Timestamp(std::chrono::seconds(1'700'000'100));
    return e;
  }

  QuarantineEntry Upsert(const QuarantineEntry& e) {
    auto row = Must([&](Tx& tx) { return UpsertQuarantineEntry(tx, e); });
    return row ? *row : QuarantineEntry{};
  }

  std::vector<QuarantineEntry> List(const QuarantineFilter& filter) {
    auto rows = Must([&](Tx& tx) { return ListQuarantine(tx, filter); });
    return rows ? *rows : std::vector<QuarantineEntry>{};
  }

  static std::vector<std::string> IdsOf(const std::vector<QuarantineEntry>& rows) {
    std::vector<std::string> ids;
    for (const QuarantineEntry& r : rows) ids.push_back(r.id);
    return ids;
  }

  std::string org_, server_, other_server_, project_;
  Volume volume_;
};

TEST_F(QuarantineTest, UpsertInsertsThenUpdatesKeepingWhenAndStatus) {
  QuarantineEntry e = Entry(server_, volume_.id, QuarantineReason::kConflict);
  const QuarantineEntry inserted = Upsert(e);
  EXPECT_EQ(inserted.id, e.id);
  EXPECT_EQ(inserted.server_id, server_);
  EXPECT_EQ(inserted.project_volume_id, volume_.id);
  EXPECT_EQ(inserted.reason, QuarantineReason::kConflict);
  EXPECT_EQ(inserted.detail, "because");
  EXPECT_EQ(inserted.path, e.path);
  EXPECT_EQ(inserted.size_bytes, 1ll << 30);
  EXPECT_EQ(inserted.allocated_bytes, 8ll << 20);
  EXPECT_EQ(inserted.image_mtime, e.image_mtime);
  EXPECT_EQ(inserted.quarantined_at, e.quarantined_at);
  EXPECT_FALSE(inserted.image_sha256.has_value());
  EXPECT_FALSE(inserted.digest_chunk_size.has_value());
  EXPECT_EQ(inserted.status, QuarantineStatus::kHeld);
  EXPECT_FALSE(inserted.purge_after.has_value());
  EXPECT_FALSE(inserted.resolved_at.has_value());

  // The digest arrives later; a re-announcement from the directory keeps
  // when it was quarantined and what an operator decided.
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return ResolveQuarantineEntry(tx, e.id, QuarantineStatus::kAdopted); }));
  e.image_sha256 = std::string(64, 'a');
  e.digest_chunk_size = 1 << 20;
  e.detail = "digest known";
  e.quarantined_at = Timestamp(std::chrono::seconds(1'800'000'000));
  const QuarantineEntry updated = Upsert(e);
  EXPECT_EQ(updated.image_sha256, std::string(64, 'a'));
  EXPECT_EQ(updated.digest_chunk_size, 1 << 20);
  EXPECT_EQ(updated.detail, "digest known");
  EXPECT_EQ(updated.quarantined_at, inserted.quarantined_at);
  EXPECT_EQ(updated.status, QuarantineStatus::kAdopted);
  EXPECT_TRUE(updated.resolved_at.has_value());

  // An announcement without a digest does not erase the known one.
  e.image_sha256.reset();
  e.digest_chunk_size.reset();
  const QuarantineEntry again = Upsert(e);
  EXPECT_EQ(again.image_sha256, std::string(64, 'a'));
  EXPECT_EQ(again.digest_chunk_size, 1 << 20);

  ASSERT_OK_AND_ASSIGN(QuarantineEntry got,
                       db().Transact([&](Tx& tx) { return GetQuarantineEntry(tx, e.id); }));
  EXPECT_EQ(got.image_sha256, again.image_sha256);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return GetQuarantineEntry(tx, NewUuidV4()); }),
                    ErrorKind::kNotFound);
}

TEST_F(QuarantineTest, UpsertWithoutQuarantinedAtUsesNowAndKeepsPurgeAfter) {
  QuarantineEntry e = Entry(server_, volume_.id, QuarantineReason::kReplaced);
  e.quarantined_at = Timestamp{};
  e.purge_after = Timestamp(std::chrono::seconds(1'900'000'000));
  const QuarantineEntry row = Upsert(e);
  EXPECT_GT(row.quarantined_at, Timestamp(std::chrono::seconds(1'700'000'000)));
  EXPECT_EQ(row.purge_after, e.purge_after);
}

TEST_F(QuarantineTest, EntriesOfVolumesTheDatabaseDoesNotKnowAreRecorded) {
  const QuarantineEntry e =
      Upsert(Entry(NewUuidV4(), NewUuidV4(), QuarantineReason::kUnknownVolume));
  EXPECT_EQ(e.reason, QuarantineReason::kUnknownVolume);
  EXPECT_EQ(List({.project_volume_id = e.project_volume_id}).size(), 1u);
}

TEST_F(QuarantineTest, ListFiltersNewestFirst) {
  const Volume other_volume = MakeVolume(MakeProject(org_, "api"), other_server_);
  QuarantineEntry oldest = Entry(server_, volume_.id, QuarantineReason::kReplaced);
  QuarantineEntry middle = Entry(other_server_, volume_.id, QuarantineReason::kConflict);
  middle.quarantined_at += std::chrono::seconds(10);
  QuarantineEntry newest = Entry(server_, other_volume.id, QuarantineReason::kDeleted);
  newest.quarantined_at += std::chrono::seconds(20);
  for (const auto& e : {oldest, middle, newest}) Upsert(e);
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return ResolveQuarantineEntry(tx, oldest.id, QuarantineStatus::kPurged); }));

  using Ids = std::vector<std::string>;
  EXPECT_EQ(IdsOf(List({})), (Ids{newest.id, middle.id, oldest.id}));
  EXPECT_EQ(IdsOf(List({.server_id = server_})), (Ids{newest.id, oldest.id}));
  EXPECT_EQ(IdsOf(List({.project_volume_id = volume_.id})), (Ids{middle.id, oldest.id}));
  EXPECT_EQ(IdsOf(List({.project_id = project_})), (Ids{middle.id, oldest.id}));
  EXPECT_EQ(IdsOf(List({.status = QuarantineStatus::kHeld})), (Ids{newest.id, middle.id}));
  EXPECT_EQ(IdsOf(List(
                {.server_id = server_, .project_id = project_, .status = QuarantineStatus::kHeld})),
            Ids{});
  EXPECT_EQ(IdsOf(List({.project_id = NewUuidV4()})), Ids{});

  // A deleted volume's entries stay listed under its project.
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkVolumeDeleted(tx, volume_.id); }));
  EXPECT_EQ(IdsOf(List({.project_id = project_})), (Ids{middle.id, oldest.id}));
}

TEST_F(QuarantineTest, ResolveOnlyFromHeld) {
  const QuarantineEntry a = Upsert(Entry(server_, volume_.id, QuarantineReason::kConflict));
  const QuarantineEntry b = Upsert(Entry(server_, volume_.id, QuarantineReason::kReplaced));
  ASSERT_OK_AND_ASSIGN(QuarantineEntry adopted, db().Transact([&](Tx& tx) {
    return ResolveQuarantineEntry(tx, a.id, QuarantineStatus::kAdopted);
  }));
  EXPECT_EQ(adopted.status, QuarantineStatus::kAdopted);
  EXPECT_TRUE(adopted.resolved_at.has_value());
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return ResolveQuarantineEntry(tx, a.id, QuarantineStatus::kPurged);
  }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return ResolveQuarantineEntry(tx, a.id, QuarantineStatus::kAdopted);
  }),
                    ErrorKind::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(QuarantineEntry purged, db().Transact([&](Tx& tx) {
    return ResolveQuarantineEntry(tx, b.id, QuarantineStatus::kPurged);
  }));
  EXPECT_EQ(purged.status, QuarantineStatus::kPurged);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return ResolveQuarantineEntry(tx, NewUuidV4(), QuarantineStatus::kPurged);
  }),
                    ErrorKind::kInvalidArgument);
}

TEST_F(QuarantineTest, PurgeRequestSetsPurgeAfterToNowOnHeldEntriesOnly) {
  const QuarantineEntry held = Upsert(Entry(server_, volume_.id, QuarantineReason::kConflict));
  ASSERT_FALSE(held.purge_after.has_value());
  const pqxx::result before = Sql("SELECT now()");
  ASSERT_OK_AND_ASSIGN(QuarantineEntry requested,
                       db().Transact([&](Tx& tx) { return RequestQuarantinePurge(tx, held.id); }));
  ASSERT_TRUE(requested.purge_after.has_value());
  EXPECT_GE(*requested.purge_after, *ParseTimestamp(before[0][0].c_str()));
  const pqxx::result after = Sql("SELECT now()");
  EXPECT_LE(*requested.purge_after, *ParseTimestamp(after[0][0].c_str()));
  EXPECT_EQ(requested.status, QuarantineStatus::kHeld) << "the worker purges and resolves it";

  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return ResolveQuarantineEntry(tx, held.id, QuarantineStatus::kPurged); }));
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return RequestQuarantinePurge(tx, held.id); }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return RequestQuarantinePurge(tx, NewUuidV4()); }),
                    ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace kindling::db
