/* The runbook catalog: runbooks/rb-*.yaml loaded, validated against the
 * embedded schemas/runbook.schema.json, then checked for what a schema
 * cannot say (actions exist and their args fit, step ids unique, fault
 * classes in the taxonomy, autonomy consistent with what the steps do).
 *
 * One pass serves both uses: check-config wants every problem, the server
 * wants the catalog or nothing.  Loading costs a few milliseconds, so the
 * server does it at first use (fm_runbooks_load), never at start. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_schemas.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_yaml.h"

#ifndef FM_SHARE_DIR
#define FM_SHARE_DIR "/usr/local/share/fleetmcp"
#endif

#define MAX_FILES 256
#define MAX_PROBLEMS 200
#define TAXONOMY "fault-classes.yaml"

/* Data files that share the directory with the runbooks. */
static const char *const not_runbooks[] = {TAXONOMY, "signatures.yaml"};

/* State of one catalog pass. */
typedef struct pass {
    const char *dir;
    json_t *problems;    /* array of strings (borrowed) */
    json_t *classes;     /* class id -> scope string (owned) */
    fm_schema *schema;   /* runbook schema (owned) */
    fm_schema *args[32]; /* per fm_action_table row, compiled on demand */
    json_t *args_json[32];
    json_t *covered; /* fault class -> "file:line" of its runbook (owned) */
} pass;

static void problem(pass *p, const fm_yaml_doc *doc, const char *ptr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends "file:line: pointer: why"; ptr "" names the whole document. */
static void problem(pass *p, const fm_yaml_doc *doc, const char *ptr, const char *fmt, ...)
{
    if (json_array_size(p->problems) >= MAX_PROBLEMS) return;
    char why[600], buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    int line = fm_yaml_line(doc, ptr);
    snprintf(buf, sizeof buf, "%s:%d: %s: %s", doc->path, line ? line : 1, *ptr ? ptr : "/", why);
    json_array_append_new(p->problems, json_string(buf));
}

static void file_problem(pass *p, const char *text)
{
    if (json_array_size(p->problems) < MAX_PROBLEMS)
        json_array_append_new(p->problems, json_string(text));
}

/* --- directory resolution ------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *fm_runbooks_dir(const fm_config *cfg, char *buf, size_t len)
{
    const char *env = getenv("FLEETMCP_RUNBOOKS");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return buf;
    }
    const char *dir = cfg ? fm_cfg_str(fm_config_section(cfg, "runbooks"), "dir", NULL) : NULL;
    if (dir) {
        const char *slash = cfg->path[0] ? strrchr(cfg->path, '/') : NULL;
        if (dir[0] == '/' || !slash)
            snprintf(buf, len, "%s", dir);
        else
            snprintf(buf, len, "%.*s/%s", (int)(slash - cfg->path), cfg->path, dir);
        return buf;
    }
    /* Relative to the executable, so a build tree and a relocated install
     * both find their own runbooks whatever the working directory. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            static const char *const rel[] = {"../runbooks", "../share/fleetmcp/runbooks"};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
                char cand[PATH_MAX + 32], real[PATH_MAX];
                snprintf(cand, sizeof cand, "%s/%s", exe, rel[i]);
                /* Canonical, so messages name /x/runbooks, not /x/bin/../runbooks. */
                if (is_dir(cand) && realpath(cand, real)) {
                    snprintf(buf, len, "%s", real);
                    return buf;
                }
            }
        }
    }
    snprintf(buf, len, "%s/runbooks", FM_SHARE_DIR);
    return buf;
}

/* --- taxonomy --------------------------------------------------------------- */

static int load_taxonomy(pass *p)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", p->dir, TAXONOMY);
    fm_yaml_doc doc;
    fm_err err = {0};
    if (fm_yaml_load_file(path, &doc, &err)) {
        char buf[700];
        snprintf(buf, sizeof buf, "%s (the fault class taxonomy, a copy of shared/%s)", err.text,
                 TAXONOMY);
        file_problem(p, buf);
        return -1;
    }
    p->classes = json_object();
    const json_t *arr = json_object_get(doc.root, "classes");
    size_t i;
    const json_t *c;
    json_array_foreach(arr, i, c)
    {
        const char *id = fm_json_str(c, "id", NULL), *scope = fm_json_str(c, "scope", NULL);
        if (id && scope) json_object_set_new(p->classes, id, json_string(scope));
    }
    if (!json_object_size(p->classes)) problem(p, &doc, "/classes", "no fault classes found");
    fm_yaml_doc_free(&doc);
    return json_object_size(p->classes) ? 0 : -1;
}

