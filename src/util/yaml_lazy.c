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

FM_LAZY_LIBRARY(FM_YAML_FUNCS, FM_YAML_SONAME, "YAML files (config, runbooks, signatures)",
                "libyaml-0-2")
