/*
 * Buggify and simulation assertions (the FoundationDB model).
 *
 * These macros are compiled into the runtime itself, in real mode too, and cost
 * one thread-local load there: outside a running simulation MP_BUGGIFY is
 * always false and the assertions only count failures of MP_ALWAYS.
 *
 *   MP_BUGGIFY()        true sometimes, inside the simulator only. Each call
 *   MP_BUGGIFY_P(p)     site is enabled or not once per seed (50%), then an
 *                       enabled site fires with probability p (default 25%).
 *                       Use it where a rare but legal behaviour hides races:
 *                       an extra delay, a spurious failure, a tiny buffer.
 *
 *   MP_ALWAYS(c, name)  c must hold. In the simulator a violation fails the
 *                       seed (the name, file:line and sim time are reported);
 *                       in real mode it is logged to stderr and counted.
 *   MP_SOMETIMES(c, n)  counts evaluations where c holds. A seed set whose
 *                       workload asks for coverage fails when some required
 *                       sometimes-assertion never held: it proves that the
 *                       hard path really ran.
 *   MP_REACHABLE(n)     MP_SOMETIMES(1, n): this line must be reached.
 *   MP_UNREACHABLE(n)   MP_ALWAYS(0, n) at this line.
 *
 * Names are dotted lowercase ("transport.reconnect"); a workload asks for
 * coverage by name prefix. Every site is registered at link time in a
 * dedicated ELF section, so sites that were never evaluated are known too.
 *
 * Thread: a simulation runs on one thread; counters are only touched while a
 * simulation is active on the calling thread. Site counters are
 * process-global, so at most one thread of a process may run simulations at a
 * time.
 *
 * Caveat: clang drops a site inside code it proves dead (`if (0) MP_...`)
 * despite `used`; such a site is then missing from mp_sites_foreach. Do not
 * put coverage sites in compile-time-dead branches.
 */
#ifndef MOONPOOL_BUGGIFY_H
#define MOONPOOL_BUGGIFY_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mp_site_kind {
    MP_SITE_ALWAYS = 0,
    MP_SITE_SOMETIMES = 1,
    MP_SITE_REACHABLE = 2,
    MP_SITE_UNREACHABLE = 3,
    MP_SITE_BUGGIFY = 4
} mp_site_kind;

/* One assertion or buggify call site. Lives in static storage; a pointer to it
 * is placed in the "mp_sites" section. Fields past `line` belong to the
 * simulator. */
typedef struct mp_site {
    const char *name; /* NULL for buggify sites */
    const char *file;
    int line;
    int kind; /* mp_site_kind */
    uint64_t evals;   /* evaluations in the current simulation */
    uint64_t hits;    /* times the condition held / the site fired */
    uint64_t epoch;   /* buggify: simulation epoch the decision belongs to */
    bool enabled;     /* buggify: enabled for this seed */
} mp_site;

/* Nonzero while a simulation runs on this thread. */
extern __thread int mp_sim_active_;

/* Implemented by the simulator. */
bool mp_buggify_fire_(mp_site *site, double p);
void mp_site_eval_(mp_site *site, bool cond);
void mp_always_failed_(mp_site *site);

#define MP_SITE_DECL_(var, nm, knd)                                           \
    static mp_site var = {(nm), __FILE__, __LINE__, (knd), 0, 0, 0, false};   \
    static mp_site *const var##_ptr                                           \
        __attribute__((section("mp_sites"), used)) = &var

#define MP_BUGGIFY_P(p)                                                       \
    __extension__({                                                           \
        MP_SITE_DECL_(mp_bsite_, NULL, MP_SITE_BUGGIFY);                      \
        (mp_sim_active_ && mp_buggify_fire_(&mp_bsite_, (p)));                \
    })

#define MP_BUGGIFY() MP_BUGGIFY_P(0.25)

#define MP_ALWAYS(cond, nm)                                                   \
    do {                                                                      \
        MP_SITE_DECL_(mp_asite_, nm, MP_SITE_ALWAYS);                         \
        bool mp_c_ = (cond);                                                  \
        if (mp_sim_active_) mp_site_eval_(&mp_asite_, mp_c_);                 \
        if (!mp_c_) mp_always_failed_(&mp_asite_);                            \
    } while (0)

#define MP_SOMETIMES(cond, nm)                                                \
    do {                                                                      \
        MP_SITE_DECL_(mp_ssite_, nm, MP_SITE_SOMETIMES);                      \
        if (mp_sim_active_) mp_site_eval_(&mp_ssite_, (cond));                \
    } while (0)

#define MP_REACHABLE(nm)                                                      \
    do {                                                                      \
        MP_SITE_DECL_(mp_rsite_, nm, MP_SITE_REACHABLE);                      \
        if (mp_sim_active_) mp_site_eval_(&mp_rsite_, true);                  \
    } while (0)

#define MP_UNREACHABLE(nm)                                                    \
    do {                                                                      \
        MP_SITE_DECL_(mp_usite_, nm, MP_SITE_UNREACHABLE);                    \
        if (mp_sim_active_) mp_site_eval_(&mp_usite_, false);                 \
        mp_always_failed_(&mp_usite_);                                        \
    } while (0)

/* Iterate every site linked into the program. */
typedef void (*mp_site_visit_fn)(mp_site *site, void *ud);
void mp_sites_foreach(mp_site_visit_fn fn, void *ud);

/* Failures of MP_ALWAYS/MP_UNREACHABLE seen outside any simulation. */
uint64_t mp_always_failures_real(void);

#ifdef __cplusplus
}
#endif
#endif
