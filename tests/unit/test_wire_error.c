/* The wire-error module maps every reason code exactly as
 * docs/reason-codes.md documents it, hides which authentication check
 * failed, and shapes every error answer the DPS way. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/wire_error.h"

#define MAX_DOC_BYTES (256 * 1024)
#define MAX_ROWS 128

/* ---- docs/reason-codes.md ---- */

struct doc_row {
  char reason[64];
  int http_status;
  int error_code;
  int unauthorized; /* "Device sees" says `Unauthorized` */
  int invalid_cert; /* "Device sees" says `Invalid certificate.` */
};

/* A file of the source tree, NUL-terminated; caller frees. */
static char *slurp(const char *rel)
{
  const char *src = getenv("PROVD_SOURCE_DIR");
  ck_assert_msg(src != NULL, "PROVD_SOURCE_DIR is not set");
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", src, rel);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  char *buf = malloc(MAX_DOC_BYTES + 1);
  ck_assert_ptr_nonnull(buf);
  size_t n = fread(buf, 1, MAX_DOC_BYTES, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* Splits "| a | b | c |" into trimmed cells; returns their number. */
static int table_cells(char *line, char *cells[], int max)
{
  int n = 0;
  char *p = strchr(line, '|');
  while (p && n < max) {
    char *next = strchr(p + 1, '|');
    if (!next)
      break;
    *next = '\0';
    char *c = p + 1;
    while (*c == ' ')
      c++;
    char *end = c + strlen(c);
    while (end > c && end[-1] == ' ')
      *--end = '\0';
    cells[n++] = c;
    p = next;
  }
  return n;
}

/* "`A` / `B`" -> A, B; "404 / 405" -> 404, 405. */
static int split_alternatives(char *cell, char *out[], int max)
{
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(cell, "/", &save); tok && n < max;
       tok = strtok_r(NULL, "/", &save)) {
    while (*tok == ' ' || *tok == '`')
      tok++;
    char *end = tok + strlen(tok);
    while (end > tok && (end[-1] == ' ' || end[-1] == '`'))
      *--end = '\0';
    out[n++] = tok;
  }
  return n;
}

/* Rows of the tables with columns Reason | When | HTTP | errorCode [...]
 * whose HTTP status is an error (>= 400). */
static size_t documented_errors(struct doc_row rows[], size_t max)
{
  char *text = slurp("docs/reason-codes.md");
  size_t n = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (line[0] != '|')
      continue;
    char *cells[8];
    int nc = table_cells(line, cells, 8);
    if (nc < 4 || cells[0][0] != '`' || atoi(cells[2]) < 400)
      continue;
    int unauthorized = nc >= 5 && strstr(cells[4], "`Unauthorized`") != NULL;
    int invalid_cert =
        nc >= 5 && strstr(cells[4], "`Invalid certificate.`") != NULL;
    char *reason_cell = strdup(cells[0]), *http_cell = strdup(cells[2]),
         *code_cell = strdup(cells[3]);
    ck_assert_ptr_nonnull(reason_cell);
    char *reasons[4], *statuses[4], *codes[4];
    int nr = split_alternatives(reason_cell, reasons, 4);
    int ns = split_alternatives(http_cell, statuses, 4);
    int ncodes = split_alternatives(code_cell, codes, 4);
    ck_assert_msg(nr == ns && nr == ncodes, "uneven row for %s", cells[0]);
    for (int i = 0; i < nr; i++) {
      ck_assert_uint_lt(n, max);
      snprintf(rows[n].reason, sizeof(rows[n].reason), "%s", reasons[i]);
      rows[n].http_status = atoi(statuses[i]);
      rows[n].error_code = atoi(codes[i]);
      rows[n].unauthorized = unauthorized;
      rows[n].invalid_cert = invalid_cert;
      n++;
    }
    free(reason_cell);
    free(http_cell);
    free(code_cell);
  }
  free(text);
  return n;
}

START_TEST(t_every_documented_reason_maps_as_documented)
{
  struct doc_row rows[MAX_ROWS];
  size_t n = documented_errors(rows, MAX_ROWS);
  ck_assert_uint_ge(n, 25); /* the page lists that many error reasons */
  for (size_t i = 0; i < n; i++) {
    struct wire_error w = wire_error_of(rows[i].reason);
    ck_assert_msg(w.http_status == rows[i].http_status &&
                      w.error_code == rows[i].error_code,
                  "%s: code says %d/%d, docs/reason-codes.md says %d/%d",
                  rows[i].reason, w.http_status, w.error_code,
                  rows[i].http_status, rows[i].error_code);
    ck_assert_int_eq(w.error_code / 1000, w.http_status);
    if (rows[i].unauthorized)
      ck_assert_str_eq(w.message, "Unauthorized");
    if (rows[i].invalid_cert)
      ck_assert_str_eq(w.message, "Invalid certificate.");
  }
}
END_TEST

/* The other direction: every reason the table in wire_error.c names is on
 * the page (a new reason cannot ship undocumented). */
