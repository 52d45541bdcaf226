/* SAS tokens, base64 and percent-encoding (core/util/sas.c, b64.c, url.c)
 * against the key-derivation example of the public DPS symmetric-key attestation docs
 * and a token captured from the Node SDK on the wire. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "util/b64.h"
#include "util/err.h"
#include "util/sas.h"
#include "util/url.h"

#define SCOPE "0ne00000001"
#define GROUP_KEY                                                         \
  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy" \
  "MzQ1Njc4OTo7PD0+Pw=="
#define DERIVED_KEY "PwWLNQcgwUM7umLtdFva7RW9dQ0Jh95PyVXmas3rSqQ="
#define SIG_LOWER_ENC "awS%2Bv1Fh%2B1614Lq27zBB4sO9mtdb%2FEB51OADzSgPdfM%3D"
#define SIG_LOWER_RAW "awS+v1Fh+1614Lq27zBB4sO9mtdb/EB51OADzSgPdfM="
#define SIG_UPPER_RAW "LsJ1OhrHJ6E6aaLXZ+PIWDZBexWYQ0haYa6VEZzBLdo="
#define SR_LOWER SCOPE "%2fregistrations%2fmy-device-001"
#define SR_UPPER SCOPE "%2Fregistrations%2Fmy-device-001"
#define RESOURCE SCOPE "/registrations/my-device-001"

#define TRACE_KEY "WKjo9FDRrHYGVYaJ6OAqxFFHO6V9yicFCr21Hy9yJbc="
#define TRACE_TOKEN                                                       \
  "SharedAccessSignature sr=0ne00000001/registrations/symkey-http-01&sig=" \
  "cgPsLmmuM%2FJdgbLNSnCCjawOMBBFtA0Gih5ffxFY%2Fog%3D&skn=registration&"   \
  "se=1795374521"

/* Decodes a base64 key the test trusts. */
static size_t key_of(const char *b64, uint8_t *out, size_t cap)
{
  size_t n = 0;
  ck_assert_int_eq(b64_decode(b64, out, cap, &n), 0);
  return n;
}

static void parse_ok(const char *text, struct sas_token *t)
{
  struct provd_err err = {{0}, {0}};
  int rc = sas_parse(text, t, &err);
  ck_assert_msg(rc == 0, "parse failed for '%s': %s", text, err.msg);
}

/* ---- spec test vectors ---- */

START_TEST(t_group_key_bytes_encode)
{
  uint8_t bytes[64];
  for (int i = 0; i < 64; i++)
    bytes[i] = (uint8_t)i;
  char *s = b64_encode(bytes, sizeof(bytes));
  ck_assert_str_eq(s, GROUP_KEY);
  free(s);
}
END_TEST

START_TEST(t_derive_device_key)
{
  char out[64];
  ck_assert_int_eq(
      sas_derive_device_key(GROUP_KEY, "my-device-001", out, sizeof(out)), 0);
  ck_assert_str_eq(out, DERIVED_KEY);
  /* A different registration id gives a different key. */
  ck_assert_int_eq(
      sas_derive_device_key(GROUP_KEY, "my-device-002", out, sizeof(out)), 0);
  ck_assert_str_ne(out, DERIVED_KEY);
}
END_TEST

START_TEST(t_derive_rejects)
{
  char out[64];
  ck_assert_int_eq(sas_derive_device_key("not base64!", "d", out, 64), -1);
  ck_assert_int_eq(sas_derive_device_key("", "d", out, 64), -1);
  ck_assert_int_eq(sas_derive_device_key(GROUP_KEY, "d", out, 44), -1);
  ck_assert_int_eq(sas_derive_device_key(NULL, "d", out, 64), -1);
}
END_TEST

START_TEST(t_vector_lowercase_sr)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok("SharedAccessSignature sr=" SR_LOWER "&sig=" SIG_LOWER_ENC
           "&se=1700000000&skn=registration",
           &t);
  ck_assert_str_eq(t.sr_raw, SR_LOWER);
  ck_assert_str_eq(t.sig, SIG_LOWER_RAW);
  ck_assert_str_eq(t.se_raw, "1700000000");
  ck_assert_str_eq(t.skn, "registration");
  ck_assert_int_eq(t.se, 1700000000);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
  ck_assert_int_eq(sas_resource_is(&t, RESOURCE), 1);
}
END_TEST

