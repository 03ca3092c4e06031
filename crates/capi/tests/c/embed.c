/* A C host embedding rjitlink through its C API: links units given by path and from memory,
 * calls their functions, runs their parts, frees them, and checks every answer. Prints one
 * line per check that fails and exits 1 then; prints "all checks passed" and exits 0 else.
 *
 * Usage: embed UNIT.o LATER.o BROKEN.o
 *        embed --run PROGRAM.o              run it in this process: its exit status is ours
 *        embed --spawn RJITLINK PROGRAM.o   run it in a spawned executor, and say its status
 *   UNIT.o:   defines add, counter (set by a constructor), main; uses host_scale (defined
 *             absolute), host_bias (absolute data) and host_offset (a symbol of this
 *             program, found with host symbols). Compiled with -fPIC.
 *   LATER.o:  calls add from UNIT.o (an earlier unit of the session).
 *   BROKEN.o: calls a function nothing defines.
 * The first unit is linked with a perf map, the second without: /tmp/perf-PID.map must name
 * the first's functions at their addresses, and not the second's (removed at the end). */
#define _POSIX_C_SOURCE 200809L
#include "rjitlink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(condition)                                                                       \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            printf("check failed at line %d: %s (last error: %s)\n", __LINE__, #condition,     \
                   rjitlink_last_error() ? rjitlink_last_error() : "none");                    \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* Called by linked code through an absolute definition. */
static int host_scale(int x) { return x * 10; }

/* Found by linked code through the host's symbols (this program is linked -rdynamic). */
int host_offset(void) { return 7; }

/* Called by the first unit's main while rjitlink_run_main runs it: the session is in use, so
 * the call is refused (an argument error) rather than let into it. */
static rjitlink_session *running_session;
int host_reenter(void) {
    uint64_t address = 0;
    if (rjitlink_lookup(running_session, "add", &address) != RJITLINK_ERROR) return 1;
    if (rjitlink_last_error_kind() != RJITLINK_ERROR_ARGUMENT) return 2;
    if (strstr(rjitlink_last_error(), "the session is in use") == NULL) return 3;
    if (rjitlink_live_units(running_session) != 0) return 4;
    return 77;
}

/* Read by linked code through an absolute data definition. */
static int host_bias = 1000;

static void *read_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    void *data = malloc(length > 0 ? (size_t)length : 1);
    if (data && fread(data, 1, (size_t)length, file) != (size_t)length) {
        free(data);
        data = NULL;
    }
    fclose(file);
    *size = (size_t)length;
    return data;
}

/* The perf map of this process. */
static void perf_map_path(char *path, size_t size) {
    snprintf(path, size, "/tmp/perf-%ld.map", (long)getpid());
}

/* Whether the perf map has a line "START SIZE name" for name, at address if it is not 0. */
static int perf_map_has(const char *name, uint64_t address) {
    char path[64];
    perf_map_path(path, sizeof path);
    FILE *map = fopen(path, "r");
    if (!map) return 0;
    unsigned long long start = 0, size = 0;
    char symbol[256];
    int found = 0;
    while (fscanf(map, "%llx %llx %255s", &start, &size, symbol) == 3)
        if (strcmp(symbol, name) == 0 && size > 0 && (address == 0 || start == address)) found = 1;
    fclose(map);
    return found;
}

/* A session on options (NULL: in process) with PROGRAM.o linked, its entry main. */
static rjitlink_session *session_with_program(rjitlink_options *options, const char *program,
                                              uint64_t *id) {
    rjitlink_session *session = rjitlink_session_new(options);
    CHECK(session != NULL);
    if (!session) return NULL;
    rjitlink_unit *unit = rjitlink_unit_new();
    CHECK(rjitlink_unit_add_path(unit, program) == RJITLINK_OK);
    CHECK(rjitlink_unit_set_entry(unit, "main") == RJITLINK_OK);
    CHECK(rjitlink_link(session, unit, id) == RJITLINK_OK);
    rjitlink_unit_free(unit);
    return session;
}

/* The program in this process: it exits, and this process with it. */
static int run_in_process(const char *program) {
    uint64_t id = 0;
    rjitlink_session *session = session_with_program(NULL, program, &id);
    if (!session) return 1;
    const char *args[] = {"program", "a", "b"};
    int status = -1;
    CHECK(rjitlink_run_program(session, id, 3, args, &status) == RJITLINK_OK);
    printf("rjitlink_run_program returned (%d): it must not\n", status);
    return 1;
}