START_TEST(t_every_mapped_reason_is_documented)
{
  struct doc_row rows[MAX_ROWS];
  size_t n = documented_errors(rows, MAX_ROWS);
  char *src = slurp("core/net/wire_error.c");
  size_t checked = 0;
  for (const char *p = strstr(src, "{\""); p; p = strstr(p + 2, "{\"")) {
    char reason[64], tail[3];
    if (sscanf(p, "{\"%63[A-Z_]%2[\",]", reason, tail) != 2 ||
        strcmp(tail, "\",") != 0)
      continue; /* not a table row such as {"THROTTLED", {...}} */
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
      found = strcmp(rows[i].reason, reason) == 0;
    ck_assert_msg(found, "%s is mapped in core/net/wire_error.c but not "
                  "listed in docs/reason-codes.md", reason);
    checked++;
  }
  free(src);
  ck_assert_uint_ge(checked, 25);
}
END_TEST

START_TEST(t_unknown_reason_is_unauthorized)
{
  static const char *const unknown[] = {"NO_SUCH_REASON", "", "bad_signature",
                                        "cert_untrusted", NULL};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    struct wire_error w = wire_error_of(unknown[i]);
    ck_assert_int_eq(w.http_status, 401);
    ck_assert_int_eq(w.error_code, 401002);
    ck_assert_str_eq(w.message, "Unauthorized");
  }
}
END_TEST

/* ---- the answer ---- */

static const char *header_of(const struct wire_error_answer *a,
                             const char *name)
{
  for (size_t i = 0; i < a->n_headers; i++)
    if (strcasecmp(a->headers[i].name, name) == 0)
      return a->headers[i].value;
  return NULL;
}

/* Status, headers and body with the per-answer fields (trackingId,
 * timestampUtc) removed, as one comparable string. */
static char *answer_fingerprint(const struct wire_error_answer *a)
{
  json_error_t jerr;
  json_t *body = json_loadb(a->body, a->body_len, 0, &jerr);
  ck_assert_msg(body != NULL, "not JSON: %s", a->body);
  ck_assert(json_is_string(json_object_get(body, "trackingId")));
  ck_assert(json_is_string(json_object_get(body, "timestampUtc")));
  json_object_del(body, "trackingId");
  json_object_del(body, "timestampUtc");
  char *rest = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(body);
  char *out = NULL;
  ck_assert_int_ge(asprintf(&out, "%d|%zu|%s|%s", a->http_status,
                            a->n_headers, header_of(a, "x-ms-error-code"),
                            rest),
                   0);
  free(rest);
  return out;
}

/* Among token refusals, and among certificate refusals (DPS names the
 * certificate, a device knows it sent one), nothing tells one reason from
 * another. */
START_TEST(t_unauthenticated_failures_are_indistinguishable)
{
  struct doc_row rows[MAX_ROWS];
  size_t n = documented_errors(rows, MAX_ROWS);
  char *first[2] = {NULL, NULL}; /* Unauthorized, Invalid certificate. */
  size_t compared[2] = {0, 0};
  for (size_t i = 0; i < n + 1; i++) {
    /* every documented 401 reason, and one no document names */
    const char *reason = i < n ? rows[i].reason : "PLUGIN_INVENTED_REASON";
    if (i < n && rows[i].http_status != 401)
      continue;
    int family = i < n && rows[i].invalid_cert;
    struct wire_error w = wire_error_of(reason);
    struct wire_error_answer a;
    wire_error_answer_init(&a, w.http_status, w.error_code, w.message, NULL,
                           0);
    char *print = answer_fingerprint(&a);
    wire_error_answer_clear(&a);
    if (!first[family])
      first[family] = print;
    else {
      ck_assert_msg(strcmp(first[family], print) == 0,
                    "%s answers %s, others %s", reason, print,
                    first[family]);
      free(print);
    }
    compared[family]++;
  }
  ck_assert_uint_ge(compared[0], 11);
  ck_assert_uint_ge(compared[1], 7);
  ck_assert_str_eq(first[0], "401|1|401002|{\"errorCode\":401002,"
                             "\"message\":\"Unauthorized\"}");
  ck_assert_str_eq(first[1], "401|1|401002|{\"errorCode\":401002,"
                             "\"message\":\"Invalid certificate.\"}");
  free(first[0]);
  free(first[1]);
}
END_TEST

/* What unauthenticated readers of /metrics see: one label per wire
 * class for every 401, the reason itself otherwise. */
START_TEST(t_public_reason_folds_401s)
{
  struct doc_row rows[MAX_ROWS];
  size_t n = documented_errors(rows, MAX_ROWS);
  for (size_t i = 0; i < n; i++) {
    const char *pub = wire_error_public_reason(rows[i].reason);
    if (rows[i].http_status != 401)
      ck_assert_str_eq(pub, rows[i].reason);
    else
      ck_assert_str_eq(pub, rows[i].invalid_cert ? "INVALID_CERTIFICATE"
                                                 : "UNAUTHORIZED");
  }
  ck_assert_str_eq(wire_error_public_reason("BAD_SIGNATURE"), "UNAUTHORIZED");
  ck_assert_str_eq(wire_error_public_reason("ENROLLMENT_NOT_FOUND"),
                   "UNAUTHORIZED");
  ck_assert_str_eq(wire_error_public_reason("PLUGIN_INVENTED_REASON"),
                   "UNAUTHORIZED");
  ck_assert_str_eq(wire_error_public_reason("THROTTLED"), "THROTTLED");
}
END_TEST

