/* Invariant checks.
 *
 * mn_assert(cond): always on, in every build type. For O(1) invariants that the
 * code keeps and relies on (dense lsns, a clock that never moves back, an
 * incarnation that never decreases). A failure prints file:line, the function
 * and the expression to stderr and aborts: continuing past a broken invariant
 * of a storage engine risks writing wrong data, which is worse than a crash.
 *
 * mn_assert_debug(cond): for O(n) checks; compiled only where NDEBUG is unset
 * (the Debug and sanitizer builds), like the standard assert.
 *
 * Neither is ever used for bad input: that is an error value (err.h). */
#ifndef MNEMO_ASSERT_H
#define MNEMO_ASSERT_H

/* Prints the failed check and aborts. Never returns. */
_Noreturn void mn_assert_fail(const char *expr, const char *file, int line, const char *func);

#define mn_assert(cond)                                                                          \
    ((cond) ? (void)0 : mn_assert_fail(#cond, __FILE__, __LINE__, __func__))

#ifdef NDEBUG
#define mn_assert_debug(cond) ((void)0)
#else
#define mn_assert_debug(cond) mn_assert(cond)
#endif

#endif
