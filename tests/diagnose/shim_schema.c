/* Test-only stand-ins used by tests/diagnose/build-standalone.sh while the
 * real schema validator and generated schema table are not built: the
 * embedded schema is read from schemas/ and validation is skipped (the
 * Python harness validates the YAML against the schema instead). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_schemas.h"

int fm_schema_validate(const json_t *schema, const json_t *instance, fm_err *err)
{
    (void)schema;
    (void)instance;
    (void)err;
    return 0;
}

const char *fm_embedded_schema_find(const char *name)
{
    static char buf[1 << 16];
    char path[256];
    snprintf(path, sizeof path, "schemas/%s", name);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}