START_TEST(t_answer_has_the_dps_shape)
{
  struct wire_error_answer a;
  wire_error_answer_init(&a, 400, 400004, "bad \"id\"\n", NULL, 0);
  ck_assert_int_eq(a.http_status, 400);
  ck_assert_uint_eq(a.body_len, strlen(a.body));
  /* DPS order: errorCode, trackingId, message, timestampUtc */
  ck_assert_msg(strncmp(a.body, "{\"errorCode\":400004,\"trackingId\":\"", 34)
                    == 0, "%s", a.body);
  const char *msg = strstr(a.body, "\"message\":\"bad \\\"id\\\"\\n\"");
  const char *ts = strstr(a.body, "\"timestampUtc\":\"");
  ck_assert_ptr_nonnull(msg);
  ck_assert_ptr_nonnull(ts);
  ck_assert(msg < ts);
  json_error_t jerr;
  json_t *body = json_loadb(a.body, a.body_len, 0, &jerr);
  ck_assert_ptr_nonnull(body);
  ck_assert_uint_eq(json_object_size(body), 4);
  ck_assert_uint_eq(strlen(json_string_value(json_object_get(body,
                                                             "trackingId"))),
                    36);
  json_decref(body);
  ck_assert_str_eq(header_of(&a, "x-ms-error-code"), "400004");
  ck_assert_ptr_null(header_of(&a, "Retry-After"));
  wire_error_answer_clear(&a);
}
END_TEST

START_TEST(t_retry_after_only_on_429_and_503)
{
  static const struct {
    int status;
    int retry;
  } cases[] = {{429, 1}, {503, 1}, {500, 0}, {401, 0}, {404, 0}, {413, 0}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wire_error_answer a;
    wire_error_answer_init(&a, cases[i].status, cases[i].status * 1000 + 1,
                           "m", NULL, 0);
    const char *retry = header_of(&a, "Retry-After");
    if (cases[i].retry)
      ck_assert_str_eq(retry, "1");
    else
      ck_assert_ptr_null(retry);
    ck_assert_int_eq(wire_error_retry_after_s(cases[i].status),
                     cases[i].retry);
    wire_error_answer_clear(&a);
  }
  ck_assert_int_eq(wire_error_of("THROTTLED").http_status, 429);
  ck_assert_int_eq(wire_error_of("STORE_UNAVAILABLE").http_status, 503);
}
END_TEST

/* With a spread, 429/503 hints are spread over 1..spread seconds. */
START_TEST(t_retry_after_spread)
{
  wire_error_set_retry_spread(5);
  int seen[6] = {0};
  for (int i = 0; i < 200; i++) {
    int r = wire_error_retry_after_s(i % 2 ? 429 : 503);
    ck_assert_int_ge(r, 1);
    ck_assert_int_le(r, 5);
    seen[r]++;
  }
  int distinct = 0;
  for (int r = 1; r <= 5; r++)
    distinct += seen[r] > 0;
  ck_assert_int_ge(distinct, 4);
  ck_assert_int_eq(wire_error_retry_after_s(500), 0);
  wire_error_set_retry_spread(1);
  ck_assert_int_eq(wire_error_retry_after_s(429), 1);
}
END_TEST

START_TEST(t_extra_headers_follow_and_are_bounded)
{
  struct http_header extra[WIRE_ERROR_EXTRA_HEADERS_MAX + 2];
  for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
    extra[i] = (struct http_header){"Allow", "GET"};
  struct wire_error_answer a;
  wire_error_answer_init(&a, 503, 503001, "m", extra,
                         sizeof(extra) / sizeof(extra[0]));
  ck_assert_uint_eq(a.n_headers, 2 + WIRE_ERROR_EXTRA_HEADERS_MAX);
  ck_assert_str_eq(a.headers[0].name, "x-ms-error-code");
  ck_assert_str_eq(a.headers[1].name, "Retry-After");
  ck_assert_str_eq(a.headers[2].name, "Allow");
  wire_error_answer_clear(&a);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("wire_error");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_every_documented_reason_maps_as_documented);
  tcase_add_test(tc, t_every_mapped_reason_is_documented);
  tcase_add_test(tc, t_unknown_reason_is_unauthorized);
  tcase_add_test(tc, t_unauthenticated_failures_are_indistinguishable);
  tcase_add_test(tc, t_public_reason_folds_401s);
  tcase_add_test(tc, t_retry_after_spread);
  tcase_add_test(tc, t_answer_has_the_dps_shape);
  tcase_add_test(tc, t_retry_after_only_on_429_and_503);
  tcase_add_test(tc, t_extra_headers_follow_and_are_bounded);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
