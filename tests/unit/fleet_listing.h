/* A slurmrestd /nodes answer for a 16,384-node fleet, for the unit tests
 * and bench/snapshot_load.c: racks of 64 (gpu-r001-n01..gpu-r256-n64), each
 * node a copy of proto (one node of a captured answer), every 100th
 * drained.  With debug, each node's state word is "idle" and the first two
 * racks are also in partition debug.  A new document. */
#ifndef FM_TEST_FLEET_LISTING_H
#define FM_TEST_FLEET_LISTING_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

static inline json_t *fleet_listing(const json_t *proto, bool debug)
{
    json_t *nodes = json_array();
    for (int i = 0; i < 16384; i++) {
        json_t *nd = json_deep_copy(proto);
        char name[32];
        snprintf(name, sizeof name, "gpu-r%03d-n%02d", i / 64 + 1, i % 64 + 1);
        json_object_set_new(nd, "name", json_string(name));
        if (debug) {
            json_object_set_new(nd, "state", json_string("idle"));
            json_object_set_new(nd, "partitions",
                                i < 128 ? json_pack("[s,s]", "gpu", "debug")
                                        : json_pack("[s]", "gpu"));
        }
        if (i % 100 == 0) json_object_set_new(nd, "state_flags", json_pack("[s]", "DRAIN"));
        json_array_append_new(nodes, nd);
    }
    return json_pack("{s:o, s:[]}", "nodes", nodes, "errors");
}

#endif
