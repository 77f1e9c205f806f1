/* Config: YAML → JSON, each section validated against its embedded schema
 * (schemas/config/<section>.json), then the core settings pulled out. */
#include "fleetmcp/fm_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_schemas.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_yaml.h"

#define DEFAULT_MAX_MESSAGE (4u << 20)

const char *fm_mode_name(fm_mode m)
{
    switch (m) {
    case FM_MODE_SHADOW:
        return "shadow";
    case FM_MODE_CANARY:
        return "canary";
    case FM_MODE_FLEET:
        return "fleet";
    }
    return "shadow";
}

const char *fm_embedded_schema_find(const char *name)
{
    for (size_t i = 0; i < fm_embedded_schema_count; i++)
        if (!strcmp(fm_embedded_schemas[i].name, name)) return fm_embedded_schemas[i].text;
    return NULL;
}

static void check_elicitation(const fm_yaml_doc *doc, json_t *problems);

/* Validates every section and appends "file:line: pointer: why" strings
 * to problems (borrowed array). */
static void check_doc(const fm_yaml_doc *doc, json_t *problems)
{
    char buf[768];
    if (!json_is_object(doc->root)) {
        snprintf(buf, sizeof buf, "%s:1: the config must be a mapping of sections", doc->path);
        json_array_append_new(problems, json_string(buf));
        return;
    }
    const char *core = fm_embedded_schema_find("config/root.json");
    json_t *root = core ? json_loads(core, 0, NULL) : NULL;
    json_t *props = json_object_get(root, "properties");
    const char *key;
    json_t *val;
    json_object_foreach(doc->root, key, val)
    {
        char name[128], ptr[160];
        snprintf(name, sizeof name, "config/%s.json", key);
        const char *text = fm_embedded_schema_find(name);
        json_t *schema = NULL;
        if (!text) {
            /* Core keys (mode, store, ...) are described by root.json. */
            if (!json_object_get(props, key)) {
                snprintf(ptr, sizeof ptr, "/%s", key);
                snprintf(buf, sizeof buf,
                         "%s:%d: unknown section '%s': check the spelling"
                         " (see examples/fleetmcp.yaml)",
                         doc->path, fm_yaml_line(doc, ptr), key);
                json_array_append_new(problems, json_string(buf));
                continue;
            }
            schema = json_incref(json_object_get(props, key));
        } else {
            schema = json_loads(text, 0, NULL);
        }
        json_t *errs = json_array();
        fm_schema_validate_all(schema, val, errs, 20);
        size_t i;
        json_t *e;
        json_array_foreach(errs, i, e)
        {
            const char *p = fm_json_str(e, "path", "");
            snprintf(ptr, sizeof ptr, "/%s%s", key, p);
            snprintf(buf, sizeof buf, "%s:%d: %s: %s", doc->path, fm_yaml_line(doc, ptr), ptr,
                     fm_json_str(e, "message", "invalid"));
            json_array_append_new(problems, json_string(buf));
        }
        json_decref(errs);
        json_decref(schema);
    }
    json_decref(root);
    check_elicitation(doc, problems);
}

