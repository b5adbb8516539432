// Cohort's view of GMP. GMP's mpz_* names are C macros over __gmpz_* functions, which Swift
// does not import as such: these inline wrappers give them callable names.
#ifndef COHORT_CGMP_SHIM_H
#define COHORT_CGMP_SHIM_H

#include <gmp.h>
#include <stddef.h>

static inline void cohort_mpz_init(mpz_ptr x) { mpz_init(x); }
static inline void cohort_mpz_clear(mpz_ptr x) { mpz_clear(x); }

/// x = the big-endian unsigned integer in bytes[0..<count].
static inline void cohort_mpz_import(mpz_ptr x, const unsigned char *bytes, size_t count) {
    mpz_import(x, count, 1, 1, 1, 0, bytes);
}

/// Writes x big-endian into out[0..<width], left-padded with zeros. Returns 0 if x needs more
/// than width bytes (nothing is written then), 1 otherwise.
static inline int cohort_mpz_export_padded(mpz_srcptr x, unsigned char *out, size_t width) {
    size_t needed = (mpz_sizeinbase(x, 2) + 7) / 8;
    if (mpz_sgn(x) == 0) needed = 0;
    if (needed > width) return 0;
    for (size_t i = 0; i < width - needed; i++) out[i] = 0;
    size_t written = 0;
    if (needed > 0) mpz_export(out + (width - needed), &written, 1, 1, 1, 0, x);
    return 1;
}

/// r = base^exponent mod modulus, in time independent of the exponent (GMP's mpz_powm_sec:
/// modulus odd, exponent positive).
static inline void cohort_mpz_powm_sec(mpz_ptr r, mpz_srcptr base, mpz_srcptr exponent, mpz_srcptr modulus) {
    mpz_powm_sec(r, base, exponent, modulus);
}

static inline void cohort_mpz_mul_mod(mpz_ptr r, mpz_srcptr a, mpz_srcptr b, mpz_srcptr modulus) {
    mpz_mul(r, a, b);
    mpz_mod(r, r, modulus);
}

/// r = a^-1 mod modulus; returns 0 if a has no inverse.
static inline int cohort_mpz_invert(mpz_ptr r, mpz_srcptr a, mpz_srcptr modulus) {
    return mpz_invert(r, a, modulus);
}

static inline int cohort_mpz_cmp(mpz_srcptr a, mpz_srcptr b) { return mpz_cmp(a, b); }
static inline int cohort_mpz_cmp_ui(mpz_srcptr a, unsigned long b) { return mpz_cmp_ui(a, b); }
static inline void cohort_mpz_sub_ui(mpz_ptr r, mpz_srcptr a, unsigned long b) { mpz_sub_ui(r, a, b); }
static inline void cohort_mpz_tdiv_q_2exp(mpz_ptr r, mpz_srcptr a, unsigned long bits) { mpz_tdiv_q_2exp(r, a, bits); }
static inline void cohort_mpz_mod(mpz_ptr r, mpz_srcptr a, mpz_srcptr modulus) { mpz_mod(r, a, modulus); }
/// The Jacobi symbol (a/n): for a prime n, 1 if a is a nonzero quadratic residue modulo n.
static inline int cohort_mpz_jacobi(mpz_srcptr a, mpz_srcptr n) { return mpz_jacobi(a, n); }

/// 2 if n is certainly prime, 1 if probably prime, 0 if composite (Miller-Rabin, `rounds`).
static inline int cohort_mpz_probab_prime(mpz_srcptr n, int rounds) { return mpz_probab_prime_p(n, rounds); }

#endif
