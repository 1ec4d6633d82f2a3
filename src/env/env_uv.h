/*
 * Nothing of the libuv backend is internal any more: its creation, running
 * and destruction and mp_env_is_uv are public in moonpool/env_uv.h, and the
 * listener port is an operation of every env (mp_listener_port, env.h).
 * This header only forwards there, for code written before the move.
 */
#ifndef MP_ENV_ENV_UV_H
#define MP_ENV_ENV_UV_H

#include "moonpool/env_uv.h"

#endif
