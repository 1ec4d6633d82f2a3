/*
 * Subcommands of the `moonpool` program. Each takes argv as if it were its
 * own program (argv[0] is the subcommand name), parses its flags, and returns
 * the process exit status: 0 success, 1 failure of the work, 2 bad usage.
 */
#ifndef MP_TOOLS_COMMANDS_H
#define MP_TOOLS_COMMANDS_H

#define MP_EXIT_OK 0
#define MP_EXIT_FAIL 1
#define MP_EXIT_USAGE 2

/* argv[0] of the moonpool program itself, for printing replay commands. */
extern const char *mp_program_path;

int mp_cmd_sim(int argc, char **argv);   /* tools/cmd_sim.c */
int mp_cmd_node(int argc, char **argv);  /* tools/cmd_node.c */
int mp_cmd_call(int argc, char **argv);  /* tools/cmd_call.c */
int mp_cmd_stats(int argc, char **argv); /* tools/cmd_stats.c */
int mp_cmd_members(int argc, char **argv); /* tools/cmd_members.c */
int mp_cmd_demo(int argc, char **argv);  /* tools/cmd_demo.c */
int mp_cmd_bench(int argc, char **argv); /* tools/cmd_bench.c */
int mp_cmd_journal_load(int argc, char **argv); /* tools/cmd_journal_load.c (hidden) */

#endif
