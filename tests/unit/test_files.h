/* test_files.h: removing what a test left on disk. */
#ifndef SB_TEST_FILES_H
#define SB_TEST_FILES_H

#include <stdio.h>
#include <unistd.h>

/* An SQLite database file and its WAL and shared-memory files. */
static inline void test_sqlite_files_remove(const char *db) {
  static const char *const suffixes[] = {"", "-wal", "-shm"};
  char path[512];
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s%s", db, suffixes[i]);
    unlink(path);
  }
}

#endif
