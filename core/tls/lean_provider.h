/* "provd-lean": OpenSSL's default provider with fewer decoders and key
 * managers, for the library contexts TLS handshakes run on
 * (server_ctx.c).
 *
 * Why: OpenSSL 3.0 decodes the public key of every certificate it parses
 * through OSSL_DECODER_CTX_new_for_pkey, which walks every decoder its
 * library context offers, several times, on every call (3.2 caches the
 * result; 3.0, Debian 12's, does not).  The default provider offers 40;
 * for a P-256 client certificate that walk was most of d2i_X509's 125 us.
 * A context offering only the DER decoders of the key types a TLS peer
 * can sign with (EC, RSA, RSA-PSS, Ed25519, Ed448) decodes the same
 * certificate in about 60 us.  The same decode walks every key manager,
 * constructing each: offering only those a TLS server uses saves a few
 * more microseconds per certificate.
 *
 * Everything else (ciphers, digests, signatures, key exchange, random
 * numbers, TLS capabilities) is the default provider's own, from an
 * instance loaded in a library context of its own (`inner`), which must
 * outlive every context the lean provider is loaded in. */
#ifndef CORE_TLS_LEAN_PROVIDER_H
#define CORE_TLS_LEAN_PROVIDER_H

#include <openssl/provider.h>

#define LEAN_PROVIDER_NAME "provd-lean"

/* Loads provd-lean into lib, serving inner_borrow's algorithms (a
 * default provider).  Returns lib's handle on it (unloaded with lib or
 * OSSL_PROVIDER_unload), or NULL with OpenSSL's queue saying why. */
OSSL_PROVIDER *lean_provider_load(OSSL_LIB_CTX *lib,
                                  OSSL_PROVIDER *inner_borrow);

#endif
