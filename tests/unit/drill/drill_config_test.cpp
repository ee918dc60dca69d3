// The [drill] section of the configuration (config_keys.cpp).
#include <gtest/gtest.h>

#include "common/config/config.h"
#include "support/test_support.h"

using namespace pgvault;

TEST(DrillConfig, DefaultsAndValues) {
  Config d = parse_config("", "empty", false);
  EXPECT_EQ(d.drill.bin_dir, "");
  EXPECT_EQ(d.drill.port, 0);
  EXPECT_EQ(d.drill.timeout, "30m");
  EXPECT_EQ(d.drill.sql_database, "postgres");
  Config c = parse_config("[drill]\nbin_dir = \"/opt/pg/bin\"\nwork_dir = \"/srv/drill\"\nport = 6543\n"
                          "counts = \"app.public.t\"\nsql_file = \"/etc/pgvault/drill.sql\"\n"
                          "sql_database = \"app\"\ntimeout = \"2h\"\n",
                          "test.toml", false);
  EXPECT_EQ(c.drill.bin_dir, "/opt/pg/bin");
  EXPECT_EQ(c.drill.work_dir, "/srv/drill");
  EXPECT_EQ(c.drill.port, 6543);
  EXPECT_EQ(c.drill.counts, "app.public.t");
  EXPECT_EQ(c.drill.sql_file, "/etc/pgvault/drill.sql");
  EXPECT_EQ(c.drill.sql_database, "app");
  EXPECT_EQ(c.drill.timeout, "2h");
}

TEST(DrillConfig, BadValuesNameTheKey) {
  for (const char* bad : {"[drill]\nport = 70000\n", "[drill]\ntimeout = \"0s\"\n", "[drill]\ntimeout = \"soon\"\n",
                          "[drill]\nsql_database = \"\"\n", "[drill]\nwork = \"/x\"\n"}) {
    try {
      parse_config(bad, "test.toml", false);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Config) << bad;
      EXPECT_NE(std::string(e.what()).find("test.toml"), std::string::npos) << e.what();
    }
  }
}
