/* A JSON Schema subset validator (draft 2020-12 keywords that fleetmcp's
 * schemas use), checked against the official JSON-Schema-Test-Suite for
 * every keyword it supports (tests/unit/test_schema_suite.c).
 *
 * Supported: type, enum, const, properties, required,
 * additionalProperties (bool or schema), patternProperties, items (schema),
 * prefixItems, minItems, maxItems, uniqueItems, minLength, maxLength
 * (code points), pattern (PCRE2), minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, multipleOf, minProperties, maxProperties, allOf, anyOf,
 * oneOf, not, if/then/else, $ref to "#/$defs/..." or "#/definitions/..."
 * (local only), $defs, format (annotation only), title, description,
 * default, examples.  Unknown keywords are ignored, as the spec says. */
#ifndef FM_SCHEMA_H
#define FM_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "fleetmcp/fm_error.h"

/* Returns 0 if instance is valid.  Otherwise -1 and err holds
 * "INVALID" with text "<pointer>: <why>", e.g. "/limit: must be <= 500". */
int fm_schema_validate(const json_t *schema, const json_t *instance, fm_err *err);

/* Appends up to max problems {"path": pointer, "message": why} to errors
 * (an array, borrowed).  Returns the number of problems found (capped). */
size_t fm_schema_validate_all(const json_t *schema, const json_t *instance, json_t *errors,
                              size_t max);

/* --- Added by the schema engineer: compile once, validate many times. ---
 * fm_schema_validate compiles the schema on every call (regexes included,
 * a few microseconds); the server validates every tools/call, so hot paths
 * compile each schema once (registry or config load) and keep the result:
 * a check then costs well under a microsecond.  A compiled schema is
 * immutable and may be shared between threads.
 *
 * fm_schema_compile keeps its own reference to schema (borrowed from the
 * caller), which must not be modified afterwards.  Returns NULL with
 * FM_ERR_INVALID "(schema) <schema pointer>: <why>" for what it cannot
 * honour, rather than ignore it: a malformed keyword value, a bad regex,
 * a $ref that is not local ("#" or "#/<pointer>") or does not resolve, an
 * embedded $id, tuple-form items, and 2020-12 assertion keywords outside
 * the subset (contains, minContains, maxContains, propertyNames,
 * dependentRequired, dependentSchemas, dependencies, additionalItems,
 * unevaluatedItems, unevaluatedProperties, $dynamicRef, $recursiveRef).
 * fm_schema_validate(_all) report such a schema as FM_ERR_INTERNAL (a bug:
 * our schemas ship with the binary) or as one problem at path "". */
typedef struct fm_schema fm_schema;

fm_schema *fm_schema_compile(const json_t *schema, fm_err *err);
/* As fm_schema_validate / fm_schema_validate_all, with a compiled schema. */
int fm_schema_check(const fm_schema *schema, const json_t *instance, fm_err *err);
size_t fm_schema_check_all(const fm_schema *schema, const json_t *instance, json_t *errors,
                           size_t max);
void fm_schema_free(fm_schema *schema);

#endif
