/* YAML (libyaml) to JSON (jansson), for config, runbooks and signatures.
 *
 * Plain scalars follow the YAML 1.2 core schema (null, true/false, ints,
 * floats); quoted scalars are always strings.  Aliases are refused (no
 * billion-laughs), as are duplicate keys, non-scalar keys, and documents
 * deeper than FM_YAML_MAX_DEPTH.  Every node's line is kept by JSON
 * pointer so validators can say "file:line: problem". */
#ifndef FM_YAML_H
#define FM_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

#define FM_YAML_MAX_DEPTH 64
#define FM_YAML_MAX_BYTES (4u << 20)

typedef struct fm_yaml_doc {
    json_t *root;  /* owned */
    json_t *lines; /* owned: object, JSON pointer -> 1-based line */
    char path[256];
} fm_yaml_doc;

int fm_yaml_load_file(const char *path, fm_yaml_doc *out, fm_err *err);
int fm_yaml_load_string(const char *text, size_t len, const char *name, fm_yaml_doc *out,
                        fm_err *err);
/* Line of the node at pointer, or of its nearest ancestor; 0 if unknown. */
int fm_yaml_line(const fm_yaml_doc *doc, const char *pointer);
void fm_yaml_doc_free(fm_yaml_doc *doc);

#endif
