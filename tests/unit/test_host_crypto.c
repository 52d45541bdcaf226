/* The host services of ABI minor 1 (core/plugin/host_crypto.c), called
 * through the table a plugin gets: base64, HMAC-SHA256 and SAS tokens,
 * their size limits and reason codes.  Linked with
 * -Wl,--wrap=CRYPTO_memcmp so that the test sees the signature compared
 * by OpenSSL's constant-time function. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "plugin/loader.h"
#include "provd/host.h"
#include "provd/plugin.h"
#include "util/err.h"

/* A token of the Node SDK wire trace and the key that signed it. */
#define TRACE_KEY "WKjo9FDRrHYGVYaJ6OAqxFFHO6V9yicFCr21Hy9yJbc="
#define TRACE_RESOURCE "0ne00000001/registrations/symkey-http-01"
#define TRACE_SE 1795374521LL
#define TRACE_SIG "cgPsLmmuM%2FJdgbLNSnCCjawOMBBFtA0Gih5ffxFY%2Fog%3D"
#define TRACE_TOKEN                                                       \
  "SharedAccessSignature sr=" TRACE_RESOURCE "&sig=" TRACE_SIG            \
  "&skn=registration&se=1795374521"

static size_t memcmp_calls, memcmp_last_len;
int __real_CRYPTO_memcmp(const void *a, const void *b, size_t len);
int __wrap_CRYPTO_memcmp(const void *a, const void *b, size_t len);
int __wrap_CRYPTO_memcmp(const void *a, const void *b, size_t len)
{
  memcmp_calls++;
  memcmp_last_len = len;
  return __real_CRYPTO_memcmp(a, b, len);
}

static const struct provd_host_api *h;
static struct provd_err err;

static void setup(void)
{
  h = host_api();
  perr_clear(&err);
}

/* rc is `want` and err carries `reason`. */
#define ck_fails(rc, want, reason)                                        \
  do {                                                                    \
    ck_assert_int_eq((rc), (want));                                       \
    ck_assert_str_eq(err.code, (reason));                                 \
  } while (0)

static size_t trace_key(uint8_t *key)
{
  size_t n = 0;
  ck_assert_int_eq(h->b64_decode(TRACE_KEY, strlen(TRACE_KEY), key, 64, &n,
                                 NULL),
                   PROVD_OK);
  ck_assert_uint_eq(n, 32);
  return n;
}

START_TEST(t_table_is_minor_1)
{
  ck_assert_uint_eq(h->abi_minor, PROVD_ABI_MINOR);
  ck_assert_uint_ge(PROVD_ABI_MINOR, 1);
  ck_assert(PROVD_HAS(h, struct provd_host_api, b64_encode));
  ck_assert(PROVD_HAS(h, struct provd_host_api, sas_verify));
  ck_assert_ptr_nonnull(h->b64_encode);
  ck_assert_ptr_nonnull(h->b64_decode);
  ck_assert_ptr_nonnull(h->hmac_sha256);
  ck_assert_ptr_nonnull(h->sas_parse);
  ck_assert_ptr_nonnull(h->sas_check);
  ck_assert_ptr_nonnull(h->sas_verify);
}
END_TEST

/* ---- base64 ---- */

START_TEST(t_b64_vectors)
{
  static const char *const plain[] = {"", "f", "fo", "foo", "foob",
                                      "fooba", "foobar"};
  static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                    "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
    char out[16];
    size_t n = 99;
    ck_assert_int_eq(h->b64_encode((const uint8_t *)plain[i],
                                   strlen(plain[i]), out, sizeof(out), &n,
                                   &err),
                     PROVD_OK);
    ck_assert_str_eq(out, enc[i]);
    ck_assert_uint_eq(n, strlen(enc[i]));
    uint8_t raw[16];
    ck_assert_int_eq(h->b64_decode(enc[i], strlen(enc[i]), raw, sizeof(raw),
                                   &n, &err),
                     PROVD_OK);
    ck_assert_uint_eq(n, strlen(plain[i]));
    ck_assert_int_eq(memcmp(raw, plain[i], n), 0);
  }
}
END_TEST

