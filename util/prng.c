/* xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64. Deterministic
 * for a given seed: the simulator and tests replay runs from their seed. */
#include "mnemo/util.h"

#include <sys/random.h>
#include <time.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mn_prng_seed(mn_prng_t *p, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) p->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t mn_prng_next(mn_prng_t *p)
{
    uint64_t *s = p->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t mn_prng_below(mn_prng_t *p, uint64_t n)
{
    /* Lemire's nearly-divisionless bounded integers, with rejection for exactness. */
    uint64_t x = mn_prng_next(p);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            x = mn_prng_next(p);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double mn_prng_double(mn_prng_t *p)
{
    return (double)(mn_prng_next(p) >> 11) * 0x1.0p-53;
}

uint64_t mn_random_seed(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v) return v;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&v;
}
