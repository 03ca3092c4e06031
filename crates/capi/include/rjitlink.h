/* rjitlink.h: the C API of rjitlink, a just-in-time linker for x86-64 ELF.
 *
 * Link relocatable objects and archives (from files or memory) into this process (or a
 * spawned or TCP executor), look their symbols up, run their initializers, main and
 * finalizers, and free them again. Link with -lrjitlink (librjitlink.so).
 *
 * Conventions:
 * - Functions return RJITLINK_OK (0) or RJITLINK_ERROR (-1), or a handle that is NULL on
 *   failure. After a failure, rjitlink_last_error() is the message (one line) and
 *   rjitlink_last_error_kind() its kind; both are per thread and stay until the next
 *   failure on that thread. The message belongs to the library: do not free it.
 * - Each handle is freed by its _free function (NULL is ignored there), once.
 * - Strings are NUL-terminated. Pointers must be valid (NULL only where allowed). Paths are
 *   bytes; symbol names and addresses given as text must be UTF-8.
 * - A session takes one call at a time. A call made while another uses it (from a second
 *   thread meanwhile, or from the code it runs: an initializer or main calling back into
 *   rjitlink) fails with RJITLINK_ERROR_ARGUMENT ("the session is in use"); its
 *   rjitlink_live_units is then 0 and rjitlink_session_free leaves it alone. Different
 *   sessions may be used from different threads.
 * - No Rust panic crosses into C: it is reported as RJITLINK_ERROR_INTERNAL.
 *
 * This file is checked against the library by crates/capi/tests/header.rs: every function
 * declared here is exported with the same parameter types, and nothing else is exported.
 */
#ifndef RJITLINK_H
#define RJITLINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RJITLINK_OK 0
#define RJITLINK_ERROR (-1)

/* Kinds of error (rjitlink_last_error_kind). */
#define RJITLINK_ERROR_NONE 0            /* no failure on this thread yet */
#define RJITLINK_ERROR_LINK 1            /* an input, a symbol, a relocation */
#define RJITLINK_ERROR_UNDEFINED 2       /* undefined symbols */
#define RJITLINK_ERROR_TARGET 3          /* executor, library loading, a signal */
#define RJITLINK_ERROR_MEMORY 4          /* target memory */
#define RJITLINK_ERROR_NOT_FOUND 5       /* a symbol looked up is not defined */
#define RJITLINK_ERROR_ARGUMENT 6        /* NULL, a unit not live, bad options */
#define RJITLINK_ERROR_IN_PROCESS_ONLY 7 /* needs the in-process executor */
#define RJITLINK_ERROR_INTERNAL 8        /* a bug in rjitlink */

/* Optional plugins (rjitlink_options_plugins, rjitlink_session_set_plugins). The first four
 * are on by default (RJITLINK_PLUGINS_DEFAULT), the tools' three off. */
#define RJITLINK_PLUGIN_EH_FRAMES 1u          /* C++ exceptions through linked frames */
#define RJITLINK_PLUGIN_STATIC_DESTRUCTORS 2u /* a freed unit's exit handlers run */
#define RJITLINK_PLUGIN_EXECUTABLE_STACK 4u   /* executable stacks when an input asks */
#define RJITLINK_PLUGIN_DEBUGGER 8u           /* DWARF published to gdb's JIT interface */
#define RJITLINK_PLUGIN_CRASH_REPORTS 16u     /* names kept; run_program reports a crash */
#define RJITLINK_PLUGIN_PERF_MAP 32u          /* functions appended to /tmp/perf-PID.map */
#define RJITLINK_PLUGIN_JITDUMP 64u           /* functions, code, lines to perf's jitdump */
#define RJITLINK_PLUGINS_DEFAULT 15u          /* the first four */

typedef struct RjitlinkOptions rjitlink_options;
typedef struct RjitlinkSession rjitlink_session;
typedef struct RjitlinkUnit rjitlink_unit;

/* Errors. */
const char *rjitlink_last_error(void);
int rjitlink_last_error_kind(void);

/* Session options: in process, 1 GiB slab, the default plugins, unless set. */
rjitlink_options *rjitlink_options_new(void);
void rjitlink_options_free(rjitlink_options *options);
/* Run code in a spawned `rjitlink executor` (the rjitlink binary at program). */
int rjitlink_options_spawn_executor(rjitlink_options *options, const char *program);
/* Run code in an `rjitlink executor --listen` at address ("HOST:PORT"). */
int rjitlink_options_tcp(rjitlink_options *options, const char *address, const char *token);
/* Remote memory: 0 shared where possible (default), 1 shared, 2 copied. */
int rjitlink_options_remote_memory(rjitlink_options *options, int mode);
int rjitlink_options_slab_size(rjitlink_options *options, uint64_t bytes);
int rjitlink_options_threads(rjitlink_options *options, uint32_t threads);
/* An OR of RJITLINK_PLUGIN_* flags. A perf map makes remote memory copied unless mode 1 is
 * set: perf reads the map only for anonymous memory. */
