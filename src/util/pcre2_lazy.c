/* libpcre2-8, loaded on first use.
 *
 * Linked, PCRE2 maps and relocates at every start, yet patterns are
 * compiled only when a schema with a "pattern" is first checked, a Slurm
 * answer is normalised or the signature catalog is first used: never for
 * initialize or tools/list.  The entry points fleetmcp calls are defined
 * here (their real, width-suffixed names) and forward to the library,
 * loaded under pthread_once the first time one is called (lazy.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>

#include "lazy.h"

#define FM_PCRE2_SONAME "libpcre2-8.so.0"

#define FM_PCRE2_FUNCS(X, V)                                                                       \
    X(int, pcre2_jit_compile_8, (pcre2_code_8 * c, uint32_t o), (c, o), PCRE2_ERROR_JIT_BADOPTION) \
    X(int, pcre2_match_8,                                                                          \
      (const pcre2_code_8 *c, PCRE2_SPTR8 s, PCRE2_SIZE n, PCRE2_SIZE start, uint32_t o,           \
       pcre2_match_data_8 *md, pcre2_match_context_8 *mc),                                         \
      (c, s, n, start, o, md, mc), PCRE2_ERROR_NOMEMORY)                                           \
    X(pcre2_match_context_8 *, pcre2_match_context_create_8, (pcre2_general_context_8 * g), (g),   \
      NULL)                                                                                        \
    X(pcre2_match_data_8 *, pcre2_match_data_create_8, (uint32_t n, pcre2_general_context_8 * g),  \
      (n, g), NULL)                                                                                \
    X(pcre2_match_data_8 *, pcre2_match_data_create_from_pattern_8,                                \
      (const pcre2_code_8 *c, pcre2_general_context_8 *g), (c, g), NULL)                           \
    X(PCRE2_SIZE *, pcre2_get_ovector_pointer_8, (pcre2_match_data_8 * md), (md), NULL)            \
    X(int, pcre2_pattern_info_8, (const pcre2_code_8 *c, uint32_t what, void *where),              \
      (c, what, where), PCRE2_ERROR_NULL)                                                          \
    X(int, pcre2_set_depth_limit_8, (pcre2_match_context_8 * mc, uint32_t v), (mc, v), 0)          \
    X(int, pcre2_set_match_limit_8, (pcre2_match_context_8 * mc, uint32_t v), (mc, v), 0)          \
    X(int, pcre2_substring_number_from_name_8, (const pcre2_code_8 *c, PCRE2_SPTR8 name),          \
      (c, name), PCRE2_ERROR_NOSUBSTRING)                                                          \
    V(pcre2_code_free_8, (pcre2_code_8 * c), (c))                                                  \
    V(pcre2_match_context_free_8, (pcre2_match_context_8 * mc), (mc))                              \
    V(pcre2_match_data_free_8, (pcre2_match_data_8 * md), (md))

static struct {
    FM_PCRE2_FUNCS(FM_LAZY_FIELD, FM_LAZY_VFIELD)
    pcre2_code_8 *(*pcre2_compile_8)(PCRE2_SPTR8, PCRE2_SIZE, uint32_t, int *, PCRE2_SIZE *,
                                     pcre2_compile_context_8 *);
    int (*pcre2_get_error_message_8)(int, PCRE2_UCHAR8 *, PCRE2_SIZE);
    int loaded;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = fm_lazy_open(FM_PCRE2_SONAME,
                           "regular expressions (schema patterns, Slurm"
                           " normalisation, diagnosis signatures)",
                           "libpcre2-8-0");
    if (!h) return;
    FM_PCRE2_FUNCS(FM_LAZY_LOAD, FM_LAZY_VLOAD)
    FM_LAZY_SYM(h, lib.pcre2_compile_8, "pcre2_compile_8");
    FM_LAZY_SYM(h, lib.pcre2_get_error_message_8, "pcre2_get_error_message_8");
    lib.loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return lib.loaded;
}

FM_PCRE2_FUNCS(FM_LAZY_WRAP, FM_LAZY_VWRAP)

/* Every pattern is compiled before anything else is called, so this is
 * where a missing library shows: an error code and offset the caller can
 * report, and a message (below) that names the package. */
pcre2_code_8 *pcre2_compile_8(PCRE2_SPTR8 p, PCRE2_SIZE n, uint32_t o, int *code, PCRE2_SIZE *off,
                              pcre2_compile_context_8 *cc)
{
    if (ready()) return lib.pcre2_compile_8(p, n, o, code, off, cc);
    if (code) *code = PCRE2_ERROR_NOMEMORY;
    if (off) *off = 0;
    return NULL;
}

int pcre2_get_error_message_8(int code, PCRE2_UCHAR8 *buf, PCRE2_SIZE len)
{
    if (ready()) return lib.pcre2_get_error_message_8(code, buf, len);
    if (!buf || !len) return PCRE2_ERROR_NOMEMORY;
    int n =
        snprintf((char *)buf, len, "%s cannot be loaded: install libpcre2-8-0", FM_PCRE2_SONAME);
    return n >= 0 && (PCRE2_SIZE)n < len ? n : PCRE2_ERROR_NOMEMORY;
}
