/* JSON-RPC 2.0 framing: classify one parsed message and build replies.
 * Parse failures fill a caller-owned fm_rpc_error (like json_error_t). */
#ifndef FM_JSONRPC_H
#define FM_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>

#define FM_RPC_PARSE_ERROR -32700
#define FM_RPC_INVALID_REQUEST -32600
#define FM_RPC_METHOD_NOT_FOUND -32601
#define FM_RPC_INVALID_PARAMS -32602
#define FM_RPC_INTERNAL_ERROR -32603
/* MCP 2026-07-28 */
#define FM_RPC_HEADER_MISMATCH -32020
#define FM_RPC_MISSING_CAPABILITY -32021
#define FM_RPC_UNSUPPORTED_VERSION -32022

typedef enum {
    FM_MSG_REQUEST = 0,
    FM_MSG_NOTIFICATION = 1,
    FM_MSG_RESPONSE = 2, /* a reply to a request we sent the client */
    FM_MSG_INVALID = 3,
} fm_msg_kind;

typedef struct fm_rpc_msg {
    fm_msg_kind kind;
    const json_t *id;     /* borrowed; NULL for notifications and when unusable */
    const char *method;   /* borrowed */
    const json_t *params; /* borrowed; NULL if absent */
    int error_code;       /* for FM_MSG_INVALID */
    char error[256];
} fm_rpc_msg;

/* Classifies msg (borrowed, already parsed).  Never fails: invalid
 * messages come back as FM_MSG_INVALID with the code to answer. */
void fm_rpc_classify(const json_t *msg, fm_rpc_msg *out);

/* {"jsonrpc":"2.0","id":id,"result":result}; steals result (new). */
json_t *fm_rpc_result(const json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id|null,"error":{code,message}} (new). */
json_t *fm_rpc_error(const json_t *id, int code, const char *message);
/* {"jsonrpc":"2.0","method":m,"params":params}; steals params (new). */
json_t *fm_rpc_notification(const char *method, json_t *params);

#endif