/* --- one runbook -------------------------------------------------------------- */

static const fm_schema *action_schema(pass *p, const fm_action_def *a)
{
    size_t i = (size_t)(a - fm_action_table);
    if (i >= sizeof p->args / sizeof p->args[0]) return NULL;
    if (!p->args[i]) {
        fm_err err = {0};
        p->args_json[i] = json_loads(a->args_schema, 0, NULL);
        p->args[i] = p->args_json[i] ? fm_schema_compile(p->args_json[i], &err) : NULL;
    }
    return p->args[i];
}

/* What the steps of a runbook do, summed over every list. */
typedef struct effects {
    const char *destructive; /* first destructive step id, or NULL */
    const char *approval;    /* first step that always needs approval */
    const char *touches;     /* first node action */
} effects;

static void check_step(pass *p, const fm_yaml_doc *doc, const char *list, size_t i,
                       const json_t *step, json_t *seen, effects *fx)
{
    char ptr[128], sub[192];
    snprintf(ptr, sizeof ptr, "/%s/%zu", list, i);
    const char *id = fm_json_str(step, "id", NULL);
    if (id) {
        json_t *first = json_object_get(seen, id);
        snprintf(sub, sizeof sub, "%s/id", ptr);
        if (first)
            problem(p, doc, sub,
                    "duplicate step id '%s' (first at line %d): step ids name workflow"
                    " progress and must be unique",
                    id, (int)json_integer_value(first));
        else
            json_object_set_new(seen, id, json_integer(fm_yaml_line(doc, sub)));
    }
    const char *name = fm_json_str(step, "action", NULL);
    const fm_action_def *a = name ? fm_action_find(name) : NULL;
    snprintf(sub, sizeof sub, "%s/action", ptr);
    if (name && !a) {
        char known[512] = "";
        for (size_t k = 0; k < fm_action_count; k++) {
            strncat(known, k ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, fm_action_table[k].name, sizeof known - strlen(known) - 1);
        }
        problem(p, doc, sub, "unknown action '%.64s'; the catalog has: %s", name, known);
    }
    if (!a) return;
    if (a->only_in && strcmp(list, a->only_in))
        problem(p, doc, sub, "%s belongs in %s, nowhere else (only_in of schemas/actions/%s.json)",
                a->name, a->only_in, a->name);

    json_t *args = json_object_get(step, "args");
    json_t *empty = NULL;
    if (!args) args = empty = json_object();
    const fm_schema *sc = action_schema(p, a);
    json_t *errs = json_array();
    if (sc) fm_schema_check_all(sc, args, errs, 10);
    size_t k;
    json_t *e;
    json_array_foreach(errs, k, e)
    {
        snprintf(sub, sizeof sub, "%s/args%s", ptr, fm_json_str(e, "path", ""));
        problem(p, doc, sub, "%s: %s (see the '%s' action's arguments)", a->name,
                fm_json_str(e, "message", "invalid"), a->name);
    }
    json_decref(errs);
    json_decref(empty);

    json_t *t = json_object_get(step, "timeout_s");
    if (json_is_integer(t) && json_integer_value(t) > a->max_timeout_s) {
        snprintf(sub, sizeof sub, "%s/timeout_s", ptr);
        problem(p, doc, sub, "%lld s is over the %s action's maximum of %d s",
                (long long)json_integer_value(t), a->name, a->max_timeout_s);
    }
    if (json_is_true(json_object_get(step, "continue_on_failure")) &&
        (a->destructive || a->mutates_slurm || a->touches_node)) {
        snprintf(sub, sizeof sub, "%s/continue_on_failure", ptr);
        problem(p, doc, sub, "only steps that change nothing may continue on failure, not %s",
                a->name);
    }
    /* Rollback and on_success run under the same approval as the steps. */
    if (a->destructive && !fx->destructive) fx->destructive = id ? id : a->name;
    if (a->needs_approval_always && !fx->approval) fx->approval = id ? id : a->name;
    if ((a->touches_node || a->mutates_slurm) && !fx->touches) fx->touches = id ? id : a->name;
}

