/* The executor's command catalog: the only commands fleetmcp can run on a
 * node, their argv templates, and the strict patterns every argument must
 * match.  All validation lives here, so no other file can widen it.
 *
 * SSH runs one command string through the remote user's shell, so argv
 * has to be flattened.  fm_cmd_build() does that by single-quoting every
 * element ('...' with each ' written as '\''), and it only ever quotes
 * constants from this file or values that passed the patterns below
 * (which allow no quote, space, $, ;, newline or other shell syntax).
 * The quoting is a second line of defence, not the first. */
#include "fleetmcp/fm_exec.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernel Xid lines: the current boot only (-k implies -b, and a reset or
 * reboot is what clears the fault, so older boots would mislead), at most
 * the newest 200 matches, ISO timestamps.  --since is not used: -n
 * already bounds the output, and a repair's time is compared with the
 * stamps on the node's own clock (FM_CMD_NODE_CLOCK), never this
 * server's. */
#define XID_MAX_LINES "200"

/* A bounded kernel window for diagnosis: the newest 400 lines of the
 * current boot that carry a signal the signatures read (Xid, AER, soft
 * lockups, link changes, OOM, ENOSPC, I/O and machine-check errors).  A
 * constant pattern: nothing from a caller reaches it. */
#define KLOG_MAX_LINES "400"
#define KLOG_GREP                                                                                  \
    "--grep=NVRM|Xid|AER|PCIe Bus Error|lockup|rcu_|[Ll]ink (is )?([Dd]own|DOWN|[Uu]p|ACTIVE)|"    \
    "oom-kill|Out of memory|No space left|I/O error|hung_task|blocked for more than|EDAC|"         \
    "Hardware Error|[Mm]achine [Cc]heck|Kernel panic|segfault|NETDEV WATCHDOG"

/* The tail of a job's output file: the newest 64 KiB, where the error
 * that ended (or stalls) the job is; the engine reads lines, not bytes. */
#define JOB_LOG_TAIL_BYTES "65536"

/* Reads a job's output file only if what it opens is the file its stat
 * showed.  $1 (the path) and $2 (OWNER:DEV:INODE) are argv elements, never
 * part of the script; the script is a constant.
 *
 * sh cannot open without following a link or without waiting for a
 * FIFO's writer, so GNU dd opens the path (iflag=nofollow,nonblock: a link
 * at the path fails, a FIFO opens at once) and is held open by its own
 * write: one block padded to JOB_LOG_HOLD_BYTES, more than a new pipe
 * holds (16 pages: 64 KiB, 1 MiB with 64 KiB pages), blocks in write()
 * until its reader reads.  The reader takes dd's pid (the echo before the
 * exec), one byte (so dd has opened and is blocked; nothing at all: not
 * opened, empty, or a FIFO with no writer), then dd's descriptor through
 * /proc (test -f is a stat: a FIFO with data is refused, not opened).
 * Reopening /proc/PID/fd/0 of a regular file is that very file, whatever
 * the path names by then; that descriptor must be a regular file of $2,
 * and tail reads it.  Its stdin replaced, the pipe closes and dd ends on
 * SIGPIPE.  Exit 66: not opened, or nothing in it; 67: not a regular
 * file; 68: another owner or file. */
#define JOB_LOG_HOLD_BYTES "4194304"
#define JOB_LOG_READ_SH                                                                            \
    "sh -c 'echo $$; exec dd if=\"$1\" iflag=nofollow,nonblock bs=" JOB_LOG_HOLD_BYTES             \
    " count=1 conv=sync status=none 2>/dev/null' sh \"$1\" |"                                      \
    " { read -r p && [ \"$(head -c 1 | wc -c)\" = 1 ] || exit 66;"                                 \
    " [ -f \"/proc/$p/fd/0\" ] || exit 67;"                                                        \
    " { [ -f /dev/fd/3 ] || exit 67; [ \"$(stat -L -c %U:%d:%i /dev/fd/3)\" = \"$2\" ] || exit "   \
    "68;"                                                                                          \
    " exec tail -c " JOB_LOG_TAIL_BYTES " <&3; } 3<\"/proc/$p/fd/0\" || exit 66; }"