START_TEST(t_vector_uppercase_sr)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok("SharedAccessSignature sr=" SR_UPPER
           "&sig=LsJ1OhrHJ6E6aaLXZ%2BPIWDZBexWYQ0haYa6VEZzBLdo%3D"
           "&se=1700000000&skn=registration",
           &t);
  ck_assert_str_eq(t.sig, SIG_UPPER_RAW);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
  ck_assert_int_eq(sas_resource_is(&t, RESOURCE), 1);
}
END_TEST

/* The signature covers the raw sr: the lowercase token's sig does not
 * verify once the escapes are uppercased. */
START_TEST(t_escape_case_is_signed)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok("SharedAccessSignature sr=" SR_UPPER "&sig=" SIG_LOWER_ENC
           "&se=1700000000",
           &t);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 0);
  ck_assert_int_eq(sas_resource_is(&t, RESOURCE), 1);
}
END_TEST

START_TEST(t_wire_trace_node)
{
  uint8_t key[64];
  size_t klen = key_of(TRACE_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok(TRACE_TOKEN, &t);
  ck_assert_str_eq(t.sr_raw, "0ne00000001/registrations/symkey-http-01");
  ck_assert_str_eq(t.sig, "cgPsLmmuM/JdgbLNSnCCjawOMBBFtA0Gih5ffxFY/og=");
  ck_assert_int_eq(t.se, 1795374521);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
  ck_assert_int_eq(
      sas_resource_is(&t, "0ne00000001/registrations/symkey-http-01"), 1);
}
END_TEST

/* ---- verification outcomes ---- */

START_TEST(t_wrong_key)
{
  uint8_t key[64];
  size_t klen = key_of(TRACE_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok(TRACE_TOKEN, &t);
  key[_i % klen] ^= (uint8_t)(1u << (_i % 8));
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 0);
}
END_TEST

START_TEST(t_truncated_key)
{
  uint8_t key[64];
  size_t klen = key_of(TRACE_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok(TRACE_TOKEN, &t);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen - 1), 0);
}
END_TEST

/* Two keys, as with primary / secondary: each token verifies only with the
 * key that signed it. */
START_TEST(t_secondary_key)
{
  uint8_t k1[32], k2[32];
  ck_assert_int_eq(RAND_bytes(k1, sizeof(k1)), 1);
  ck_assert_int_eq(RAND_bytes(k2, sizeof(k2)), 1);
  char *tok = sas_build(RESOURCE, k2, sizeof(k2), 1700000000, "registration");
  ck_assert_ptr_nonnull(tok);
  struct sas_token t;
  parse_ok(tok, &t);
  ck_assert_int_eq(sas_signature_ok(&t, k1, sizeof(k1)), 0);
  ck_assert_int_eq(sas_signature_ok(&t, k2, sizeof(k2)), 1);
  free(tok);
}
END_TEST

/* A sig that decodes to something other than 32 bytes never verifies. */
START_TEST(t_sig_wrong_length)
{
  uint8_t key[64];
  size_t klen = key_of(TRACE_KEY, key, sizeof(key));
  static const char *const toks[] = {
      /* 31 bytes: the real MAC minus its last byte */
      "SharedAccessSignature sr=0ne00000001/registrations/symkey-http-01&"
      "sig=cgPsLmmuM%2FJdgbLNSnCCjawOMBBFtA0Gih5ffxFY%2Fg%3D%3D&se=1795374521",
      /* not base64 at all */
      "SharedAccessSignature sr=0ne00000001/registrations/symkey-http-01&"
      "sig=%21%21%21%21&se=1795374521",
      /* 33 bytes */
      "SharedAccessSignature sr=0ne00000001/registrations/symkey-http-01&"
      "sig=cgPsLmmuM%2FJdgbLNSnCCjawOMBBFtA0Gih5ffxFY%2FogA&se=1795374521",
  };
  for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
    struct sas_token t;
    parse_ok(toks[i], &t);
    ck_assert_int_eq(sas_signature_ok(&t, key, klen), 0);
  }
}
END_TEST

