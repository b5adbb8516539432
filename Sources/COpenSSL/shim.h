// Cohort's view of OpenSSL's libcrypto (OpenSSL 3): the headers it uses, plus small helpers
// that build OSSL_PARAM arrays in C, where their borrowed pointers are easy to keep valid.
#ifndef COHORT_COPENSSL_SHIM_H
#define COHORT_COPENSSL_SHIM_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <stddef.h>

/// Loads the `legacy` provider (Blowfish) and then `default` explicitly: once any provider is
/// loaded by hand, OpenSSL no longer loads `default` on its own. Returns 1 on success.
static inline int cohort_load_legacy_and_default_providers(void) {
    OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(NULL, "legacy");
    OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(NULL, "default");
    return legacy != NULL && deflt != NULL;
}

/// A new HMAC context (digest chosen at init). NULL on failure.
static inline EVP_MAC_CTX *cohort_hmac_new(void) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    return ctx;
}

/// (Re)initialises an HMAC-SHA256 context with `key`. Returns 1 on success.
static inline int cohort_hmac_sha256_init(EVP_MAC_CTX *ctx, const unsigned char *key, size_t key_length) {
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    return EVP_MAC_init(ctx, key, key_length, params);
}

/// HKDF-SHA256 (RFC 5869): extract from `ikm` with `salt`, expand with `info` into `out`.
/// Returns 1 on success.
static inline int cohort_hkdf_sha256(
    const unsigned char *ikm, size_t ikm_length,
    const unsigned char *salt, size_t salt_length,
    const unsigned char *info, size_t info_length,
    unsigned char *out, size_t out_length) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL) return 0;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (ctx == NULL) return 0;
    OSSL_PARAM params[5];
    size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_length);
    if (salt_length > 0) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_length);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_length);
    params[n] = OSSL_PARAM_construct_end();
    int ok = EVP_KDF_derive(ctx, out, out_length, params);
    EVP_KDF_CTX_free(ctx);
    return ok;
}

#endif
