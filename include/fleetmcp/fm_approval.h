/* Approvals: an Ed25519 signature by an approver's key over
 *   "fleetmcp-approval-v1|<plan id>|<plan hash>|<approver>|<expires ms>"
 * The server holds only public keys (config approvals.keys), so an agent
 * cannot mint an approval.  Approvals are single-use, expire, and bind to
 * the plan's hash. */
#ifndef FM_APPROVAL_H
#define FM_APPROVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

#define FM_APPROVAL_ID_LEN 20       /* "ap-" + 16 hex + NUL */
#define FM_APPROVER_LEN 160         /* "elicitation:" + a token subject (127) fits */
#define FM_APPROVAL_MAX_PER_PLAN 16 /* approvals of one plan the gate looks at */
#define FM_APPROVAL_MAX_TTL_MS (24LL * 3600 * 1000)

int fm_approval_init(struct fm_ctx *ctx, fm_err *err);

/* The signed message into buf; returns its length. */
size_t fm_approval_message(char *buf, size_t len, const char *plan_id, const char *plan_hash,
                           const char *approver, int64_t expires_ms);

/* Verifies sig_b64 with the approver's configured key and records the
 * approval for plan_id.  Refuses (FM_ERR_APPROVAL) unknown approvers,
 * bad signatures, expired or too-long approvals, unknown plans and plans
 * not awaiting approval. */
int fm_approval_record(struct fm_ctx *ctx, const char *plan_id, const char *approver,
                       int64_t expires_ms, const char *sig_b64, char id_out[FM_APPROVAL_ID_LEN],
                       fm_err *err);

/* Records an approval the user of a trusted caller gave through MCP
 * elicitation or a multi round-trip answer (no signature: the config names
 * the token subjects trusted for this, and the approver is recorded as
 * "elicitation:<subject>").  Valid for one use within a minute. */
int fm_approval_record_elicited(struct fm_ctx *ctx, const char *plan_id, const char *approver,
                                char id_out[FM_APPROVAL_ID_LEN], fm_err *err);

/* True when this session may approve through elicitation: enabled in the
 * config, the caller is a verified principal whose token subject is in
 * approvals.elicitation.trusted_subjects, and it declared the capability.
 * A self-declared client name is never enough. */
bool fm_approval_elicitation_allowed(struct fm_ctx *ctx);

/* The plan approval_id approves, or FM_ERR_APPROVAL when there is no such
 * approval.  For the gate, to learn who created the plan before deciding
 * what releasing it takes. */
int fm_approval_plan_of(struct fm_ctx *ctx, const char *approval_id,
                        char plan_id_out[FM_APPROVAL_ID_LEN], fm_err *err);

/* For the gate: checks that approval_id is unused, unexpired, for a plan
 * whose hash is plan_hash, and still verifies; gathers the plan's other
 * unused approvals that still verify; and if these approvers together meet
 * need (fm_approval_quorum: people, role, creator), marks them all used
 * and the plan executed.  approvers_out names the people counted.  Atomic
 * across processes. */
struct fm_approval_need;
int fm_approval_consume(struct fm_ctx *ctx, const char *approval_id, const char *plan_hash,
                        const struct fm_approval_need *need, char plan_id_out[FM_APPROVAL_ID_LEN],
                        char *approvers_out, size_t approvers_len, fm_err *err);

/* Signing side (mcp-cli): PEM private key file → base64 signature. */
int fm_approval_sign(const char *key_file, const char *msg, size_t msg_len, char *sig_b64,
                     size_t sig_len, fm_err *err);
/* Writes a new Ed25519 private key (PEM, mode 0600) and returns the raw
 * public key as base64 in pub_b64. */
int fm_approval_keygen(const char *key_file, char *pub_b64, size_t pub_len, fm_err *err);

#endif