static void problem(json_t *problems, const fm_yaml_doc *doc, const char *ptr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends "file:line: pointer: text" to problems. */
static void problem(json_t *problems, const fm_yaml_doc *doc, const char *ptr, const char *fmt, ...)
{
    char text[512], buf[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(buf, sizeof buf, "%.600s:%d: %.200s: %s", doc->path, fm_yaml_line(doc, ptr), ptr,
             text);
    json_array_append_new(problems, json_string(buf));
}

/* trusted_clients would let a client approve its own plan on the strength
 * of the name it declares (clientInfo.name), which any client can claim;
 * trusted_subjects (verified token subjects) is the way. */
static void check_elicitation(const fm_yaml_doc *doc, json_t *problems)
{
    const json_t *el = json_object_get(json_object_get(doc->root, "approvals"), "elicitation");
    if (json_is_true(json_object_get(el, "enabled")) &&
        json_array_size(json_object_get(el, "trusted_clients")))
        problem(problems, doc, "/approvals/elicitation/enabled",
                "trusted_clients match the client's self-declared name, which any client can"
                " claim (an agent calling itself mcp-cli would approve its own plans): name"
                " verified token subjects in trusted_subjects instead (HTTP with auth)");
}

/* A private file (key, secret) others can read, or a trust file others
 * can write, is refused: the server would be trusting it. */
static void check_mode(const fm_yaml_doc *doc, json_t *problems, const char *ptr, const char *file,
                       mode_t forbidden, const char *what, bool existence)
{
    struct stat sb;
    if (stat(file, &sb)) {
        /* At start the backend that opens it says what is missing. */
        if (existence)
            problem(problems, doc, ptr, "%s %s cannot be read: %s", what, file, strerror(errno));
        return;
    }
    if (sb.st_mode & forbidden)
        problem(problems, doc, ptr, "%s %s has mode %04o: %s (chmod %s %s)", what, file,
                (unsigned)(sb.st_mode & 07777),
                forbidden & 0044 ? "other users can read it" : "other users can write it",
                forbidden & 0044 ? "600" : "go-w", file);
}

/* Every {file: PATH} secret under v (pointer ptr). */
static void check_secret_files(const fm_yaml_doc *doc, json_t *problems, const json_t *v,
                               const char *ptr, bool existence)
{
    char sub[256];
    if (json_is_object(v)) {
        const char *f = json_string_value(json_object_get(v, "file"));
        if (f && json_object_size(v) == 1) {
            snprintf(sub, sizeof sub, "%s/file", ptr);
            check_mode(doc, problems, sub, f, 0077, "secret file", existence);
            return;
        }
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            /* killswitch.file is a flag whose existence matters, not a
             * secret. */
            if (!*ptr && !strcmp(k, "killswitch")) continue;
            snprintf(sub, sizeof sub, "%s/%s", ptr, k);
            check_secret_files(doc, problems, c, sub, existence);
        }
    } else if (json_is_string(v) && !strncmp(json_string_value(v), "file:", 5)) {
        check_mode(doc, problems, ptr, json_string_value(v) + 5, 0077, "secret file", existence);
    }
}

/* A program as execvp would find it: with a slash, that path; else the
 * first executable of that name on PATH. */
static bool program_exists(const char *prog)
{
    if (strchr(prog, '/')) return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, prog);
        if (n && access(dir, X_OK) == 0) return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* What the files a config names allow: keys and secrets private, trust
 * files not writable by others (refused at start too); with `existence`
 * (check-config), the Slurm programs and slurm.conf exist. */
static void check_files(const fm_yaml_doc *doc, json_t *problems, bool existence)
{
    const json_t *root = doc->root;
    const json_t *ssh = json_object_get(root, "ssh");
    const char *key = json_string_value(json_object_get(ssh, "key_file"));
    if (key) check_mode(doc, problems, "/ssh/key_file", key, 0077, "SSH private key", existence);
    const char *kh = json_string_value(json_object_get(ssh, "known_hosts"));
    if (kh) check_mode(doc, problems, "/ssh/known_hosts", kh, 0022, "known_hosts", existence);
    check_secret_files(doc, problems, root, "", existence);
    if (!existence) return;
    const json_t *cli = json_object_get(json_object_get(root, "slurm"), "cli");
    static const char *const progs[] = {"sinfo", "squeue", "scontrol", "scancel"};
    char ptr[64];
    for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
        const char *p = json_string_value(json_object_get(cli, progs[i]));
        snprintf(ptr, sizeof ptr, "/slurm/cli/%s", progs[i]);
        if (p && !program_exists(p))
            problem(problems, doc, ptr,
                    "program %s is not found or not executable%s: install it or give its path", p,
                    strchr(p, '/') ? "" : " on PATH");
    }
    const char *conf = json_string_value(json_object_get(cli, "slurm_conf"));
    if (conf && access(conf, R_OK))
        problem(problems, doc, "/slurm/cli/slurm_conf", "%s cannot be read: %s", conf,
                strerror(errno));
}

json_t *fm_config_check(const char *path)
{
    json_t *problems = json_array();
    fm_yaml_doc doc;
    fm_err err = {0};
    if (fm_yaml_load_file(path, &doc, &err)) {
        json_array_append_new(problems, json_string(err.text));
        return problems;
    }
    check_doc(&doc, problems);
    if (!json_array_size(problems)) check_files(&doc, problems, true);
    fm_yaml_doc_free(&doc);
    return problems;
}

static void default_db_path(char *out, size_t len)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(out, len, "%s/fleetmcp/fleetmcp.db", xdg);
    else if (home && *home)
        snprintf(out, len, "%s/.local/state/fleetmcp/fleetmcp.db", home);
    else
        snprintf(out, len, "fleetmcp.db");
}

