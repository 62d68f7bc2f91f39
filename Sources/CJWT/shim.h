#ifndef CJWT_SHIM_H
#define CJWT_SHIM_H
#include <errno.h>
#include <jwt.h>

/*
 * Verifies a compact JWS with libjwt and reports which algorithm libjwt used,
 * so the caller can check it against the algorithm it pinned. The jwt_t never
 * leaves this function. An empty key is refused here, never handed to libjwt
 * (libjwt 1.10 would then skip verification paths). Returns 0 when libjwt
 * accepted the signature, an errno value otherwise.
 */
static inline int cjwt_verify(const char *token, const unsigned char *key, int key_len, jwt_alg_t *alg_out) {
    jwt_t *jwt = NULL;
    int rc;
    if (token == NULL || key == NULL || key_len <= 0 || alg_out == NULL)
        return EINVAL;
    rc = jwt_decode(&jwt, token, key, key_len);
    if (rc == 0 && jwt == NULL)
        rc = EINVAL;
    if (rc == 0)
        *alg_out = jwt_get_alg(jwt);
    if (jwt != NULL)
        jwt_free(jwt);
    return rc;
}

#endif