typedef enum {
    ARG_NONE = 0,
    ARG_GPU_OPT,
    ARG_BUS_REQ,
    ARG_LEVEL_REQ,
    ARG_PATH_REQ,
    ARG_PATH_FILE_REQ /* the path, then the file it must open as (fm_cmd_args.file) */
} arg_kind;

typedef struct cmd_def {
    const char *name;
    const char *argv[FM_CMD_MAX_ARGV]; /* fixed part, NULL-terminated */
    arg_kind arg;
    bool mutates;
} cmd_def;

static const cmd_def catalog[FM_CMD_COUNT] = {
    [FM_CMD_NVSMI_QUERY] = {"nvsmi_query", {"nvidia-smi", "-q"}, ARG_GPU_OPT, false},
    [FM_CMD_NVSMI_QUERY_GPU] = {"nvsmi_query_gpu",
                                {"nvidia-smi", "--query-gpu=" FM_NVSMI_QUERY_FIELDS,
                                 "--format=csv,noheader,nounits"},
                                ARG_GPU_OPT,
                                false},
    [FM_CMD_NVSMI_RESET] = {"nvsmi_reset", {"nvidia-smi", "--gpu-reset"}, ARG_BUS_REQ, true},
    [FM_CMD_DCGMI_DIAG] = {"dcgmi_diag", {"dcgmi", "diag"}, ARG_LEVEL_REQ, false},
    [FM_CMD_DCGMI_HEALTH] = {"dcgmi_health", {"dcgmi", "health", "-c", "-j"}, ARG_NONE, false},
    [FM_CMD_KERNEL_XID] = {"kernel_xid",
                           {"journalctl", "-k", "--no-pager", "-o", "short-iso", "-n",
                            XID_MAX_LINES, "--grep=NVRM: Xid"},
                           ARG_NONE,
                           false},
    [FM_CMD_IBSTAT] = {"ibstat", {"ibstat"}, ARG_NONE, false},
    [FM_CMD_KERNEL_LOG] = {"kernel_log",
                           {"journalctl", "-k", "--no-pager", "-o", "short-iso", "-n",
                            KLOG_MAX_LINES, KLOG_GREP},
                           ARG_NONE,
                           false},
    /* sh's $0 is "sh"; the path and the file are $1 and $2 */
    [FM_CMD_JOB_LOG_TAIL] = {"job_log_tail",
                             {"sh", "-c", JOB_LOG_READ_SH, "sh"},
                             ARG_PATH_FILE_REQ,
                             false},
    /* Seconds since the epoch on the node's clock: what its kernel lines
     * are stamped with, so a repair's time is compared with them on one
     * clock (node clocks drift from this server's). */
    [FM_CMD_NODE_CLOCK] = {"node_clock", {"date", "+%s"}, ARG_NONE, false},
    /* What a job's output path is before its tail is read: a job names
     * its own output file and the ssh user reads it, so only a regular
     * file of the job's user is read (job_log_tail checks that what it
     * opens is this very file).  stat without -L reports a symbolic link
     * as one, never its target. */
    [FM_CMD_JOB_LOG_STAT] = {"job_log_stat",
                             {"stat", "-c", FM_JOB_LOG_STAT_FORMAT, "--"},
                             ARG_PATH_REQ,
                             false},
};

void fm_cmd_args_init(fm_cmd_args *a)
{
    memset(a, 0, sizeof *a);
    a->gpu_index = -1;
}

const char *fm_cmd_name(int cmd)
{
    return cmd >= 0 && cmd < FM_CMD_COUNT ? catalog[cmd].name : NULL;
}