START_TEST(t_expiry)
{
  struct sas_token t;
  parse_ok(TRACE_TOKEN, &t);
  const int64_t se = 1795374521;
  ck_assert_int_eq(sas_expired(&t, se - 1, 0), 0);
  ck_assert_int_eq(sas_expired(&t, se, 0), 0);
  ck_assert_int_eq(sas_expired(&t, se + 1, 0), 1);
  ck_assert_int_eq(sas_expired(&t, se + 300, 300), 0);
  ck_assert_int_eq(sas_expired(&t, se + 301, 300), 1);
  ck_assert_int_eq(sas_expired(&t, se + 1, -5), 1); /* negative skew = 0 */
}
END_TEST

/* ---- malformed tokens ---- */

static const char *const malformed[] = {
    "",
    "SharedAccessSignature",
    "SharedAccessSignature ",
    "Bearer eyJhbGciOi",
    "sharedaccesssignature sr=a&sig=QQ%3D%3D&se=1",
    "SharedAccessSignaturesr=a&sig=QQ%3D%3D&se=1",
    "SharedAccessSignature sig=QQ%3D%3D&se=1",             /* no sr */
    "SharedAccessSignature sr=a&se=1",                     /* no sig */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D",             /* no se */
    "SharedAccessSignature sr=&sig=QQ%3D%3D&se=1",         /* empty sr */
    "SharedAccessSignature sr=a&sig=&se=1",                /* empty sig */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=",         /* empty se */
    "SharedAccessSignature sr=a&sr=b&sig=QQ%3D%3D&se=1",   /* duplicate */
    "SharedAccessSignature sr=a&SR=a&sig=QQ%3D%3D&se=1",   /* dup, case */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=1&se=2",   /* dup se */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=1&skn=x&skn=y",
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=abc",      /* se not num */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=-1",
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=1e9",
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=%31",
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=99999999999999999999",
    "SharedAccessSignature sr=a%zz&sig=QQ%3D%3D&se=1",     /* bad escape */
    "SharedAccessSignature sr=a%2&sig=QQ%3D%3D&se=1",      /* cut escape */
    "SharedAccessSignature sr=a&sig=QQ%3D%3&se=1",
    "SharedAccessSignature sr=a%00b&sig=QQ%3D%3D&se=1",    /* NUL */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&skn=a%g1&se=1",
    "SharedAccessSignature sr=a&&sig=QQ%3D%3D&se=1",       /* empty field */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=1&",       /* trailing & */
    "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=1&junk",   /* no '=' */
    "SharedAccessSignature sr=a&=x&sig=QQ%3D%3D&se=1",     /* no name */
};

/* limits.max_service_token_lifetime: a token may expire at most
 * lifetime + skew after now; one second more is too far. */
START_TEST(t_expiry_too_far)
{
  const int64_t now = 1700000000, hour = 3600, skew = 300;
  ck_assert_int_eq(sas_expiry_too_far(now + hour, now, hour, skew), 0);
  ck_assert_int_eq(sas_expiry_too_far(now + hour + skew, now, hour, skew),
                   0);
  ck_assert_int_eq(
      sas_expiry_too_far(now + hour + skew + 1, now, hour, skew), 1);
  ck_assert_int_eq(sas_expiry_too_far(now - 10, now, hour, skew), 0);
  ck_assert_int_eq(sas_expiry_too_far(now + 2 * hour, now, hour, 0), 1);
  ck_assert_int_eq(sas_expiry_too_far(now + 366LL * 24 * hour, now,
                                      366LL * 24 * hour, skew), 0);
  /* the largest expiry a token can carry (18 digits) cannot overflow */
  ck_assert_int_eq(sas_expiry_too_far(999999999999999999LL, now, hour, skew),
                   1);
}
END_TEST

START_TEST(t_malformed)
{
  struct sas_token t;
  struct provd_err err = {{0}, {0}};
  const char *text = malformed[_i];
  ck_assert_msg(sas_parse(text, &t, &err) == -1, "accepted '%s'", text);
  ck_assert_str_eq(err.code, "MALFORMED_TOKEN");
  ck_assert_msg(err.msg[0] != '\0', "no message for '%s'", text);
}
END_TEST

START_TEST(t_malformed_null)
{
  struct sas_token t;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(sas_parse(NULL, &t, &err), -1);
  ck_assert_str_eq(err.code, "MALFORMED_TOKEN");
}
END_TEST

