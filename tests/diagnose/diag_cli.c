/* Runs the diagnose engine directly on scenario files, without the server:
 *   diag_cli runbooks/signatures.yaml SCENARIO.yaml...
 * prints one JSON line per file: {"file", "result"} (or "error").  Used by
 * run_scenarios.py --direct to iterate before the MCP server is ready. */
#include <stdio.h>
#include <stdlib.h>

#include "fleetmcp/fm_diagnose.h"
#include "fleetmcp/fm_yaml.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SIGNATURES.yaml SCENARIO.yaml...\n", argv[0]);
        return 2;
    }
    struct fm_diag_db *db = NULL;
    fm_err err = {0};
    if (fm_diag_load(argv[1], &db, &err)) {
        fprintf(stderr, "%s: %s\n", fm_strerror(err.code), err.text);
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        fm_yaml_doc doc;
        fm_err e = {0};
        json_t *line = json_object();
        json_object_set_new(line, "file", json_string(argv[i]));
        if (fm_yaml_load_file(argv[i], &doc, &e) == 0) {
            json_t *res = fm_diag_run(db, json_object_get(doc.root, "signals"), NULL, &e);
            if (res) json_object_set_new(line, "result", res);
            fm_yaml_doc_free(&doc);
        }
        if (e.code) {
            json_object_set_new(line, "error", json_string(e.text));
            rc = 1;
        }
        char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(15));
        puts(s);
        free(s);
        json_decref(line);
    }
    fm_diag_free(db);
    return rc;
}
