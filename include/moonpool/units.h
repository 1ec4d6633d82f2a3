/*
 * moonpool units: the one definition of time and size units.
 *
 * Why a header of its own: every duration in moonpool is a uint64_t count of
 * nanoseconds (mp_env_now's unit) and every size a count of bytes, and the
 * conversions were spelled a dozen ways (1000000ull, 1e9, NS_PER_MS,
 * MP_SIM_NS_PER_MS, 1000 * 1000). One spelling makes "30 * MP_NS_PER_SEC"
 * read as what it is and keeps a missing factor of 1000 from hiding. The
 * constants are unsigned long long so that products never overflow int.
 * Public because users fill the *_ns fields of the config structs.
 */
#ifndef MOONPOOL_UNITS_H
#define MOONPOOL_UNITS_H

#define MP_NS_PER_US 1000ull
#define MP_NS_PER_MS 1000000ull
#define MP_NS_PER_SEC 1000000000ull
#define MP_NS_PER_MIN (60ull * MP_NS_PER_SEC)
#define MP_NS_PER_HOUR (60ull * MP_NS_PER_MIN)

#define MP_KIB 1024ull
#define MP_MIB (1024ull * MP_KIB)
#define MP_GIB (1024ull * MP_MIB)

#endif
