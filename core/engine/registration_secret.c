/* The secret member of a stored registration (registration_secret.h). */
#include "engine/registration_secret.h"

/* Not a DPS field: a provd-private member of the stored record. */
#define HUB_KEY_MEMBER "provdHubKey"

void registration_set_hub_key(json_t *body, const char *key_b64)
{
  if (json_is_object(body) && key_b64)
    json_object_set_new(body, HUB_KEY_MEMBER, json_string(key_b64));
}

const char *registration_hub_key(const json_t *body)
{
  return json_string_value(json_object_get(body, HUB_KEY_MEMBER));
}

void registration_hide_secrets(json_t *body)
{
  if (json_is_object(body))
    json_object_del(body, HUB_KEY_MEMBER);
}
