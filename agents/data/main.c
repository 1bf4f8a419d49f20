/* dealer-data: writes the dealership demo's databases, one SQLite file per
 * tenant (OUT/<tenant>.db), the same data on every run. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/generate.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dealer-data [--out DIR] [--tenant ID]\n"
          "Writes the demo data of the dealer groups (north-star, lakeside)\n"
          "to DIR/<tenant>.db (default DIR: data/demo).\n");
}

/* mkdir -p */
static int make_dirs(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int main(int argc, char **argv) {
  const char *out = "data/demo", *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "dealer-data: unknown option \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  sb_core_init();
  if (make_dirs(out) != 0) {
    fprintf(stderr, "dealer-data: cannot create %s: %s\n", out,
            strerror(errno));
    return 1;
  }
  int done = 0;
  for (size_t i = 0; i < dl_data_tenants_len; i++) {
    const char *tenant = dl_data_tenants[i];
    if (only && strcmp(only, tenant) != 0) continue;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dl_data_summary s;
    sb_error err = {0};
    if (dl_data_generate(out, tenant, &s, &err) != 0) {
      fprintf(stderr, "dealer-data: %s: %s\n", tenant, err.msg);
      return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("%s/%s.db: %s: %d dealerships, %d vehicles, %d service slots, "
           "%d parts, %d customer vehicles, %d recalls (%.0f ms)\n",
           out, tenant, s.tenant_name, s.dealerships, s.vehicles, s.slots,
           s.parts, s.customer_vehicles, s.recalls, ms);
    done++;
  }
  if (!done) {
    fprintf(stderr, "dealer-data: no demo tenant named \"%s\"\n", only);
    return 2;
  }
  return 0;
}
