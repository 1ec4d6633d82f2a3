/*
 * mp_version: the library's own version string. It lives in the library
 * (not only as a macro) so that a program can tell the version it was
 * compiled against (MP_VERSION_STRING from its headers) from the version of
 * the shared library it actually runs with.
 */
#include "moonpool/version.h"

const char *mp_version(void)
{
    return MP_VERSION_STRING;
}
