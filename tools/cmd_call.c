/* Placeholder until the `call` command lands; replaced by its author. */
#include <stdio.h>

#include "commands.h"

int mp_cmd_call(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "moonpool call: not available in this build yet\n");
    return MP_EXIT_FAIL;
}