static void check_semantics(pass *p, const fm_yaml_doc *doc, const char *file)
{
    const json_t *rb = doc->root;
    if (!json_is_object(rb)) return;
    const char *id = fm_json_str(rb, "id", NULL);
    if (id) {
        size_t n = strlen(id);
        if (strncmp(file, id, n) || strcmp(file + n, ".yaml"))
            problem(p, doc, "/id",
                    "id '%.64s' does not match the file name %s: name the file"
                    " %.64s.yaml",
                    id, file, id);
    }
    const json_t *fcs = json_object_get(rb, "fault_classes");
    size_t i;
    const json_t *v;
    json_array_foreach(fcs, i, v)
    {
        const char *c = json_string_value(v);
        if (!c || !p->classes) continue;
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/fault_classes/%zu", i);
        const char *scope = fm_json_str(p->classes, c, NULL);
        if (!scope) {
            problem(p, doc, ptr, "unknown fault class '%.64s' (not in %s)", c, TAXONOMY);
            continue;
        }
        if (strcmp(scope, "node"))
            problem(p, doc, ptr, "fault class '%s' has scope %s: runbooks act on nodes", c, scope);
        char where[600];
        snprintf(where, sizeof where, "%s:%d", doc->path, fm_yaml_line(doc, ptr));
        const char *prev = fm_json_str(p->covered, c, NULL);
        if (prev)
            problem(p, doc, ptr,
                    "fault class '%s' already has a runbook at %s: one runbook per"
                    " class keeps diagnose's answer unambiguous",
                    c, prev);
        else
            json_object_set_new(p->covered, c, json_string(where));
    }

    static const char *const lists[] = {"steps", "verification", "on_success", "rollback"};
    json_t *seen = json_object();
    effects fx = {0};
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        const json_t *arr = json_object_get(rb, lists[l]);
        const json_t *step;
        json_array_foreach(arr, i, step) if (json_is_object(step))
            check_step(p, doc, lists[l], i, step, seen, &fx);
    }
    json_decref(seen);

    const char *autonomy = fm_json_str(rb, "autonomy", NULL);
    const json_t *destructive = json_object_get(rb, "destructive");
    bool weak = autonomy && (!strcmp(autonomy, "read") || !strcmp(autonomy, "create"));
    if (json_is_false(destructive) && fx.destructive)
        problem(p, doc, "/destructive",
                "false, but step '%s' is destructive: declare"
                " destructive: true",
                fx.destructive);
    if (json_is_true(destructive) && weak)
        problem(p, doc, "/autonomy", "a destructive runbook needs autonomy hitl or canary, not %s",
                autonomy);
    else if (fx.touches && weak)
        problem(p, doc, "/autonomy",
                "step '%s' acts on the node: autonomy must be canary or hitl,"
                " not %s",
                fx.touches, autonomy);
    if (fx.approval && autonomy && strcmp(autonomy, "hitl"))
        problem(p, doc, "/autonomy",
                "step '%s' always needs a human approval: autonomy must be"
                " hitl, not %s",
                fx.approval, autonomy);
    if (json_array_size(json_object_get(rb, "on_success")) &&
        !json_array_size(json_object_get(rb, "verification")))
        problem(p, doc, "/verification",
                "on_success returns the node to service, so"
                " verification must check the fault is gone first");
}

