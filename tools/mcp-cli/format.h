/* mcp-cli's output for people: results with their key facts first, lists
 * as aligned tables, a tool's arguments as a table.  --format json output
 * never passes through here, so scripts see exactly what the server sent. */
#ifndef MCP_CLI_FORMAT_H
#define MCP_CLI_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Colour only on a terminal, never with NO_COLOR set (https://no-color.org)
 * or TERM=dumb. */
bool cli_color(FILE *f);

/* A tool result's structuredContent (borrowed) for a person: scalars first
 * as "key: value", then small objects on one line, then each array of
 * objects as a table, then nested objects indented. */
void cli_print_structured(FILE *f, const json_t *v);

/* A refusal or failure's text on f, its leading code word (DENIED:,
 * APPROVAL: ...) in red on a terminal; control bytes as cli_print_text. */
void cli_print_error_text(FILE *f, const char *text);

/* prefix (mcp-cli's own words, may be "") then a server's text (NULL:
 * nothing) on f and a newline, the text's lines kept and every other
 * control byte (ESC, CR, and the C1 controls U+0080-U+009F) blanked: what
 * a tool returns (a drain reason, a ticket's summary, a node's log line)
 * cannot move the cursor, clear the screen or restyle what an approver
 * reads. */
void cli_print_text(FILE *f, const char *prefix, const char *text);

/* describe TOOL for a person: the arguments as a table (name, type,
 * required, enum, default, description), the autonomy level and what the
 * gate asks for before the tool runs.  tool is borrowed. */
void cli_print_tool(FILE *f, const json_t *tool);

/* One JSON value as short text: strings bare, arrays of scalars joined
 * with ",", anything else compact JSON; clipped to max bytes (>= 4) with
 * "...".  Writes into out (size >= max + 1). */
void cli_cell(const json_t *v, char *out, size_t max);

#endif