/* The program in a spawned executor, with copied memory: its status comes back. */
static int run_spawned(const char *rjitlink, const char *program) {
    rjitlink_options *options = rjitlink_options_new();
    CHECK(rjitlink_options_spawn_executor(options, rjitlink) == RJITLINK_OK);
    CHECK(rjitlink_options_remote_memory(options, 2) == RJITLINK_OK);
    uint64_t id = 0;
    rjitlink_session *session = session_with_program(options, program, &id);
    rjitlink_options_free(options);
    if (!session) return 1;
    uint64_t address = 0;
    CHECK(rjitlink_lookup(session, "main", &address) == RJITLINK_OK && address != 0);
    /* Its code is in another process: main cannot be called here; its initializers run
     * there, once (the program's run does not repeat them: its constructor adds 40). */
    int status = -1;
    CHECK(rjitlink_run_main(session, id, 0, NULL, &status) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_IN_PROCESS_ONLY);
    CHECK(rjitlink_run_initializers(session, id) == RJITLINK_OK);
    CHECK(rjitlink_run_initializers(session, id) == RJITLINK_ERROR);
    CHECK(strstr(rjitlink_last_error(), "ran already") != NULL);
    const char *args[] = {"program", "a"};
    CHECK(rjitlink_run_program(session, id, 2, args, &status) == RJITLINK_OK);
    CHECK(status == 42);
    rjitlink_session_free(session);
    if (failures) return 1;
    printf("spawned program exited with %d\n", status);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--run") == 0) return run_in_process(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--spawn") == 0) return run_spawned(argv[2], argv[3]);
    if (argc != 4) {
        fprintf(stderr, "usage: embed UNIT.o LATER.o BROKEN.o\n");
        return 2;
    }
    CHECK(rjitlink_last_error() == NULL);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_NONE);

    rjitlink_options *options = rjitlink_options_new();
    CHECK(options != NULL);
    CHECK(rjitlink_options_host_symbols(options, 1) == RJITLINK_OK);
    CHECK(rjitlink_options_slab_size(options, 64u << 20) == RJITLINK_OK);
    CHECK(rjitlink_options_threads(options, 1) == RJITLINK_OK);
    CHECK(rjitlink_options_plugins(options, RJITLINK_PLUGINS_DEFAULT | RJITLINK_PLUGIN_PERF_MAP) ==
          RJITLINK_OK);
    CHECK(rjitlink_options_plugins(options, 1u << 9 | RJITLINK_PLUGIN_JITDUMP) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_ARGUMENT);
    CHECK(strcmp(rjitlink_last_error(), "unknown plugin bits 0x200") == 0);
    CHECK(rjitlink_options_jitdump_directory(options, NULL) == RJITLINK_ERROR);
    CHECK(strcmp(rjitlink_last_error(), "directory is NULL") == 0);
    CHECK(rjitlink_options_remote_memory(options, 7) == RJITLINK_ERROR);
    CHECK(strcmp(rjitlink_last_error(), "remote memory mode 7 is not 0, 1 or 2") == 0);
    /* Remote memory with the in-process executor: refused when the session is made. */
    rjitlink_options *contradictory = rjitlink_options_new();
    CHECK(rjitlink_options_remote_memory(contradictory, 2) == RJITLINK_OK);
    CHECK(rjitlink_session_new(contradictory) == NULL);
    CHECK(strcmp(rjitlink_last_error(),
                 "invalid session options: remote_memory applies to remote executors") == 0);
    rjitlink_options_free(contradictory);
    rjitlink_session *session = rjitlink_session_new(options);
    rjitlink_options_free(options);
    CHECK(session != NULL);
    if (!session) return 1;

    /* The host's function under the name the unit calls. */
    CHECK(rjitlink_define_absolute(session, "host_scale", (uint64_t)(uintptr_t)&host_scale) ==
          RJITLINK_OK);
    CHECK(rjitlink_define_absolute_data(session, "host_bias", (uint64_t)(uintptr_t)&host_bias) ==
          RJITLINK_OK);

    /* The first unit, from memory. */
    size_t size = 0;
    void *bytes = read_file(argv[1], &size);
    CHECK(bytes != NULL);
    rjitlink_unit *unit = rjitlink_unit_new();
    CHECK(rjitlink_unit_add_bytes(unit, "unit.o", bytes, size) == RJITLINK_OK);
    free(bytes); /* copied */
    CHECK(rjitlink_unit_set_entry(unit, "main") == RJITLINK_OK);
    uint64_t first = 0;
    CHECK(rjitlink_link(session, unit, &first) == RJITLINK_OK);
    rjitlink_unit_free(unit);
    CHECK(rjitlink_live_units(session) == 1);

    uint64_t address = 0;
    CHECK(rjitlink_lookup(session, "add", &address) == RJITLINK_OK);
    int (*add)(int, int) = (int (*)(int, int))(uintptr_t)address;
    /* a + b + host_scale(a) + host_offset() + host_bias */
    CHECK(address != 0 && add(2, 3) == 5 + 10 * 2 + 7 + 1000);
    CHECK(perf_map_has("add", address));
    host_bias = 2000; /* read where it is, not copied */
    CHECK(add(2, 3) == 5 + 10 * 2 + 7 + 2000);

    CHECK(rjitlink_lookup(session, "counter", &address) == RJITLINK_OK);
    int *counter = (int *)(uintptr_t)address;
    CHECK(*counter == 0); /* its constructor has not run */
    CHECK(rjitlink_run_initializers(session, first) == RJITLINK_OK);
    CHECK(*counter == 100);
    CHECK(rjitlink_run_initializers(session, first) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_ARGUMENT);
    CHECK(strstr(rjitlink_last_error(), "ran already") != NULL);

    const char *args[] = {"prog", "one", "two"};
    int status = -1;
    CHECK(rjitlink_run_main(session, first, 3, args, &status) == RJITLINK_OK);
    CHECK(status == 3 + 100); /* argc + counter */
    /* Re-entry from the code the session runs is refused; the session works again after. */
    running_session = session;
    const char *four[] = {"prog", "re", "en", "ter"};
    CHECK(rjitlink_run_main(session, first, 4, four, &status) == RJITLINK_OK);
    CHECK(status == 77);
    CHECK(rjitlink_live_units(session) == 1);
    CHECK(rjitlink_run_main(session, first, -1, args, &status) == RJITLINK_ERROR);
    CHECK(strcmp(rjitlink_last_error(), "argc is negative") == 0);
    CHECK(rjitlink_run_main(session, first, 2, NULL, &status) == RJITLINK_ERROR);
    CHECK(strcmp(rjitlink_last_error(), "argv is NULL") == 0);
    CHECK(rjitlink_run_main(session, first, 1, args, NULL) == RJITLINK_ERROR);
    CHECK(strcmp(rjitlink_last_error(), "status is NULL") == 0);
    CHECK(rjitlink_run_finalizers(session, first) == RJITLINK_OK);
    CHECK(*counter == -1); /* its destructor ran */

    /* A second unit, by path, using the first one's add; linked without a perf map. */
    CHECK(rjitlink_session_set_plugins(session, RJITLINK_PLUGINS_DEFAULT) == RJITLINK_OK);
    CHECK(rjitlink_session_set_plugins(session, 1u << 7) == RJITLINK_ERROR);
    rjitlink_unit *later = rjitlink_unit_new();
    CHECK(rjitlink_unit_add_path(later, argv[2]) == RJITLINK_OK);
    uint64_t second = 0;
    CHECK(rjitlink_link(session, later, &second) == RJITLINK_OK);
    rjitlink_unit_free(later);
    CHECK(second != first);
    CHECK(rjitlink_lookup(session, "add_twice", &address) == RJITLINK_OK);
    int (*add_twice)(int) = (int (*)(int))(uintptr_t)address;
    CHECK(add_twice(1) == 2 * (1 + 1 + 10 + 7 + 2000));
    CHECK(perf_map_has("main", 0) && !perf_map_has("add_twice", 0));
    char map[64];
    perf_map_path(map, sizeof map);
    CHECK(unlink(map) == 0);

    /* Errors a caller can read and tell apart. */
    rjitlink_unit *broken = rjitlink_unit_new();
    CHECK(rjitlink_unit_add_path(broken, argv[3]) == RJITLINK_OK);
    CHECK(rjitlink_link(session, broken, NULL) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_UNDEFINED);
    CHECK(strstr(rjitlink_last_error(), "nowhere_defined") != NULL);
    rjitlink_unit_free(broken);

    rjitlink_unit *missing = rjitlink_unit_new();
    CHECK(rjitlink_unit_add_path(missing, "/nonexistent/input.o") == RJITLINK_OK);
    CHECK(rjitlink_link(session, missing, NULL) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_LINK);
    CHECK(strstr(rjitlink_last_error(), "/nonexistent/input.o") != NULL);
    rjitlink_unit_free(missing);

    CHECK(rjitlink_lookup(session, "no_such_symbol", &address) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_NOT_FOUND);
    CHECK(rjitlink_lookup(NULL, "add", &address) == RJITLINK_ERROR);
    CHECK(rjitlink_last_error_kind() == RJITLINK_ERROR_ARGUMENT);
    CHECK(strstr(rjitlink_last_error(), "session is NULL") != NULL);
    CHECK(rjitlink_unit_add_path(NULL, "x.o") == RJITLINK_ERROR);

    /* Freeing: names go, ids are not reused, a freed id is refused. */
    CHECK(rjitlink_free_unit(session, second) == RJITLINK_OK);
    CHECK(rjitlink_lookup(session, "add_twice", &address) == RJITLINK_ERROR);
    CHECK(rjitlink_free_unit(session, second) == RJITLINK_ERROR);
    CHECK(strstr(rjitlink_last_error(), "not live") != NULL);
    CHECK(rjitlink_free_unit(session, first) == RJITLINK_OK);
    CHECK(rjitlink_live_units(session) == 0);

    rjitlink_session_free(session);
    rjitlink_session_free(NULL);
    rjitlink_unit_free(NULL);
    rjitlink_options_free(NULL);

    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