/* SAS_MAX_TOKEN - 1 bytes still parse; one more is refused. */
START_TEST(t_too_long)
{
  static const char head[] = "SharedAccessSignature sr=";
  static const char tail[] = "&sig=QQ%3D%3D&se=1";
  char *text = malloc(SAS_MAX_TOKEN + 2);
  ck_assert_ptr_nonnull(text);
  size_t fill = SAS_MAX_TOKEN - 1 - strlen(head) - strlen(tail);
  memcpy(text, head, strlen(head));
  memset(text + strlen(head), 'a', fill);
  memcpy(text + strlen(head) + fill, tail, sizeof(tail));
  ck_assert_uint_eq(strlen(text), SAS_MAX_TOKEN - 1);
  struct sas_token t;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(sas_parse(text, &t, &err), 0);

  memmove(text + 1, text, strlen(text) + 1);
  memcpy(text, "SharedAccessSignature sr=a", 26); /* one more 'a' */
  ck_assert_uint_eq(strlen(text), SAS_MAX_TOKEN);
  ck_assert_int_eq(sas_parse(text, &t, &err), -1);
  ck_assert_str_eq(err.code, "MALFORMED_TOKEN");
  free(text);
}
END_TEST

/* ---- accepted variants ---- */

/* sig may arrive unencoded (base64 '+', '/', '='): "+" is not a space. */
START_TEST(t_sig_not_url_encoded)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok("SharedAccessSignature sr=" SR_LOWER "&sig=" SIG_LOWER_RAW
           "&se=1700000000",
           &t);
  ck_assert_str_eq(t.sig, SIG_LOWER_RAW);
  ck_assert_ptr_null(t.skn);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
}
END_TEST

/* Every order of the four fields parses to the same verified token. */
START_TEST(t_field_order)
{
  static const char *const f[] = {("sr=" SR_LOWER), ("sig=" SIG_LOWER_ENC),
                                  "se=1700000000", "skn=registration"};
  static const int perm[][4] = {
      {0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 3, 0, 1},
      {1, 2, 3, 0}, {3, 0, 1, 2}, {0, 3, 1, 2}, {2, 1, 0, 3},
  };
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  for (size_t p = 0; p < sizeof(perm) / sizeof(perm[0]); p++) {
    char text[512];
    snprintf(text, sizeof(text), "SharedAccessSignature %s&%s&%s&%s",
             f[perm[p][0]], f[perm[p][1]], f[perm[p][2]], f[perm[p][3]]);
    struct sas_token t;
    parse_ok(text, &t);
    ck_assert_str_eq(t.sr_raw, SR_LOWER);
    ck_assert_str_eq(t.skn, "registration");
    ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
  }
}
END_TEST

START_TEST(t_field_names_case_insensitive)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok("SharedAccessSignature SR=" SR_LOWER "&Sig=" SIG_LOWER_ENC
           "&sE=1700000000&SKN=registration",
           &t);
  ck_assert_str_eq(t.skn, "registration");
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
}
END_TEST

START_TEST(t_unknown_field_ignored)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  struct sas_token t;
  parse_ok("SharedAccessSignature sr=" SR_LOWER "&sig=" SIG_LOWER_ENC
           "&x=1&se=1700000000",
           &t);
  ck_assert_int_eq(sas_signature_ok(&t, key, klen), 1);
}
END_TEST

START_TEST(t_resource_compare)
{
  struct sas_token t;
  parse_ok("SharedAccessSignature sr=" SR_LOWER "&sig=" SIG_LOWER_ENC
           "&se=1700000000",
           &t);
  ck_assert_int_eq(sas_resource_is(&t, RESOURCE), 1);
  ck_assert_int_eq(sas_resource_is(&t, "0NE00000001/Registrations/MY-DEVICE-001"), 1);
  ck_assert_int_eq(sas_resource_is(&t, SCOPE "/registrations/my-device-002"), 0);
  ck_assert_int_eq(sas_resource_is(&t, SCOPE "/registrations/my-device-00"), 0);
  ck_assert_int_eq(sas_resource_is(&t, SCOPE "/registrations/my-device-0011"), 0);
  ck_assert_int_eq(sas_resource_is(&t, "0ne00000002/registrations/my-device-001"), 0);
  ck_assert_int_eq(sas_resource_is(&t, SR_LOWER), 0); /* compares decoded */
  ck_assert_int_eq(sas_resource_is(&t, ""), 0);
}
END_TEST