int fm_config_load(fm_config *cfg, const char *path, const char *db_override, fm_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = FM_MODE_SHADOW;
    cfg->max_message = DEFAULT_MAX_MESSAGE;
    if (!path || !*path) path = getenv("FLEETMCP_CONFIG");
    if (path && *path) {
        fm_yaml_doc doc;
        if (fm_yaml_load_file(path, &doc, err)) return -1;
        json_t *problems = json_array();
        check_doc(&doc, problems);
        if (!json_array_size(problems)) check_files(&doc, problems, false);
        if (json_array_size(problems)) {
            fm_err_set(err, FM_ERR_INVALID,
                       "%s (run `fleetmcp check-config --config %s` for"
                       " every problem)",
                       json_string_value(json_array_get(problems, 0)), path);
            json_decref(problems);
            fm_yaml_doc_free(&doc);
            return -1;
        }
        json_decref(problems);
        cfg->root = json_incref(doc.root);
        fm_yaml_doc_free(&doc);
        snprintf(cfg->path, sizeof cfg->path, "%s", path);
    } else {
        cfg->root = json_object();
    }
    const char *mode = fm_cfg_str(cfg->root, "mode", "shadow");
    cfg->mode = !strcmp(mode, "fleet")    ? FM_MODE_FLEET
                : !strcmp(mode, "canary") ? FM_MODE_CANARY
                                          : FM_MODE_SHADOW;
    /* FLEETMCP_MODE can only make the server more careful than its file
     * (replay and drills force shadow without editing a production config);
     * it can never raise the mode. */
    const char *env = getenv("FLEETMCP_MODE");
    if (env && *env) {
        fm_mode m = !strcmp(env, "fleet")    ? FM_MODE_FLEET
                    : !strcmp(env, "canary") ? FM_MODE_CANARY
                    : !strcmp(env, "shadow") ? FM_MODE_SHADOW
                                             : (fm_mode)-1;
        if ((int)m < 0) {
            fm_err_set(err, FM_ERR_INVALID, "FLEETMCP_MODE must be shadow, canary or fleet");
            fm_config_free(cfg);
            return -1;
        }
        if (m < cfg->mode) cfg->mode = m;
    }
    cfg->read_only = fm_cfg_bool(cfg->root, "read_only", false);
    const json_t *limits = fm_config_section(cfg, "limits");
    long long mm = fm_cfg_int(limits, "max_message_bytes", DEFAULT_MAX_MESSAGE);
    cfg->max_message = mm > 0 ? (size_t)mm : DEFAULT_MAX_MESSAGE;
    snprintf(cfg->killswitch_file, sizeof cfg->killswitch_file, "%s",
             fm_cfg_str(fm_config_section(cfg, "killswitch"), "file", ""));

    const char *envdb = getenv("FLEETMCP_DB");
    /* store.url (a postgresql:// URL) wins over store.path when both are set. */
    const char *cfgdb = fm_cfg_str(fm_config_section(cfg, "store"), "url", NULL);
    if (!cfgdb) cfgdb = fm_cfg_str(fm_config_section(cfg, "store"), "path", NULL);
    if (db_override && *db_override)
        snprintf(cfg->db_path, sizeof cfg->db_path, "%s", db_override);
    else if (envdb && *envdb)
        snprintf(cfg->db_path, sizeof cfg->db_path, "%s", envdb);
    else if (cfgdb)
        snprintf(cfg->db_path, sizeof cfg->db_path, "%s", cfgdb);
    else
        default_db_path(cfg->db_path, sizeof cfg->db_path);
    return 0;
}

void fm_config_free(fm_config *cfg)
{
    json_decref(cfg->root);
    cfg->root = NULL;
}

const json_t *fm_config_section(const fm_config *cfg, const char *name)
{
    json_t *s = json_object_get(cfg->root, name);
    return json_is_object(s) ? s : NULL;
}

const char *fm_cfg_str(const json_t *sec, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(sec, key));
    return s ? s : dflt;
}

long long fm_cfg_int(const json_t *sec, const char *key, long long dflt)
{
    json_t *v = json_object_get(sec, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

double fm_cfg_real(const json_t *sec, const char *key, double dflt)
{
    json_t *v = json_object_get(sec, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

bool fm_cfg_bool(const json_t *sec, const char *key, bool dflt)
{
    json_t *v = json_object_get(sec, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int fm_secret_resolve(const json_t *ref, char *buf, size_t buflen, fm_err *err)
{
    const char *env = NULL, *file = NULL;
    if (json_is_object(ref)) {
        env = json_string_value(json_object_get(ref, "env"));
        file = json_string_value(json_object_get(ref, "file"));
    } else if (json_is_string(ref)) {
        const char *s = json_string_value(ref);
        if (!strncmp(s, "env:", 4)) env = s + 4;
        if (!strncmp(s, "file:", 5)) file = s + 5;
    }
    if (env) {
        const char *v = getenv(env);
        if (!v || !*v)
            return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                              "secret: environment variable %s is empty or unset: export it", env);
        if (strlen(v) >= buflen)
            return fm_err_set(err, FM_ERR_TOO_LARGE, "secret in %s is too long", env);
        snprintf(buf, buflen, "%s", v);
        return 0;
    }
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            return fm_err_set(err, FM_ERR_NOT_CONFIGURED, "secret: cannot read %s: %s", file,
                              strerror(errno));
        size_t n = fread(buf, 1, buflen - 1, f);
        int more = fgetc(f) != EOF;
        fclose(f);
        if (more) return fm_err_set(err, FM_ERR_TOO_LARGE, "secret file %s is too long", file);
        buf[n] = '\0';
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        return 0;
    }
    return fm_err_set(err, FM_ERR_INVALID,
                      "secret must be {env: NAME} or {file: PATH}; secrets never sit in the"
                      " config file itself");
}
