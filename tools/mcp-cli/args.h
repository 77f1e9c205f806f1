/* mcp-cli's word and argument rules, one module for the shell and the
 * command line so a line typed at `fleetmcp>` means exactly what the same
 * words mean after `mcp-cli call`. */
#ifndef MCP_CLI_ARGS_H
#define MCP_CLI_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_MAX_WORDS 256
#define CLI_MAX_VALUE_FILE (1u << 20) /* key=@FILE and --args @FILE|- */

/* A line split into words like a POSIX shell does, without expansions:
 * blanks separate words; '...' keeps everything literally; "..." keeps
 * everything but lets a backslash escape " \ $ ` and newline; outside
 * quotes a backslash escapes any character.  Nothing is ever run. */
typedef struct cli_words {
    int argc;
    char **argv; /* NULL-terminated; cli_words_free */
    /* Filled in partial mode (for completion): where the last word starts
     * in the input, whether the input ends between words, and the quote
     * still open at the end (0 if none). */
    size_t last_start;
    bool at_blank;
    char open_quote;
} cli_words;

/* Splits s.  Strict mode fails on an unterminated quote or a trailing
 * backslash, with the reason in err; partial mode accepts them (the word
 * in progress is the last one).  Returns 0 or -1 (err filled). */
int cli_words_split(const char *s, bool partial, cli_words *w, char *err, size_t errlen);
void cli_words_free(cli_words *w);

/* Where the arguments come from: stdin_ok is false in the shell, whose
 * standard input is the operator's own typing. */
typedef struct cli_args_src {
    FILE *in; /* for --args - */
    bool stdin_ok;
} cli_args_src;

/* Turns words into a tool's arguments (new object), or NULL with the
 * reason in err.  Rules, in order:
 *   --args JSON     a JSON object merged in; --args @FILE and --args -
 *                   read it from a file or from standard input
 *   key=@FILE       the file's text is the value, read as a typed value
 *   key=@@text      the literal value "@text"
 *   key=value       value as JSON when it parses (5, true, ["a"]),
 *                   else the text itself
 * A value read from a file loses one trailing newline.  Files are read up
 * to CLI_MAX_VALUE_FILE bytes. */
json_t *cli_args_parse(int argc, char *const argv[], const cli_args_src *src, char *err,
                       size_t errlen);

/* True when a line's words carry a secret (a --key or --token option, a
 * secret-looking key=value, a bearer token), so it must not be written to
 * the history file. */
bool cli_words_secret(int argc, char *const argv[]);

/* The text with shell quoting added when it needs some (new string), so
 * completion can insert a value with blanks or quotes in it. */
char *cli_quote_word(const char *s);

#endif
