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
 * APPROVAL: ...) in red on a terminal. */
void cli_print_error_text(FILE *f, const char *text);

/* describe TOOL for a person: the arguments as a table (name, type,
 * required, enum, default, description), the autonomy level and what the
 * gate asks for before the tool runs.  tool is borrowed. */
void cli_print_tool(FILE *f, const json_t *tool);

/* One JSON value as short text: strings bare, arrays of scalars joined
 * with ",", anything else compact JSON; clipped to max bytes (>= 4) with
 * "...".  Writes into out (size >= max + 1). */
void cli_cell(const json_t *v, char *out, size_t max);

#endif
