/* Resources, resource templates, prompts and completions.  A provider is a
 * const ops struct hanging off fm_ctx->content, like a backend: the server
 * uses fm_content_fleet (runbooks and recorded audit sessions as
 * resources, prompts for the operator flows, completions for node names,
 * fault classes and runbook ids); another program built on libfleetmcp
 * may set its own.  The MCP layer owns the protocol (paging, errors,
 * caching hints); a provider only answers. */
#ifndef FM_CONTENT_H
#define FM_CONTENT_H

#include <jansson.h>
#include <stdbool.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

typedef struct fm_content_ops {
    /* resources/list: Resource objects (new array). */
    json_t *(*resources)(struct fm_ctx *ctx, fm_err *err);
    /* resources/templates/list: ResourceTemplate objects (new array). */
    json_t *(*templates)(struct fm_ctx *ctx);
    /* resources/read: the contents array (new), or NULL with err; an
     * unknown uri is FM_ERR_NOT_FOUND.  *ttl_ms says how long a client
     * may keep it (0: do not cache). */
    json_t *(*read)(struct fm_ctx *ctx, const char *uri, long long *ttl_ms, fm_err *err);
    /* prompts/list: Prompt objects (new array). */
    json_t *(*prompts)(struct fm_ctx *ctx);
    /* prompts/get: a GetPromptResult (new), or NULL with err (NOT_FOUND for
     * an unknown name, INVALID for a missing or bad argument). */
    json_t *(*prompt)(struct fm_ctx *ctx, const char *name, const json_t *args, fm_err *err);
    /* completion/complete: candidate values (new array of strings) for
     * argument arg of ref ({type: ref/prompt, name} or {type:
     * ref/resource, uri}) starting with prefix. */
    json_t *(*complete)(struct fm_ctx *ctx, const json_t *ref, const char *arg, const char *prefix);
    /* resources/subscribe and unsubscribe (stateful revisions): 0, or -1
     * with err.  NULL: the provider sends no updates, and says so. */
    int (*subscribe)(struct fm_ctx *ctx, const char *uri, bool on, fm_err *err);
} fm_content_ops;

extern const fm_content_ops fm_content_fleet;

#endif
