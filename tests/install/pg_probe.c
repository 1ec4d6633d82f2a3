/*
 * Is the PostgreSQL provider reachable from this program? Built by
 * tests/install/install_test.sh with and without moonpool-postgres. It asks
 * the core for a PostgreSQL storage on a port where nothing listens:
 *   provider linked (the weak reference resolved): MP_ECONNREFUSED
 *   provider not linked:                           MP_EINVAL
 * and prints the status name.
 */
#include <stdio.h>

#include "moonpool/moonpool.h"

int main(void)
{
    mp_env *env = mp_env_uv_create(NULL, 0);
    if (!env) return 1;
    env->log_level = MP_LOG_OFF;
    mp_storage *s = NULL;
    int rc = mp_storage_postgres_open(env, "host=127.0.0.1 port=1 connect_timeout=2", &s);
    printf("%s\n", mp_status_name(rc));
    if (s) mp_storage_free_now(s);
    mp_env_uv_run(env);
    return mp_env_uv_destroy(env);
}