bool fm_cmd_mutates(fm_cmd_id cmd)
{
    return (int)cmd >= 0 && cmd < FM_CMD_COUNT && catalog[cmd].mutates;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool fm_exec_valid_node(const char *s)
{
    if (!s || !is_alnum(s[0])) return false;
    size_t i = 1;
    for (; s[i]; i++) {
        char c = s[i];
        if (i > 62 || !(is_alnum(c) || c == '.' || c == '_' || c == '-')) return false;
    }
    return true;
}

bool fm_exec_valid_pci_bus(const char *s)
{
    /* "XXXXXXXX:XX:XX.F": fixed layout, so check position by position. */
    static const char layout[] = "hhhhhhhh:hh:hh.f";
    if (!s || strlen(s) != sizeof layout - 1) return false;
    for (size_t i = 0; layout[i]; i++) {
        char want = layout[i], c = s[i];
        if (want == 'h' && !is_hex(c)) return false;
        if (want == 'f' && !(c >= '0' && c <= '7')) return false;
        if ((want == ':' || want == '.') && c != want) return false;
    }
    return true;
}

bool fm_exec_valid_log_path(const char *s)
{
    static const char *const system[] = {
        "/etc",  "/proc", "/sys",   "/dev",   "/boot",   "/root",    "/run",     "/usr",  "/bin",
        "/sbin", "/lib",  "/lib32", "/lib64", "/libx32", "/var/lib", "/var/run", "/snap", NULL};
    if (!s || s[0] != '/') return false;
    size_t n = strlen(s);
    if (n < 2 || n > 255 || s[n - 1] == '/') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '@' || c == '=' ||
              c == ',' || c == '~' || c == '/'))
            return false;
    }
    /* components: none empty, ".", or ".." (no way out of where it names) */
    for (const char *p = s + 1; *p;) {
        size_t l = strcspn(p, "/");
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += l;
        if (*p) p++;
    }
    for (int i = 0; system[i]; i++) {
        size_t l = strlen(system[i]);
        if (strncmp(s, system[i], l) == 0 && s[l] == '/') return false;
    }
    return true;
}

bool fm_exec_valid_file_ident(const char *s)
{
    /* OWNER:DEV:INODE: a user name (letters, digits, . _ - @), then two
     * decimal numbers. */
    if (!s) return false;
    size_t u = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@");
    if (u == 0 || u > 64 || s[u] != ':') return false;
    const char *p = s + u + 1;
    size_t d = strspn(p, "0123456789");
    if (d == 0 || d > 20 || p[d] != ':') return false;
    p += d + 1;
    size_t i = strspn(p, "0123456789");
    return i > 0 && i <= 20 && !p[i];
}

bool fm_exec_valid_address(const char *s)
{
    if (!s || !*s || strlen(s) > 253) return false;
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1) return true;
    /* RFC 1123 host name: dot-separated labels of 1..63 alnum/hyphen,
     * no leading or trailing hyphen; not all-numeric (that would be a
     * malformed IPv4 address, not a name). */
    size_t label = 0;
    bool alpha = false;
    for (const char *p = s;; p++) {
        char c = *p;
        if (c == '.' || c == '\0') {
            if (label == 0 || p[-1] == '-') return false;
            if (c == '\0') break;
            label = 0;
            continue;
        }
        if (!(is_alnum(c) || c == '-')) return false;
        if (label == 0 && c == '-') return false;
        if (++label > 63) return false;
        if (!(c >= '0' && c <= '9')) alpha = true;
    }
    return alpha;
}

/* Appends one single-quoted element.  Returns false if it does not fit. */
static bool quote_append(char *dst, size_t cap, size_t *len, const char *arg)
{
    size_t n = *len;
    if (n && n + 1 < cap) dst[n++] = ' ';
    if (n + 1 >= cap) return false;
    dst[n++] = '\'';
    for (const char *p = arg; *p; p++) {
        if (*p == '\'') {
            if (n + 5 >= cap) return false;
            memcpy(dst + n, "'\\''", 4);
            n += 4;
        } else {
            if (n + 2 >= cap) return false;
            dst[n++] = *p;
        }
    }
    if (n + 2 > cap) return false;
    dst[n++] = '\'';
    dst[n] = '\0';
    *len = n;
    return true;
}

static int push(fm_cmd_line *line, const char *arg, fm_err *err)
{
    if (line->argc >= FM_CMD_MAX_ARGV || strlen(arg) >= FM_CMD_MAX_ARG)
        return fm_err_set(err, FM_ERR_INTERNAL, "catalog argv over its bound"), -1;
    snprintf(line->argv[line->argc++], FM_CMD_MAX_ARG, "%s", arg);
    return 0;
}

