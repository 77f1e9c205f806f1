/* Schema files compiled into the binary (generated with the tool table):
 * config sections (schemas/config/<section>.json), the runbook and
 * signature schemas.  Names are paths relative to schemas/. */
#ifndef FM_SCHEMAS_H
#define FM_SCHEMAS_H

#include <stddef.h>

typedef struct fm_embedded_schema {
    const char *name;
    const char *text;
} fm_embedded_schema;

extern const fm_embedded_schema fm_embedded_schemas[];
extern const size_t fm_embedded_schema_count;

/* The JSON text of schemas/<name>, or NULL. */
const char *fm_embedded_schema_find(const char *name);

#endif
