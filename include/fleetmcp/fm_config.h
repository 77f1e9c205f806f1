/* Configuration: one YAML file (--config or FLEETMCP_CONFIG), validated
 * against schemas/config.schema.json.  Subsystems read their own section
 * with the getters below; secrets never sit in the file itself, only the
 * name of an environment variable or a file that holds them. */
#ifndef FM_CONFIG_H
#define FM_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

typedef enum { FM_MODE_SHADOW = 0, FM_MODE_CANARY = 1, FM_MODE_FLEET = 2 } fm_mode;

typedef struct fm_config {
    json_t *root; /* owned; {} when no file */
    char path[512];
    char db_path[512];
    fm_mode mode;
    bool read_only;
    size_t max_message; /* transport cap, bytes */
    char killswitch_file[512];
} fm_config;

/* Loads path (NULL: defaults).  On validation failure err lists the first
 * problem as "file:line: pointer: why". */
int fm_config_load(fm_config *cfg, const char *path, const char *db_override, fm_err *err);
void fm_config_free(fm_config *cfg);

/* Every problem in the file, one line each, into out (new array of strings). */
json_t *fm_config_check(const char *path);

/* Borrowed section (an object) or NULL. */
const json_t *fm_config_section(const fm_config *cfg, const char *name);

/* Helpers over a section: dotted keys are not supported, one level only. */
const char *fm_cfg_str(const json_t *sec, const char *key, const char *dflt);
long long fm_cfg_int(const json_t *sec, const char *key, long long dflt);
double fm_cfg_real(const json_t *sec, const char *key, double dflt);
bool fm_cfg_bool(const json_t *sec, const char *key, bool dflt);

/* Resolves a secret reference {env: NAME} or {file: PATH} (or the strings
 * "env:NAME" / "file:PATH") into buf; never logs the value.  Returns 0. */
int fm_secret_resolve(const json_t *ref, char *buf, size_t buflen, fm_err *err);

const char *fm_mode_name(fm_mode m);

#endif