/* ---- building ---- */

START_TEST(t_build_roundtrip)
{
  uint8_t key[64];
  ck_assert_int_eq(RAND_bytes(key, sizeof(key)), 1);
  const char *skn = _i ? "registration" : NULL;
  char *tok = sas_build(RESOURCE, key, sizeof(key), 1800000000, skn);
  ck_assert_ptr_nonnull(tok);
  struct sas_token t;
  parse_ok(tok, &t);
  ck_assert_str_eq(t.sr_raw, SR_UPPER); /* url_encode: uppercase hex */
  ck_assert_str_eq(t.se_raw, "1800000000");
  ck_assert_int_eq(t.se, 1800000000);
  if (skn)
    ck_assert_str_eq(t.skn, skn);
  else
    ck_assert_ptr_null(t.skn);
  ck_assert_int_eq(sas_signature_ok(&t, key, sizeof(key)), 1);
  ck_assert_int_eq(sas_resource_is(&t, RESOURCE), 1);
  free(tok);
}
END_TEST

/* sas_build with the derived key reproduces the spec's uppercase vector. */
START_TEST(t_build_matches_vector)
{
  uint8_t key[64];
  size_t klen = key_of(DERIVED_KEY, key, sizeof(key));
  char *tok = sas_build(RESOURCE, key, klen, 1700000000, "registration");
  ck_assert_ptr_nonnull(tok);
  ck_assert_ptr_nonnull(
      strstr(tok, "sig=LsJ1OhrHJ6E6aaLXZ%2BPIWDZBexWYQ0haYa6VEZzBLdo%3D"));
  free(tok);
}
END_TEST

/* ---- base64 ---- */

START_TEST(t_b64_rfc4648)
{
  static const char *const plain[] = {"", "f", "fo", "foo", "foob",
                                      "fooba", "foobar"};
  static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                    "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char *s = b64_encode((const uint8_t *)plain[i], strlen(plain[i]));
    ck_assert_str_eq(s, enc[i]);
    free(s);
    uint8_t out[16];
    size_t n = 99;
    ck_assert_int_eq(b64_decode(enc[i], out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, strlen(plain[i]));
    ck_assert(memcmp(out, plain[i], n) == 0);
  }
}
END_TEST

START_TEST(t_b64_roundtrip)
{
  uint8_t in[80], out[80];
  size_t len = (size_t)_i;
  ck_assert_int_eq(RAND_bytes(in, sizeof(in)), 1);
  char *s = b64_encode(in, len);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(strlen(s), (len + 2) / 3 * 4);
  size_t n = 0;
  ck_assert_int_eq(b64_decode(s, out, sizeof(out), &n), 0);
  ck_assert_uint_eq(n, len);
  ck_assert(memcmp(in, out, len) == 0);
  /* Exactly enough room works; one byte less does not. */
  if (len > 0) {
    ck_assert_int_eq(b64_decode(s, out, len, &n), 0);
    ck_assert_int_eq(b64_decode(s, out, len - 1, &n), B64_TOO_SMALL);
  }
  free(s);
}
END_TEST

START_TEST(t_b64_rejects)
{
  static const char *const bad[] = {
      "A",     "AB",     "ABC",    "AB=",   "A===",  "====",   "AB=C",
      "A=BC",  "ABC$",   "AB C",   "ABCD\n", " ABC", "Zg=a",  "Zm9v=",
      "QR==",  /* non-zero bits under the padding */
      "QUJ=",  "Zm9vYh==", "Zm9v====", "-_-_", "Zg==Zg==",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint8_t out[32];
    size_t n = 0;
    ck_assert_msg(b64_decode(bad[i], out, sizeof(out), &n) == -1,
                  "accepted '%s'", bad[i]);
  }
  uint8_t out[4];
  size_t n;
  ck_assert_int_eq(b64_decode(NULL, out, sizeof(out), &n), -1);
}
END_TEST

/* ---- percent-encoding ---- */