/* Pushes the job log argument v (a field of cap bytes) if it is
 * terminated and valid(v); else INVALID naming it (clipped). */
static int push_valid(fm_cmd_line *line, const char *v, size_t cap, bool (*valid)(const char *),
                      const char *name, const char *form, fm_err *err)
{
    char clip[64];
    bool term = memchr(v, '\0', cap) != NULL;
    if (!term || !valid(v)) {
        fm_clip(clip, sizeof clip, term ? v : "(unterminated)");
        return fm_err_set(err, FM_ERR_INVALID, "job log %s '%s' is not %s", name, clip, form), -1;
    }
    return push(line, v, err);
}

int fm_cmd_build(fm_cmd_id cmd, const fm_cmd_args *a, int max_diag_level, fm_cmd_line *line,
                 fm_err *err)
{
    memset(line, 0, sizeof *line);
    if ((int)cmd < 0 || cmd >= FM_CMD_COUNT)
        return fm_err_set(err, FM_ERR_INVALID, "unknown command id %d: not in the catalog",
                          (int)cmd),
               -1;
    const cmd_def *d = &catalog[cmd];
    fm_cmd_args none;
    if (!a) {
        fm_cmd_args_init(&none);
        a = &none;
    }
    char tmp[32];
    for (int i = 0; i < FM_CMD_MAX_ARGV && d->argv[i]; i++)
        if (push(line, d->argv[i], err)) return -1;

    switch (d->arg) {
    case ARG_NONE:
        break;
    case ARG_GPU_OPT:
        if (a->gpu_index == -1) break;
        if (a->gpu_index < 0 || a->gpu_index > 63)
            return fm_err_set(err, FM_ERR_INVALID, "gpu index %d out of range 0..63", a->gpu_index),
                   -1;
        snprintf(tmp, sizeof tmp, "%d", a->gpu_index);
        if (push(line, "-i", err) || push(line, tmp, err)) return -1;
        break;
    case ARG_BUS_REQ: {
        char clip[64];
        if (!memchr(a->pci_bus, '\0', sizeof a->pci_bus) || !fm_exec_valid_pci_bus(a->pci_bus)) {
            fm_clip(clip, sizeof clip,
                    memchr(a->pci_bus, '\0', sizeof a->pci_bus) ? a->pci_bus : "(unterminated)");
            return fm_err_set(err, FM_ERR_INVALID,
                              "pci bus id '%s' is not of the form 00000000:18:00.0", clip),
                   -1;
        }
        if (push(line, "-i", err) || push(line, a->pci_bus, err)) return -1;
        break;
    }
    case ARG_PATH_REQ:
    case ARG_PATH_FILE_REQ:
        if (push_valid(line, a->path, sizeof a->path, fm_exec_valid_log_path, "path",
                       "an absolute path of plain characters outside the system directories", err))
            return -1;
        if (d->arg == ARG_PATH_FILE_REQ &&
            push_valid(line, a->file, sizeof a->file, fm_exec_valid_file_ident, "file",
                       "OWNER:DEVICE:INODE (a plain user name, two numbers)", err))
            return -1;
        break;
    case ARG_LEVEL_REQ: {
        int max = max_diag_level == 4 ? 4 : 3;
        if (a->diag_level < 1 || a->diag_level > max)
            return fm_err_set(err, FM_ERR_INVALID, "diag level %d out of range 1..%d%s",
                              a->diag_level, max,
                              max == 3 ? " (level 4 needs ssh.max_diag_level: 4)" : ""),
                   -1;
        snprintf(tmp, sizeof tmp, "%d", a->diag_level);
        if (push(line, "-r", err) || push(line, tmp, err) || push(line, "-j", err)) return -1;
        break;
    }
    }

    size_t len = 0;
    for (int i = 0; i < line->argc; i++)
        if (!quote_append(line->remote, sizeof line->remote, &len, line->argv[i]))
            return fm_err_set(err, FM_ERR_INTERNAL, "remote command over its bound"), -1;
    return 0;
}

void fm_exec_result_free(fm_exec_result *r)
{
    if (!r) return;
    free(r->out);
    free(r->err_out);
    r->out = r->err_out = NULL;
    r->out_len = r->err_len = 0;
}
