/*
 * mp_storage_postgres_open as the core library sees it: a forwarder to the
 * PostgreSQL provider, which lives in its own library (libmoonpool-postgres,
 * built from postgres.c when libpq is found).
 *
 * Why a separate library: libpq drags in libssl, libcrypto, krb5 and LDAP.
 * A program that stores its actors in SQLite (or memory) must not load them.
 * But mp_node_run chooses the provider from the config file at RUN time, so
 * the host cannot simply not reference PostgreSQL. The core therefore keeps
 * only this forwarder, which reaches the provider through a WEAK reference:
 *   - the program links libmoonpool-postgres: the reference resolves to the
 *     real provider (at link time for static links and the in-tree objects,
 *     by the dynamic linker for the shared libraries);
 *   - it does not: the reference is NULL, and opening fails with MP_EINVAL
 *     and a log line naming the library to link. Nothing else changes.
 * postgres.c is compiled with mp_storage_postgres_open renamed to the name
 * below (CMakeLists.txt, COMPILE_DEFINITIONS), so the provider's source is
 * the same file whether it is linked into the core objects or not.
 */
#include <stddef.h>

#include "moonpool/storage.h"

/* Defined by postgres.c in libmoonpool-postgres (see above). */
int mp__storage_postgres_open_impl(mp_env *env, const char *conninfo,
                                   mp_storage **out) __attribute__((weak));

int mp_storage_postgres_open(mp_env *env, const char *conninfo,
                             mp_storage **out)
{
    if (mp__storage_postgres_open_impl)
        return mp__storage_postgres_open_impl(env, conninfo, out);
    if (out) *out = NULL;
    if (env)
        mp_env_log(env, MP_LOG_ERROR,
                   "storage: the PostgreSQL provider is not in this program "
                   "(moonpool was built without libpq, or the program does "
                   "not link libmoonpool-postgres: pkg-config "
                   "moonpool-postgres, CMake moonpool::postgres)");
    return MP_EINVAL;
}