START_TEST(t_b64_decode_reads_exactly_in_len)
{
  uint8_t raw[8];
  size_t n = 0;
  ck_assert_int_eq(h->b64_decode("Zm9vYmFy", 4, raw, sizeof(raw), &n, &err),
                   PROVD_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(memcmp(raw, "foo", 3), 0);
}
END_TEST

START_TEST(t_b64_decode_rejects_bad_base64)
{
  static const char *const bad[] = {
      "Zm9",       /* length not a multiple of 4 */
      "Zm9v YmFy", /* whitespace */
      "Zm9vYm\nF", /* newline */
      "Zm=v",      /* padding inside */
      "Zh==",      /* non-zero bits under the padding */
      "Zm9-",      /* URL-safe alphabet */
      "====",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint8_t raw[16];
    size_t n = 0;
    perr_clear(&err);
    ck_fails(h->b64_decode(bad[i], strlen(bad[i]), raw, sizeof(raw), &n,
                           &err),
             PROVD_E_INVAL, "MALFORMED_BASE64");
  }
  /* A NUL inside the given length is not base64 either. */
  uint8_t raw[8];
  size_t n = 0;
  ck_fails(h->b64_decode("Zm9v\0\0\0\0", 8, raw, sizeof(raw), &n, &err),
           PROVD_E_INVAL, "MALFORMED_BASE64");
}
END_TEST

START_TEST(t_b64_buffers_and_limits)
{
  char out[8];
  size_t n = 0;
  /* "foobar" needs 8 characters and the NUL. */
  ck_fails(h->b64_encode((const uint8_t *)"foobar", 6, out, sizeof(out), &n,
                         &err),
           PROVD_E_INVAL, "BUFFER_TOO_SMALL");
  uint8_t raw[5];
  ck_fails(h->b64_decode("Zm9vYmFy", 8, raw, sizeof(raw), &n, &err),
           PROVD_E_INVAL, "BUFFER_TOO_SMALL");
  ck_fails(h->b64_decode("Zm9v", 4, raw, sizeof(raw), NULL, &err),
           PROVD_E_INVAL, "BAD_ARGUMENT");

  size_t big = 4 * 1024 * 1024 + 4;
  char *text = malloc(big + 1);
  ck_assert_ptr_nonnull(text);
  memset(text, 'A', big);
  text[big] = '\0';
  uint8_t *sink = malloc(big);
  ck_assert_ptr_nonnull(sink);
  ck_fails(h->b64_decode(text, big, sink, big, &n, &err), PROVD_E_INVAL,
           "INPUT_TOO_LONG");
  ck_fails(h->b64_encode(sink, 1024 * 1024 + 1, text, big, &n, &err),
           PROVD_E_INVAL, "INPUT_TOO_LONG");
  free(sink);
  free(text);
}
END_TEST

START_TEST(t_null_err_is_allowed)
{
  uint8_t raw[4];
  size_t n = 0;
  ck_assert_int_eq(h->b64_decode("!!!!", 4, raw, sizeof(raw), &n, NULL),
                   PROVD_E_INVAL);
}
END_TEST

/* ---- HMAC ---- */

START_TEST(t_hmac_rfc4231_case_2)
{
  static const uint8_t want[32] = {
      0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
      0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
      0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  const char *msg = "what do ya want for nothing?";
  uint8_t mac[PROVD_HMAC_SHA256_LEN];
  ck_assert_int_eq(h->hmac_sha256((const uint8_t *)"Jefe", 4,
                                  (const uint8_t *)msg, strlen(msg), mac,
                                  sizeof(mac), &err),
                   PROVD_OK);
  ck_assert_int_eq(memcmp(mac, want, sizeof(want)), 0);
}
END_TEST

START_TEST(t_hmac_limits)
{
  uint8_t mac[PROVD_HMAC_SHA256_LEN];
  ck_fails(h->hmac_sha256((const uint8_t *)"k", 1, (const uint8_t *)"m", 1,
                          mac, sizeof(mac) - 1, &err),
           PROVD_E_INVAL, "BUFFER_TOO_SMALL");
  static uint8_t long_key[1025];
  ck_fails(h->hmac_sha256(long_key, sizeof(long_key), (const uint8_t *)"m",
                          1, mac, sizeof(mac), &err),
           PROVD_E_INVAL, "INPUT_TOO_LONG");
  ck_fails(h->hmac_sha256(NULL, 4, (const uint8_t *)"m", 1, mac, sizeof(mac),
                          &err),
           PROVD_E_INVAL, "BAD_ARGUMENT");
}
END_TEST

/* ---- SAS tokens ---- */

struct parsed {
  struct provd_sas_token tok;
  char buf[PROVD_SAS_BUF_SIZE];
};

static int parse(const char *text, struct parsed *p)
{
  memset(p, 0, sizeof(*p));
  p->tok.struct_size = sizeof(p->tok);
  perr_clear(&err);
  return h->sas_parse(text, p->buf, sizeof(p->buf), &p->tok, &err);
}

START_TEST(t_sas_parse_fields)
{
  struct parsed p;
  ck_assert_int_eq(parse(TRACE_TOKEN, &p), PROVD_OK);
  ck_assert_str_eq(p.tok.resource_raw, TRACE_RESOURCE);
  ck_assert_str_eq(p.tok.resource, TRACE_RESOURCE);
  ck_assert_str_eq(p.tok.signature,
                   "cgPsLmmuM/JdgbLNSnCCjawOMBBFtA0Gih5ffxFY/og=");
  ck_assert_str_eq(p.tok.expiry_raw, "1795374521");
  ck_assert_int_eq(p.tok.expiry, TRACE_SE);
  ck_assert_str_eq(p.tok.key_name, "registration");

  /* sr stays as sent for the MAC; the decoded copy is for comparing. */
  ck_assert_int_eq(parse("SharedAccessSignature sr=a%2Fb&sig=x&se=1", &p),
                   PROVD_OK);
  ck_assert_str_eq(p.tok.resource_raw, "a%2Fb");
  ck_assert_str_eq(p.tok.resource, "a/b");
  ck_assert_ptr_null(p.tok.key_name);
}
END_TEST

START_TEST(t_sas_parse_errors)
{
  static const char *const bad[] = {
      "",
      "Bearer abc",
      "SharedAccessSignature sig=x&se=1",            /* no sr */
      "SharedAccessSignature sr=a&se=1",             /* no sig */
      "SharedAccessSignature sr=a&sig=x",            /* no se */
      "SharedAccessSignature sr=a&sig=x&se=1&sr=b",  /* sr twice */
      "SharedAccessSignature sr=a&sig=x&se=12a",     /* se not a number */
      "SharedAccessSignature sr=a%2&sig=x&se=1",     /* bad escape */
      "SharedAccessSignature sr=a%00b&sig=x&se=1",   /* NUL escape */
      "SharedAccessSignature sr=a&sig=x&se=1&junk",  /* not name=value */
      "SharedAccessSignature sr=a&sig=x&se=1234567890123456789", /* 19 */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct parsed p;
    ck_assert_msg(parse(bad[i], &p) == PROVD_E_INVAL, "accepted: %s",
                  bad[i]);
    ck_assert_str_eq(err.code, "MALFORMED_TOKEN");
  }
  struct parsed p;
  ck_assert_int_eq(parse(NULL, &p), PROVD_E_INVAL);
  ck_assert_str_eq(err.code, "MALFORMED_TOKEN");
}
END_TEST

START_TEST(t_sas_parse_overlong_token)
{
  size_t len = PROVD_SAS_MAX_TOKEN;
  char *text = malloc(len + 1);
  ck_assert_ptr_nonnull(text);
  int n = snprintf(text, len + 1, "SharedAccessSignature sig=x&se=1&sr=");
  memset(text + n, 'a', len - (size_t)n);
  text[len] = '\0';
  struct parsed p;
  ck_assert_int_eq(parse(text, &p), PROVD_E_INVAL);
  ck_assert_str_eq(err.code, "MALFORMED_TOKEN");
  ck_assert_ptr_nonnull(strstr(err.msg, "longer"));
  /* One byte shorter fits. */
  text[len - 1] = '\0';
  ck_assert_int_eq(parse(text, &p), PROVD_OK);
  free(text);
}
END_TEST

START_TEST(t_sas_parse_caller_buffer)
{
  struct provd_sas_token tok = {.struct_size = sizeof(tok)};
  size_t need = 2 * (strlen(TRACE_TOKEN) + 1);
  char *buf = malloc(need);
  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(h->sas_parse(TRACE_TOKEN, buf, need, &tok, &err),
                   PROVD_OK);
  ck_fails(h->sas_parse(TRACE_TOKEN, buf, 40, &tok, &err), PROVD_E_INVAL,
           "BUFFER_TOO_SMALL");
  /* A struct from before the fields existed is refused, not overrun. */
  struct provd_sas_token old = {.struct_size = sizeof(uint32_t)};
  ck_fails(h->sas_parse(TRACE_TOKEN, buf, need, &old, &err), PROVD_E_INVAL,
           "BAD_ARGUMENT");
  free(buf);
}
END_TEST

START_TEST(t_sas_verify_right_and_wrong_key)
{
  struct parsed p;
  ck_assert_int_eq(parse(TRACE_TOKEN, &p), PROVD_OK);
  uint8_t key[64];
  size_t key_len = trace_key(key);

  size_t before = memcmp_calls;
  ck_assert_int_eq(h->sas_verify(&p.tok, key, key_len, &err), PROVD_OK);
  ck_assert_uint_eq(memcmp_calls, before + 1);
  ck_assert_uint_eq(memcmp_last_len, PROVD_HMAC_SHA256_LEN);

  key[0] ^= 1;
  ck_fails(h->sas_verify(&p.tok, key, key_len, &err), PROVD_DENIED,
           "BAD_SIGNATURE");
  ck_assert_uint_eq(memcmp_calls, before + 2);
  ck_assert_uint_eq(memcmp_last_len, PROVD_HMAC_SHA256_LEN);

  /* The key is right but one signed byte (se) differs. */
  key[0] ^= 1;
  ck_assert_int_eq(parse("SharedAccessSignature sr=" TRACE_RESOURCE
                         "&sig=" TRACE_SIG "&se=1795374522",
                         &p),
                   PROVD_OK);
  ck_fails(h->sas_verify(&p.tok, key, key_len, &err), PROVD_DENIED,
           "BAD_SIGNATURE");
}
END_TEST

START_TEST(t_sas_verify_bad_signature_text)
{
  uint8_t key[64];
  size_t key_len = trace_key(key);
  struct parsed p;
  /* sig is not base64 / not 32 bytes: no match, never a crash. */
  ck_assert_int_eq(parse("SharedAccessSignature sr=a&sig=%21%21&se=1", &p),
                   PROVD_OK);
  ck_fails(h->sas_verify(&p.tok, key, key_len, &err), PROVD_DENIED,
           "BAD_SIGNATURE");
  ck_assert_int_eq(parse("SharedAccessSignature sr=a&sig=Zm9v&se=1", &p),
                   PROVD_OK);
  ck_fails(h->sas_verify(&p.tok, key, key_len, &err), PROVD_DENIED,
           "BAD_SIGNATURE");
  ck_fails(h->sas_verify(NULL, key, key_len, &err), PROVD_E_INVAL,
           "BAD_ARGUMENT");
}
END_TEST

static struct provd_sas_policy trace_policy(void)
{
  struct provd_sas_policy pol = {
      .struct_size = sizeof(pol),
      .subject = "registration symkey-http-01",
      .resource = TRACE_RESOURCE,
      .key_name = "registration",
      .now_unix = TRACE_SE - 60,
      .clock_skew_s = 300,
  };
  return pol;
}

START_TEST(t_sas_check_accepts)
{
  struct parsed p;
  ck_assert_int_eq(parse(TRACE_TOKEN, &p), PROVD_OK);
  struct provd_sas_policy pol = trace_policy();
  ck_assert_int_eq(h->sas_check(&p.tok, &pol, &err), PROVD_OK);
  /* The resource compares decoded and ignoring ASCII case. */
  pol.resource = "0NE00000001/Registrations/SYMKEY-http-01";
  ck_assert_int_eq(h->sas_check(&p.tok, &pol, &err), PROVD_OK);
  /* Expired, but within the clock skew (se + skew == now). */
  pol.now_unix = TRACE_SE + 300;
  ck_assert_int_eq(h->sas_check(&p.tok, &pol, &err), PROVD_OK);
  /* No skn in the token: nothing to compare. */
  ck_assert_int_eq(parse("SharedAccessSignature sr=" TRACE_RESOURCE
                         "&sig=x&se=1795374521",
                         &p),
                   PROVD_OK);
  ck_assert_int_eq(h->sas_check(&p.tok, &pol, &err), PROVD_OK);
}
END_TEST

START_TEST(t_sas_check_refuses)
{
  struct parsed p;
  ck_assert_int_eq(parse(TRACE_TOKEN, &p), PROVD_OK);
  struct provd_sas_policy pol = trace_policy();

  pol.resource = "0ne00000001/registrations/other";
  ck_fails(h->sas_check(&p.tok, &pol, &err), PROVD_DENIED,
           "TOKEN_RESOURCE_MISMATCH");
  ck_assert_ptr_nonnull(strstr(err.msg, "registration symkey-http-01: "));

  pol = trace_policy();
  pol.key_name = "service";
  ck_fails(h->sas_check(&p.tok, &pol, &err), PROVD_DENIED, "BAD_KEY_NAME");

  pol = trace_policy();
  pol.now_unix = TRACE_SE + 301;
  ck_fails(h->sas_check(&p.tok, &pol, &err), PROVD_DENIED, "TOKEN_EXPIRED");

  pol = trace_policy();
  pol.max_lifetime_s = 59;
  ck_fails(h->sas_check(&p.tok, &pol, &err), PROVD_DENIED,
           "TOKEN_LIFETIME_TOO_LONG");
  pol.max_lifetime_s = 60;
  ck_assert_int_eq(h->sas_check(&p.tok, &pol, &err), PROVD_OK);

  pol = trace_policy();
  pol.struct_size = sizeof(uint32_t);
  ck_fails(h->sas_check(&p.tok, &pol, &err), PROVD_E_INVAL, "BAD_ARGUMENT");
}
END_TEST

static Suite *host_crypto_suite(void)
{
  Suite *s = suite_create("host_crypto");
  TCase *tc = tcase_create("b64");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, t_table_is_minor_1);
  tcase_add_test(tc, t_b64_vectors);
  tcase_add_test(tc, t_b64_decode_reads_exactly_in_len);
  tcase_add_test(tc, t_b64_decode_rejects_bad_base64);
  tcase_add_test(tc, t_b64_buffers_and_limits);
  tcase_add_test(tc, t_null_err_is_allowed);
  suite_add_tcase(s, tc);
  tc = tcase_create("hmac");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, t_hmac_rfc4231_case_2);
  tcase_add_test(tc, t_hmac_limits);
  suite_add_tcase(s, tc);
  tc = tcase_create("sas");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, t_sas_parse_fields);
  tcase_add_test(tc, t_sas_parse_errors);
  tcase_add_test(tc, t_sas_parse_overlong_token);
  tcase_add_test(tc, t_sas_parse_caller_buffer);
  tcase_add_test(tc, t_sas_verify_right_and_wrong_key);
  tcase_add_test(tc, t_sas_verify_bad_signature_text);
  tcase_add_test(tc, t_sas_check_accepts);
  tcase_add_test(tc, t_sas_check_refuses);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(host_crypto_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
