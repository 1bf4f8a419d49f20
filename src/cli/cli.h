/* cli.h: what the files of the switchboard command share. */
#ifndef SB_CLI_H
#define SB_CLI_H

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Print "switchboard CMD: <fmt with what>" and a --help hint; EXIT_USAGE. */
int sb_cli_usage_error(const char *cmd, const char *fmt, const char *what);
/* Match "--name VALUE" or "--name=VALUE": 1 matched (*value set, *i
 * advanced), 0 not this option, -1 value missing. */
int sb_cli_take_value(int argc, char **argv, int *i, const char *name,
                      const char **value);
int sb_cli_is_help(const char *arg);

/* switchboard context ... (context_cmd.c) */
extern const char sb_cli_context_help[];
int sb_cli_context(int argc, char **argv);

/* switchboard agents ... (agents_cmd.c) */
extern const char sb_cli_agents_help[];
int sb_cli_agents(int argc, char **argv);
/* agents show ID: connect to one configured agent and report (agents_show.c) */
struct sb_config;
int sb_cli_agents_show(const struct sb_config *cfg, const char *id);

#endif
