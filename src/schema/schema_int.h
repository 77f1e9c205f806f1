/* Internals of the schema validator: the compiled form of a JSON Schema.
 *
 * A schema is compiled once into a graph of nodes (one per schema object,
 * shared when $ref points at it) with keywords decoded and regexes
 * compiled, so validating a tools/call argument object is a walk over
 * structs, not a series of hash lookups and regex compiles.  A compiled
 * schema is immutable after fm_schema_compile, so threads may share it. */
#ifndef FM_SCHEMA_INT_H
#define FM_SCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetmcp/fm_schema.h"

/* type keyword bits */
enum {
    FM_ST_NULL = 1 << 0,
    FM_ST_BOOLEAN = 1 << 1,
    FM_ST_OBJECT = 1 << 2,
    FM_ST_ARRAY = 1 << 3,
    FM_ST_NUMBER = 1 << 4,
    FM_ST_INTEGER = 1 << 5,
    FM_ST_STRING = 1 << 6,
};

typedef struct fm_regex {
    char *src;        /* owned: the pattern as written, for messages */
    pcre2_code *code; /* owned */
} fm_regex;

typedef struct fm_snode fm_snode;

typedef struct fm_sprop {
    const char *name; /* borrowed from the schema JSON */
    size_t len;
    fm_snode *node;
} fm_sprop;

typedef struct fm_spattern {
    const fm_regex *re;
    fm_snode *node;
} fm_spattern;

struct fm_snode {
    const json_t *json; /* borrowed: the schema object (or true/false) */
    bool is_bool;       /* a boolean schema: always_ok says which */
    bool always_ok;
    unsigned types; /* FM_ST_* bits; 0 = no type keyword */

    const json_t *enum_vals; /* borrowed array, or NULL */
    const json_t *const_val; /* borrowed, or NULL */
    bool has_const;

    fm_snode *ref;
    const char *ref_text; /* borrowed */

    /* objects */
    fm_sprop *props; /* sorted by name (bytes) for bsearch */
    size_t nprops;
    const char **required; /* borrowed strings */
    size_t nrequired;
    fm_snode *additional; /* NULL when absent */
    fm_spattern *patterns;
    size_t npatterns;
    long long min_props, max_props; /* -1 = absent */

    /* arrays */
    fm_snode **prefix;
    size_t nprefix;
    fm_snode *items;
    long long min_items, max_items;
    bool unique;

    /* strings */
    long long min_len, max_len;
    const fm_regex *pattern;

    /* numbers: borrowed keyword values */
    const json_t *minimum, *maximum, *ex_minimum, *ex_maximum, *multiple_of;

    /* applicators */
    fm_snode **all_of, **any_of, **one_of;
    size_t nall, nany, none;
    fm_snode *not_, *if_, *then_, *else_;
};

struct fm_schema {
    json_t *root; /* own reference to the schema JSON */
    fm_snode *top;
    fm_snode **nodes; /* owned: every node, for lookup by JSON and freeing */
    size_t nnodes, capnodes;
    fm_regex **regexes; /* owned, deduplicated by source */
    size_t nregexes, capregexes;
    pcre2_match_context *mctx; /* owned: match limits against hostile input */
};

/* JSON equality as JSON Schema defines it: numbers compare by value, so
 * 1 == 1.0; objects ignore key order. */
bool fm_schema_json_equal(const json_t *a, const json_t *b);

/* A hash consistent with fm_schema_json_equal. */
unsigned long long fm_schema_json_hash(const json_t *v);

/* Compares two JSON numbers exactly (integer vs real included):
 * -1, 0 or 1. */
int fm_schema_num_cmp(const json_t *a, const json_t *b);

/* True for integers and for reals with no fractional part (1.0). */
bool fm_schema_is_integral(const json_t *v);

#endif