/* Loads one file; keeps the doc in *out when it has no problem. */
static int check_file(pass *p, const char *file, fm_yaml_doc *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", p->dir, file);
    fm_err err = {0};
    if (fm_yaml_load_file(path, out, &err)) {
        file_problem(p, err.text);
        return -1;
    }
    size_t before = json_array_size(p->problems);
    json_t *errs = json_array();
    fm_schema_check_all(p->schema, out->root, errs, 40);
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
    {
        /* Point at the offending key itself, so the line is the key's. */
        const char *msg = fm_json_str(e, "message", "invalid");
        char ptr[300], key[80];
        snprintf(ptr, sizeof ptr, "%s", fm_json_str(e, "path", ""));
        if (sscanf(msg, "unknown property '%79[^']'", key) == 1 && !strpbrk(key, "/~"))
            snprintf(ptr + strlen(ptr), sizeof ptr - strlen(ptr), "/%s", key);
        problem(p, out, ptr, "%s", msg);
    }
    json_decref(errs);
    check_semantics(p, out, file);
    if (json_array_size(p->problems) == before) {
        /* The line map only places this file's problems (the cross-file
         * checks took their "path:line" above): dropped now, not after
         * the whole catalog is read, it does not add to the peak. */
        json_decref(out->lines);
        out->lines = NULL;
        return 0;
    }
    fm_yaml_doc_free(out);
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_rb(const void *a, const void *b)
{
    return strcmp(((const fm_runbook *)a)->id, ((const fm_runbook *)b)->id);
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* The *.yaml files of dir, sorted (new array of malloc'd names). */
static size_t list_files(pass *p, char **names)
{
    DIR *d = opendir(p->dir);
    if (!d) {
        char buf[700];
        snprintf(buf, sizeof buf,
                 "%s: cannot open the runbook directory: %s (set runbooks.dir"
                 " in the config or FLEETMCP_RUNBOOKS)",
                 p->dir, strerror(errno));
        file_problem(p, buf);
        return 0;
    }
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".yaml")) continue;
        bool data = false;
        for (size_t i = 0; i < sizeof not_runbooks / sizeof not_runbooks[0]; i++)
            if (!strcmp(de->d_name, not_runbooks[i])) data = true;
        if (data) continue;
        if (strncmp(de->d_name, "rb-", 3)) {
            char buf[700];
            snprintf(buf, sizeof buf,
                     "%s/%s:1: /: not a runbook name: runbook files are"
                     " rb-<name>.yaml",
                     p->dir, de->d_name);
            file_problem(p, buf);
            continue;
        }
        if (n == MAX_FILES) {
            char buf[700];
            snprintf(buf, sizeof buf, "%s: over %d runbooks; the rest are ignored", p->dir,
                     MAX_FILES);
            file_problem(p, buf);
            break;
        }
        names[n++] = strdup(de->d_name);
        if (!names[n - 1]) n--;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

static void pass_free(pass *p)
{
    json_decref(p->classes);
    json_decref(p->covered);
    fm_schema_free(p->schema);
    for (size_t i = 0; i < sizeof p->args / sizeof p->args[0]; i++) {
        fm_schema_free(p->args[i]);
        json_decref(p->args_json[i]);
    }
}

/* The whole pass.  With out, also builds the catalog when there is no
 * problem at all. */
static void run_pass(const char *dir, json_t *problems, struct fm_runbooks **out)
{
    pass p = {.dir = dir, .problems = problems, .covered = json_object()};
    const char *text = fm_embedded_schema_find("runbook.schema.json");
    json_t *sj = text ? json_loads(text, 0, NULL) : NULL;
    fm_err err = {0};
    p.schema = sj ? fm_schema_compile(sj, &err) : NULL;
    json_decref(sj); /* the compiled schema keeps its own reference */
    if (!p.schema) {
        char buf[600];
        snprintf(buf, sizeof buf, "runbook.schema.json is missing or broken (a build problem): %s",
                 err.text);
        file_problem(&p, buf);
        pass_free(&p);
        return;
    }
    load_taxonomy(&p);
    char *names[MAX_FILES];
    size_t n = list_files(&p, names);
    fm_yaml_doc *docs = calloc(n ? n : 1, sizeof *docs);
    bool *ok = calloc(n ? n : 1, sizeof *ok);
    for (size_t i = 0; docs && ok && i < n; i++)
        ok[i] = check_file(&p, names[i], &docs[i]) == 0;

    if (out && docs && ok && json_array_size(problems) == 0) {
        struct fm_runbooks *rbs = calloc(1, sizeof *rbs);
        if (rbs) rbs->items = calloc(n ? n : 1, sizeof *rbs->items);
        if (!rbs || !rbs->items) {
            free(rbs);
            rbs = NULL;
            goto done;
        }
        snprintf(rbs->dir, sizeof rbs->dir, "%s", dir);
        for (size_t i = 0; i < n; i++) {
            fm_runbook *r = &rbs->items[rbs->count++];
            r->doc = json_incref(docs[i].root);
            r->id = fm_json_str(r->doc, "id", "");
            r->version = json_integer_value(json_object_get(r->doc, "version"));
            snprintf(r->path, sizeof r->path, "%s", docs[i].path);
            const char *a = fm_json_str(r->doc, "autonomy", "hitl");
            r->autonomy = !strcmp(a, "read")     ? FM_AUTONOMY_READ
                          : !strcmp(a, "create") ? FM_AUTONOMY_CREATE
                          : !strcmp(a, "canary") ? FM_AUTONOMY_CANARY
                                                 : FM_AUTONOMY_HITL;
            r->destructive = json_is_true(json_object_get(r->doc, "destructive"));
        }
        qsort(rbs->items, rbs->count, sizeof *rbs->items, cmp_rb);
        *out = rbs;
    }
done:
    for (size_t i = 0; i < n; i++) {
        if (ok && ok[i]) fm_yaml_doc_free(&docs[i]);
        free(names[i]);
    }
    free(docs);
    free(ok);
    pass_free(&p);
}

json_t *fm_runbooks_check(const char *dir)
{
    json_t *problems = json_array();
    run_pass(dir, problems, NULL);
    return problems;
}

int fm_runbooks_open(const char *dir, struct fm_runbooks **out, fm_err *err)
{
    *out = NULL;
    json_t *problems = json_array();
    run_pass(dir, problems, out);
    size_t n = json_array_size(problems);
    if (n) {
        fm_err_set(err, FM_ERR_INVALID, "%s%s (run fleetmcp check-config for every problem)",
                   json_string_value(json_array_get(problems, 0)), n > 1 ? " and more" : "");
    } else if (!*out) {
        fm_err_set(err, FM_ERR_NOMEM, "loading runbooks from %s: out of memory", dir);
    }
    json_decref(problems);
    return *out ? 0 : -1;
}

int fm_runbooks_load(struct fm_ctx *ctx, fm_err *err)
{
    if (ctx->runbooks) return 0;
    char dir[512];
    return fm_runbooks_open(fm_runbooks_dir(&ctx->cfg, dir, sizeof dir), &ctx->runbooks, err);
}

size_t fm_runbooks_report(const fm_config *cfg, FILE *out)
{
    char dir[512];
    json_t *problems = fm_runbooks_check(fm_runbooks_dir(cfg, dir, sizeof dir));
    size_t i, n = json_array_size(problems);
    json_t *s;
    json_array_foreach(problems, i, s) fprintf(out, "%s\n", json_string_value(s));
    if (n) fprintf(out, "%zu runbook problem%s in %s\n", n, n == 1 ? "" : "s", dir);
    json_decref(problems);
    return n;
}

const fm_runbook *fm_runbook_find(const struct fm_runbooks *rbs, const char *id)
{
    for (size_t i = 0; rbs && id && i < rbs->count; i++)
        if (!strcmp(rbs->items[i].id, id)) return &rbs->items[i];
    return NULL;
}

const fm_runbook *fm_runbook_for_class(const struct fm_runbooks *rbs, const char *fault_class)
{
    for (size_t i = 0; rbs && fault_class && i < rbs->count; i++) {
        size_t k;
        const json_t *c;
        json_array_foreach(json_object_get(rbs->items[i].doc, "fault_classes"), k,
                           c) if (json_is_string(c) &&
                                  !strcmp(json_string_value(c), fault_class)) return &rbs->items[i];
    }
    return NULL;
}

void fm_runbooks_free(struct fm_runbooks *rbs)
{
    if (!rbs) return;
    for (size_t i = 0; i < rbs->count; i++)
        json_decref(rbs->items[i].doc);
    free(rbs->items);
    free(rbs);
}