int rjitlink_options_plugins(rjitlink_options *options, uint32_t plugins);
/* With RJITLINK_PLUGIN_JITDUMP: jit-PID.dump goes to dir, not perf's default place
 * ($JITDUMPDIR, else $HOME, /.debug/jit/rjitlink-PID/). */
int rjitlink_options_jitdump_directory(rjitlink_options *options, const char *dir);
/* Nonzero: linked code finds the host's exported symbols by name (in process only). */
int rjitlink_options_host_symbols(rjitlink_options *options, int visible);

/* Sessions. options may be NULL (every default) and may be freed after the call. */
rjitlink_session *rjitlink_session_new(const rjitlink_options *options);
/* Frees the session's live units (their exit handlers run) and its memory. */
void rjitlink_session_free(rjitlink_session *session);
/* The plugins of later links (an OR of RJITLINK_PLUGIN_*); linked units keep theirs. */
int rjitlink_session_set_plugins(rjitlink_session *session, uint32_t plugins);

/* A unit's inputs: no inputs, cc's default libraries, no entry, unless set. */
rjitlink_unit *rjitlink_unit_new(void);
void rjitlink_unit_free(rjitlink_unit *unit);
/* An object, archive, shared library or GNU ld script. */
int rjitlink_unit_add_path(rjitlink_unit *unit, const char *path);
/* An object, archive or ld script in memory (copied); name is used in messages. */
int rjitlink_unit_add_bytes(rjitlink_unit *unit, const char *name, const void *data, size_t size);
/* -l name */
int rjitlink_unit_add_library(rjitlink_unit *unit, const char *name);
/* -L dir */
int rjitlink_unit_add_search_dir(rjitlink_unit *unit, const char *dir);
/* The entry symbol (e.g. "main"), or NULL for none. */
int rjitlink_unit_set_entry(rjitlink_unit *unit, const char *symbol);
int rjitlink_unit_set_default_libraries(rjitlink_unit *unit, int link);

/* Link a unit; its id goes to *id (id may be NULL). The unit handle can be reused or freed. */
int rjitlink_link(rjitlink_session *session, const rjitlink_unit *unit, uint64_t *id);
/* Give name an address in later links and lookups: a function (calls from far away go
 * through a stub), or a fixed address. */
int rjitlink_define_absolute(rjitlink_session *session, const char *name, uint64_t address);
/* Give name the address of data: code compiled with -fPIC reaches it from anywhere, other code
 * (cc's default -fPIE too) from within 2 GiB only, else the link fails with an overflow. */
int rjitlink_define_absolute_data(rjitlink_session *session, const char *name, uint64_t address);
/* The address of name, defined by a live unit or absolute. RJITLINK_ERROR_NOT_FOUND if none. */
int rjitlink_lookup(rjitlink_session *session, const char *name, uint64_t *address);

/* Run the unit's initializers (once), where its code runs: in this process, or in the
 * executor's (which checks each is code it holds). */
int rjitlink_run_initializers(rjitlink_session *session, uint64_t unit);
/* In process only: call main (initializers first if they have not run; its return value to
 * *status). */
int rjitlink_run_main(rjitlink_session *session, uint64_t unit, int argc, const char *const *argv,
                      int *status);
/* Run the unit's finalizers (once), where its code runs. */
int rjitlink_run_finalizers(rjitlink_session *session, uint64_t unit);
/* Run the unit as a program: initializers (unless run already), entry, exit. Its exit status
 * to *status (remote); in process its exit ends this process, so the call returns only on
 * failure. With RJITLINK_PLUGIN_CRASH_REPORTS a crash is reported on stderr. */
int rjitlink_run_program(rjitlink_session *session, uint64_t unit, int argc,
                         const char *const *argv, int *status);
/* Free a unit: its exit handlers run, its memory goes back, its names are forgotten. */
int rjitlink_free_unit(rjitlink_session *session, uint64_t unit);
size_t rjitlink_live_units(const rjitlink_session *session);

#ifdef __cplusplus
}
#endif

#endif /* RJITLINK_H */
