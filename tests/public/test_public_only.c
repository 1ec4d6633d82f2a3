/*
 * Compiled (never linked or run) by the `public.headers` test with
 * `-I include` alone, -Wall -Wextra -Werror: user code must compile against
 * the public headers without src/ on the include path, so this fails the
 * day a public header includes an internal one.
 */
#include "moonpool/moonpool.h"

/* A few uses of each part of the API, so the declarations are really parsed
 * as a program would use them. */
int public_only_main(void);

static void on_timer(void *ud) { (void)ud; }

int public_only_main(void)
{
    mp_env *env = mp_env_uv_create(NULL, 1);
    if (!env) return 1;
    int uv = mp_env_is_uv(env);
    mp_timer_id t = mp_env_timer_start(env, 1000, on_timer, NULL);
    (void)mp_env_timer_cancel(env, t);
    mp_listener *l = NULL;
    int port = 0;
    if (mp_env_listen(env, "127.0.0.1:0", NULL, NULL, &l) == MP_OK) {
        port = mp_listener_port(l);
        mp_listener_close(l, NULL, NULL);
    }
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    const char *msg = mp_strerror(MP_ETIMEDOUT);
    (void)msg;
    (void)mp_env_uv_run_once(env, 0);
    return mp_env_uv_destroy(env) + uv + port;
}
