// The SQLite wrapper: binding, scopes, URIs, untrusted files.
#include "engine/sqlite/sqlite.h"

#include <gtest/gtest.h>

#include "tests/catalog/test_util.h"

namespace mixtape::sqlite {
namespace {

using catalog::testing::TempDir;

TEST(Sqlite, EmptyTextAndBlobAreNotNull) {
  Database db(":memory:", OpenMode::kReadWriteCreate);
  db.exec("CREATE TABLE t (a, b)");
  auto insert = db.prepare("INSERT INTO t VALUES (?1, ?2)");
  insert.bind(1, std::string_view()).bind_blob(2, ByteSpan());
  insert.run();
  auto s = db.prepare("SELECT typeof(a), typeof(b), length(a), length(b) FROM t");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), "text");
  EXPECT_EQ(s.column_text(1), "blob");
  EXPECT_EQ(s.column_int(2), 0);
  EXPECT_EQ(s.column_int(3), 0);
}

TEST(Sqlite, TextIsBytes) {
  Database db(":memory:", OpenMode::kReadWriteCreate);
  const std::string odd("a\0b\xff\n", 5);
  auto s = db.prepare("SELECT ?1, length(CAST(?1 AS BLOB))");
  s.bind(1, odd);
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), odd);
  EXPECT_EQ(s.column_int(1), 5);
}

TEST(Sqlite, BindValueKeepsTypes) {
  Database db(":memory:", OpenMode::kReadWriteCreate);
  db.exec(
      "CREATE TABLE src (v); INSERT INTO src VALUES (1), (2.5), ('x'), (x'00ff'), (NULL);"
      "CREATE TABLE dst (v);");
  auto select = db.prepare("SELECT v FROM src");
  auto insert = db.prepare("INSERT INTO dst VALUES (?1)");
  while (select.step()) {
    insert.bind_value(1, select, 0);
    insert.run();
    insert.reset();
  }
  auto s = db.prepare("SELECT group_concat(typeof(v)) FROM dst");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), "integer,real,text,blob,null");
}

TEST(Sqlite, OddFileNames) {
  TempDir tmp;
  for (std::string name : {"a?b.db", "c#d.db", "e%41f.db", "space name.db"}) {
    const std::string path = tmp.file(name);
    { Database(path, OpenMode::kReadWriteCreate).exec("CREATE TABLE t (x)"); }
    EXPECT_TRUE(std::filesystem::exists(path)) << name;
  }
  // "//tmp/..." is the same file, not a URI authority.
  Database again("/" + tmp.file("a?b.db"), OpenMode::kReadOnly);
  again.prepare("SELECT * FROM t");
}

TEST(Sqlite, WriteScopeNestsAsASavepoint) {
  Database db(":memory:", OpenMode::kReadWriteCreate);
  db.exec("CREATE TABLE t (x)");
  {
    Transaction tx(db);
    db.exec("INSERT INTO t VALUES (1)");
    {
      WriteScope inner(db);
      db.exec("INSERT INTO t VALUES (2)");
    }  // undone
    {
      WriteScope inner(db);
      db.exec("INSERT INTO t VALUES (3)");
      inner.commit();
    }
    EXPECT_TRUE(db.in_transaction());
    tx.commit();
  }
  EXPECT_FALSE(db.in_transaction());
  auto s = db.prepare("SELECT group_concat(x) FROM t");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), "1,3");
}

TEST(Sqlite, WriteScopeAloneIsATransaction) {
  Database db(":memory:", OpenMode::kReadWriteCreate);
  db.exec("CREATE TABLE t (x)");
  {
    WriteScope scope(db);
    db.exec("INSERT INTO t VALUES (1)");
    EXPECT_TRUE(db.in_transaction());
  }
  auto s = db.prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int(0), 0);
}

TEST(Sqlite, UntrustedRefusesViewsAndWrites) {
  TempDir tmp;
  const std::string path = tmp.file("u.db");
  {
    Database db(path, OpenMode::kReadWriteCreate);
    db.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1); CREATE VIEW v AS SELECT * FROM t;");
  }
  Database db(path, OpenMode::kUntrusted);
  db.prepare("SELECT * FROM t");
  EXPECT_THROW(db.prepare("SELECT * FROM v"), SqliteError);
  EXPECT_THROW(db.exec("INSERT INTO t VALUES (2)"), SqliteError);
  EXPECT_THROW(db.exec("ATTACH 'other.db' AS o"), SqliteError);
}

// A file from tape may carry triggers: the untrusted connections run none.
// kUntrusted refuses every write; kUntrustedScratch writes (the recovery's
// scratch catalog) with triggers off. The trigger is live: the same write
// on an ordinary connection runs it.
TEST(Sqlite, UntrustedConnectionsRunNoTriggers) {
  TempDir tmp;
  const std::string path = tmp.file("t.db");
  {
    Database db(path, OpenMode::kReadWriteCreate);
    db.exec(
        "CREATE TABLE t (x); CREATE TABLE fired (x); "
        "CREATE TRIGGER mark AFTER INSERT ON t BEGIN INSERT INTO fired VALUES (new.x); END;");
  }
  auto fired = [](Database& db) {
    auto s = db.prepare("SELECT count(*) FROM fired");
    s.step();
    return s.column_int(0);
  };
  {
    Database scratch(path, OpenMode::kUntrustedScratch);
    scratch.exec("INSERT INTO t VALUES (1)");
    EXPECT_EQ(fired(scratch), 0) << "a trigger ran on an untrusted connection";
  }
  {
    Database untrusted(path, OpenMode::kUntrusted);
    EXPECT_THROW(untrusted.exec("INSERT INTO t VALUES (2)"), SqliteError);
    EXPECT_EQ(fired(untrusted), 0);
  }
  Database trusted(path, OpenMode::kReadWrite);
  trusted.exec("INSERT INTO t VALUES (3)");
  EXPECT_EQ(fired(trusted), 1);
}

TEST(Sqlite, ColumnTypes) {
  Database db(":memory:", OpenMode::kReadWriteCreate);
  auto s = db.prepare("SELECT 1 AS i, 'x' AS t, NULL AS n");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_count(), 3);
  EXPECT_EQ(s.column_name(1), "t");
  EXPECT_EQ(s.column_type(0), SQLITE_INTEGER);
  EXPECT_EQ(s.column_type(1), SQLITE_TEXT);
  EXPECT_EQ(s.column_type(2), SQLITE_NULL);
  EXPECT_EQ(s.column_bytes(1), 1u);
}

}  // namespace
}  // namespace mixtape::sqlite
