/* child_shim.c: the agent's side of the exec shim (see child.c, "Dying
 * with switchboard").
 *
 * A stdio agent is spawned as
 *     <shim> SB_CHILD_SHIM_ARG <parent pid> <command> [args...]
 * where <shim> is the executable that called sb_child_shim_main first
 * thing in main() (switchboard itself, through /proc/self/exe), with the
 * write end of a close-on-exec check pipe on descriptor 3. The shim asks
 * the kernel to SIGKILL it when its parent dies, makes sure the parent is
 * still the one that spawned it, and execs the real command in place: the
 * agent is the process libuv spawned, with the pid, process group, stdio
 * and environment libuv gave it, and the parent-death signal survives the
 * exec. If the exec fails, its errno goes down the check pipe (which the
 * exec would otherwise have closed) and the shim exits 127; child.c reads
 * it when the process is reaped and reports the agent as unable to start,
 * naming the command and the cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "net/net.h"

enum { CHECK_FD = 3, EXEC_FAILED = 127 };

void sb_child_shim_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], SB_CHILD_SHIM_ARG) != 0) return;
  if (argc < 4) {
    fprintf(stderr, "%s: usage: %s PARENT-PID COMMAND [ARG...]\n",
            SB_CHILD_SHIM_ARG, SB_CHILD_SHIM_ARG);
    _exit(EXEC_FAILED);
  }
  /* The check pipe must not reach the agent: the exec closes it, which is
   * how the parent knows the exec happened. */
  int have_check = fcntl(CHECK_FD, F_SETFD, FD_CLOEXEC) == 0;
#ifdef __linux__
  char *end = NULL;
  long parent = strtol(argv[2], &end, 10);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || !end || *end ||
      getppid() != (pid_t)parent)
    _exit(EXEC_FAILED); /* the parent is gone already: nobody to serve */
#endif
  execvp(argv[3], argv + 3);
  int e = errno;
  if (!have_check ||
      write(CHECK_FD, &e, sizeof e) != (ssize_t)sizeof e)
    fprintf(stderr, "cannot start %s: %s\n", argv[3], strerror(e));
  _exit(EXEC_FAILED);
}

const char *sb_child_shim_self(void) {
#ifdef __linux__
  /* Not resolved to a path: in the forked child /proc/self/exe is the very
   * file this process runs, even once it has been replaced or deleted on
   * disk (an upgrade in place), so the shim always speaks our protocol. */
  if (access("/proc/self/exe", X_OK) == 0) return "/proc/self/exe";
#endif
  return NULL;
}

/* Whether dir/name (name alone when dir_len is 0), taken from cwd when
 * relative, is a file this process may execute; 0, or an errno. */
static int runnable(const char *cwd, const char *dir, size_t dir_len,
                    const char *name, char *path, size_t cap) {
  int from_cwd = cwd && *cwd && (dir_len ? dir : name)[0] != '/';
  int n = snprintf(path, cap, "%s%s%.*s%s%s", from_cwd ? cwd : "",
                   from_cwd ? "/" : "", (int)dir_len, dir, dir_len ? "/" : "",
                   name);
  if (n < 0 || (size_t)n >= cap) return ENAMETOOLONG;
  struct stat st;
  if (stat(path, &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0) return EACCES;
  return 0;
}

int sb_child_command_check(const char *command, const char *path_env,
                           const char *cwd, char *why, size_t n) {
  char path[4096];
  if (!command || !*command) {
    snprintf(why, n, "no command");
    return -1;
  }
  if (cwd && *cwd) {
    struct stat st;
    if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
      snprintf(why, n, "its cwd %s is not a directory here", cwd);
      return -1;
    }
  }
  if (strchr(command, '/')) {
    int e = runnable(cwd, "", 0, command, path, sizeof path);
    if (e) snprintf(why, n, "%s: %s", path, strerror(e));
    return e ? -1 : 0;
  }
  /* As execvp searches: each PATH entry in turn (an empty one is the
   * current directory), the first runnable file wins. */
  const char *dirs = path_env ? path_env : "/bin:/usr/bin";
  int denied = 0;
  for (const char *d = dirs;; d++) {
    const char *end = strchr(d, ':');
    size_t len = end ? (size_t)(end - d) : strlen(d);
    int e =
        runnable(cwd, len ? d : ".", len ? len : 1, command, path, sizeof path);
    if (e == 0) return 0;
    denied |= e == EACCES;
    if (!end) break;
    d = end;
  }
  snprintf(why, n, "%s %s on PATH (%s)", command,
           denied ? "is not executable" : "is not found", dirs);
  return -1;
}
