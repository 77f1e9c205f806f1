/* The runbook action table is data (schemas/actions/NAME.json), generated
 * once into fm_action_table, and the runbook loader and the workflow
 * engine agree on it: every row is accepted by the loader and has an
 * executor the engine runs; a name the data does not hold is refused by
 * the loader (and by the engine: test_workflow's unknown-action case);
 * and the generator turns an action added to the data into a row with
 * its executor, and one removed into none.  Run from the repository
 * root, like every unit test. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

/* The loader's problems for a one-runbook catalog whose single step, in
 * list, names action (new array). */
static json_t *problems_for(const char *action, const char *list)
{
    char dir[64], path[PATH_MAX + 64], real[PATH_MAX];
    snprintf(dir, sizeof dir, "/tmp/fm-act-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(realpath("runbooks/fault-classes.yaml", real));
    snprintf(path, sizeof path, "%s/fault-classes.yaml", dir);
    ck_assert_int_eq(symlink(real, path), 0);
    snprintf(path, sizeof path, "%s/rb-probe.yaml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "id: rb-probe\nversion: 1\nfault_classes: [gpu_hang]\ntitle: probe\n"
            "description: probe\nautonomy: hitl\ndestructive: true\n"
            "%s:\n  - {id: probe, action: %s}\n"
            "on_failure:\n  escalate: {team: hardware, severity: high}\n",
            list, action);
    fclose(f);
    json_t *problems = fm_runbooks_check(dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/fault-classes.yaml", dir);
    unlink(path);
    rmdir(dir);
    ck_assert_ptr_nonnull(problems);
    return problems;
}

static bool any_problem(const json_t *problems, const char *needle)
{
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p) if (strstr(json_string_value(p), needle)) return true;
    return false;
}

START_TEST(every_row_is_loadable_and_runnable)
{
    ck_assert_uint_ge(fm_action_count, 15);
    for (size_t i = 0; i < fm_action_count; i++) {
        const fm_action_def *a = &fm_action_table[i];
        /* The engine runs a row through its executor and nothing else. */
        ck_assert_msg(a->exec != NULL, "%s has no executor", a->name);
        ck_assert_ptr_eq(fm_action_find(a->name), a);
        ck_assert_int_le(a->default_timeout_s, a->max_timeout_s);
        if (a->takes_capacity) ck_assert(a->touches_node);
        json_t *s = json_loads(a->args_schema, 0, NULL);
        ck_assert_msg(s != NULL, "%s: args schema is not JSON", a->name);
        fm_err err = {0};
        fm_schema *c = fm_schema_compile(s, &err);
        ck_assert_msg(c != NULL, "%s: %s", a->name, err.text);
        fm_schema_free(c);
        json_decref(s);
        /* The loader knows it, in its own list. */
        json_t *p = problems_for(a->name, a->only_in ? a->only_in : "steps");
        ck_assert_msg(!any_problem(p, "unknown action"), "loader refuses %s", a->name);
        ck_assert_msg(!any_problem(p, "belongs in"), "%s refused in its own list", a->name);
        json_decref(p);
        if (a->only_in) {
            p = problems_for(a->name, "verification");
            ck_assert_msg(any_problem(p, "belongs in"), "%s accepted outside %s", a->name,
                          a->only_in);
            json_decref(p);
        }
    }
    /* A name the data does not hold is no action. */
    ck_assert_ptr_null(fm_action_find("shell_exec"));
    json_t *p = problems_for("shell_exec", "steps");
    ck_assert(any_problem(p, "unknown action 'shell_exec'"));
    json_decref(p);
}
END_TEST

/* Runs argv (no shell), stderr into err_path; its exit status. */
static int run(char *const argv[], const char *err_path)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(err_path, "w", stderr)) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Copies the shipped data into DIR/actions without drain, adds
 * probe_only (set_state under another name and executor); "broken" gives
 * it an executor that is no fm_act_ identifier, "exempt" a kill-switch
 * exemption on a call of a hitl tool. */
static const char *const EDIT =
    "import glob, json, os, shutil, sys\n"
    "d = os.path.join(sys.argv[1], 'actions')\n"
    "os.makedirs(d, exist_ok=True)\n"
    "for f in glob.glob('schemas/actions/*.json'):\n"
    "    if not f.endswith('/drain.json'): shutil.copy(f, d)\n"
    "a = json.load(open('schemas/actions/set_state.json'))\n"
    "a['name'] = 'probe_only'\n"
    "a['executor'] = 'run_anything' if sys.argv[2] == 'broken' else 'fm_act_probe_only'\n"
    "if sys.argv[2] == 'exempt':\n"
    "    a['calls'] = {'ticket': {'tool': 'node_drain', 'exempt': ['killswitch']}}\n"
    "json.dump(a, open(os.path.join(d, 'probe_only.json'), 'w'))\n";

START_TEST(generator_adds_and_removes_rows)
{
    char dir[64], actions[96], out[96], err[96], path[128];
    snprintf(dir, sizeof dir, "/tmp/fm-actgen-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(actions, sizeof actions, "%s/actions", dir);
    snprintf(out, sizeof out, "%s/actions.gen.c", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    char *edit[] = {"python3", "-c", (char *)EDIT, dir, "ok", NULL};
    char *gen[] = {"python3", "tools/gen-registry.py", "--actions", actions,
                   out,       "schemas/tools",         NULL};
    ck_assert_int_eq(run(edit, err), 0);
    ck_assert_msg(run(gen, err) == 0, "generator: %s", slurp(err));
    const char *c = slurp(out);
    ck_assert_ptr_nonnull(strstr(c, ".name = \"probe_only\""));
    ck_assert_ptr_nonnull(strstr(c, ".exec = fm_act_probe_only,"));
    ck_assert_ptr_null(strstr(c, ".name = \"drain\""));
    ck_assert_ptr_null(strstr(c, "fm_act_drain"));
    snprintf(path, sizeof path, "%s/fm_actions.gen.h", dir);
    const char *h = slurp(path);
    ck_assert_ptr_nonnull(strstr(h, "int fm_act_probe_only(struct fm_step_ctx *sc, fm_err *err);"));
    ck_assert_ptr_null(strstr(h, "fm_act_drain"));

    /* A broken row fails the build with its file named: never left out. */
    edit[4] = "broken";
    ck_assert_int_eq(run(edit, err), 0);
    ck_assert_int_ne(run(gen, err), 0);
    ck_assert_ptr_nonnull(strstr(slurp(err), "probe_only.json: executor must be"));
    /* An exemption from the kill switch is for create tools' calls only. */
    edit[4] = "exempt";
    ck_assert_int_eq(run(edit, err), 0);
    ck_assert_int_ne(run(gen, err), 0);
    ck_assert_ptr_nonnull(strstr(slurp(err), "only a create tool's call may pass"));

    const char *left[] = {"actions.gen.c", "fm_actions.gen.h", "err"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, left[i]);
        unlink(path);
    }
    for (size_t i = 0; i < fm_action_count; i++) {
        snprintf(path, sizeof path, "%s/%s.json", actions, fm_action_table[i].name);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/probe_only.json", actions);
    unlink(path);
    ck_assert_int_eq(rmdir(actions), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *actions_suite(void)
{
    Suite *s = suite_create("actions");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_row_is_loadable_and_runnable);
    tcase_add_test(tc, generator_adds_and_removes_rows);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(actions_suite)
