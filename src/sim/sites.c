/*
 * Buggify and always/sometimes assertion runtime (the FoundationDB model).
 *
 * Sites are static structs registered at link time through the "mp_sites"
 * ELF section (see buggify.h); the linker provides __start_/__stop_ bounds.
 * The references are weak so a program with no site at all still links (both
 * bounds are then NULL).
 *
 * Buggify decisions: a site is enabled or not once per world. The decision is
 * mp_mix64(seed, hash(basename(file)) ^ line) & 1, a pure function of the seed
 * and the site's identity, so it does not depend on the order sites are first
 * reached, on build directories, or on pointer values. The world's epoch
 * (unique per created world) tells a site whether its cached decision is from
 * this world. Enabled sites then fire with probability p drawn from the
 * world's buggify stream, which only buggify consumes.
 *
 * Outside a simulation MP_BUGGIFY never gets here (the macro checks the
 * thread-local flag first); a failing MP_ALWAYS is printed and counted but
 * never aborts, because real nodes must keep serving.
 */
#include <stdio.h>
#include <string.h>

#include "sim/sim_internal.h"

__thread int mp_sim_active_;

static uint64_t real_failures;

extern mp_site *const __start_mp_sites[] __attribute__((weak));
extern mp_site *const __stop_mp_sites[] __attribute__((weak));

void mp_sites_foreach(mp_site_visit_fn fn, void *ud)
{
    mp_site *const *p = __start_mp_sites;
    mp_site *const *end = __stop_mp_sites;
    if (!fn || !p || !end) return;
    for (; p < end; p++)
        if (*p) fn(*p, ud);
}

static void reset_site(mp_site *site, void *ud)
{
    (void)ud;
    site->evals = 0;
    site->hits = 0;
    site->epoch = 0;
    site->enabled = false;
}

void mp_sites_reset_(void) { mp_sites_foreach(reset_site, NULL); }

static const char *base_name(const char *file)
{
    if (!file) return "";
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

bool mp_buggify_fire_(mp_site *site, double p)
{
    mp_sim *sim = mp_sim_current();
    if (!sim || !sim->faults.buggify) return false;
    if (site->epoch != sim->epoch) {
        uint64_t id = name_hash(base_name(site->file)) ^ (uint64_t)site->line;
        site->enabled = (mp_mix64(sim->seed, id) & 1) != 0;
        site->epoch = sim->epoch;
    }
    site->evals++;
    if (!site->enabled || !mp_prng_chance(&sim->rng_buggify, p)) return false;
    site->hits++;
    sim->stats.buggify_fired++;
    return true;
}

void mp_site_eval_(mp_site *site, bool cond)
{
    if (!mp_sim_current()) return;
    site->evals++;
    if (cond) site->hits++;
}

void mp_always_failed_(mp_site *site)
{
    const char *name = site->name ? site->name : "(unnamed)";
    mp_sim *sim = mp_sim_active_ ? mp_sim_current() : NULL;
    if (sim) {
        uint64_t t = sim->now;
        mp_sim_fail(sim,
                    "always-assertion '%s' failed at %s:%d (sim time "
                    "%llu.%09llu s)",
                    name, site->file, site->line,
                    (unsigned long long)(t / MP_NS_PER_SEC),
                    (unsigned long long)(t % MP_NS_PER_SEC));
        return;
    }
    fprintf(stderr, "moonpool: always-assertion '%s' failed at %s:%d\n", name,
            site->file, site->line);
    __atomic_add_fetch(&real_failures, 1, __ATOMIC_RELAXED);
}

uint64_t mp_always_failures_real(void)
{
    return __atomic_load_n(&real_failures, __ATOMIC_RELAXED);
}