START_TEST(t_url_encode_decode)
{
  char enc[64], dec[64];
  ck_assert_int_eq(url_encode("a/b c+~-._=", enc, sizeof(enc)), 0);
  ck_assert_str_eq(enc, "a%2Fb%20c%2B~-._%3D");
  ck_assert_int_eq(url_decode(enc, strlen(enc), dec, sizeof(dec)), 0);
  ck_assert_str_eq(dec, "a/b c+~-._=");
  ck_assert_int_eq(url_decode("%2f%2F+", 7, dec, sizeof(dec)), 0);
  ck_assert_str_eq(dec, "//+");
  /* in_len bounds the input: the escape after it is not read. */
  ck_assert_int_eq(url_decode("ab%2f", 2, dec, sizeof(dec)), 0);
  ck_assert_str_eq(dec, "ab");
}
END_TEST

START_TEST(t_url_rejects)
{
  char out[8];
  ck_assert_int_eq(url_decode("%", 1, out, sizeof(out)), -1);
  ck_assert_int_eq(url_decode("%4", 2, out, sizeof(out)), -1);
  ck_assert_int_eq(url_decode("%4g", 3, out, sizeof(out)), -1);
  ck_assert_int_eq(url_decode("%G4", 3, out, sizeof(out)), -1);
  ck_assert_int_eq(url_decode("%00", 3, out, sizeof(out)), -1);
  ck_assert_int_eq(url_decode("12345678", 8, out, sizeof(out)), -1);
  ck_assert_int_eq(url_decode("1234567", 7, out, sizeof(out)), 0);
  ck_assert_str_eq(out, "1234567");
  ck_assert_int_eq(url_encode("1234567", out, sizeof(out)), 0);
  ck_assert_int_eq(url_encode("12345678", out, sizeof(out)), -1);
  ck_assert_int_eq(url_encode("12/", out, 5), -1); /* "12%2F" + NUL */
  ck_assert_int_eq(url_encode("12/", out, 6), 0);
  ck_assert_str_eq(out, "12%2F");
}
END_TEST

static Suite *sas_suite(void)
{
  Suite *s = suite_create("sas");
  TCase *tc = tcase_create("vectors");
  tcase_add_test(tc, t_group_key_bytes_encode);
  tcase_add_test(tc, t_derive_device_key);
  tcase_add_test(tc, t_derive_rejects);
  tcase_add_test(tc, t_vector_lowercase_sr);
  tcase_add_test(tc, t_vector_uppercase_sr);
  tcase_add_test(tc, t_escape_case_is_signed);
  tcase_add_test(tc, t_wire_trace_node);
  suite_add_tcase(s, tc);

  tc = tcase_create("verify");
  tcase_add_loop_test(tc, t_wrong_key, 0, 64);
  tcase_add_test(tc, t_truncated_key);
  tcase_add_test(tc, t_secondary_key);
  tcase_add_test(tc, t_sig_wrong_length);
  tcase_add_test(tc, t_expiry);
  tcase_add_test(tc, t_expiry_too_far);
  tcase_add_test(tc, t_resource_compare);
  suite_add_tcase(s, tc);

  tc = tcase_create("parse");
  tcase_add_loop_test(tc, t_malformed, 0,
                      (int)(sizeof(malformed) / sizeof(malformed[0])));
  tcase_add_test(tc, t_malformed_null);
  tcase_add_test(tc, t_too_long);
  tcase_add_test(tc, t_sig_not_url_encoded);
  tcase_add_test(tc, t_field_order);
  tcase_add_test(tc, t_field_names_case_insensitive);
  tcase_add_test(tc, t_unknown_field_ignored);
  suite_add_tcase(s, tc);

  tc = tcase_create("build");
  tcase_add_loop_test(tc, t_build_roundtrip, 0, 2);
  tcase_add_test(tc, t_build_matches_vector);
  suite_add_tcase(s, tc);

  tc = tcase_create("encoding");
  tcase_add_test(tc, t_b64_rfc4648);
  tcase_add_loop_test(tc, t_b64_roundtrip, 0, 80);
  tcase_add_test(tc, t_b64_rejects);
  tcase_add_test(tc, t_url_encode_decode);
  tcase_add_test(tc, t_url_rejects);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(sas_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
