/* libyaml, loaded on first use.
 *
 * Linked, libyaml maps and relocates at every start, yet a start reads
 * YAML only when it is given a config file: initialize, tools/list and
 * most tool calls never parse any (runbooks and signatures are read on
 * their first use).  src/config/yaml.c is its one caller; the entry points
 * it calls are defined here and forward to the real library, loaded under
 * pthread_once the first time one of them is called (lazy.h). */
#include <yaml.h>

#include "lazy.h"

#define FM_YAML_SONAME "libyaml-0.so.2"

#define FM_YAML_FUNCS(X, V)                                                                        \
    X(int, yaml_parser_initialize, (yaml_parser_t * p), (p), 0)                                    \
    V(yaml_parser_set_input_string, (yaml_parser_t * p, const unsigned char *in, size_t n),        \
      (p, in, n))                                                                                  \
    X(int, yaml_parser_parse, (yaml_parser_t * p, yaml_event_t * ev), (p, ev), 0)                  \
    V(yaml_event_delete, (yaml_event_t * ev), (ev))                                                \
    V(yaml_parser_delete, (yaml_parser_t * p), (p))

static struct {
    FM_YAML_FUNCS(FM_LAZY_FIELD, FM_LAZY_VFIELD)
    int loaded;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = fm_lazy_open(FM_YAML_SONAME, "YAML files (config, runbooks, signatures)",
                           "libyaml-0-2");
    if (!h) return;
    FM_YAML_FUNCS(FM_LAZY_LOAD, FM_LAZY_VLOAD)
    lib.loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return lib.loaded;
}

FM_YAML_FUNCS(FM_LAZY_WRAP, FM_LAZY_VWRAP)
